#!/usr/bin/env bash
# Run the notebooks and the test suite under every BLAS kernel OpenBLAS offers on this CPU and
# with 1 and 2 BLAS threads, and print pass/fail per setting. Float results differ in their last
# bits between these settings (docs/architecture.md, "Portability"); nothing the notebooks or tests
# compare exactly may depend on them. A developer's check, not part of scripts/test.sh (CI keeps
# the machine's own settings).
#
#   bash scripts/check_portability.sh                        # notebooks and tests, every setting
#   bash scripts/check_portability.sh --part notebooks       # notebooks only (~3 min a setting)
#   bash scripts/check_portability.sh --kernels "Haswell Sandybridge" --threads 1
#
# Kernels tried: Haswell (AVX2), SkylakeX (only where the CPU has AVX-512), Zen, and Sandybridge
# (AVX without FMA: one more summation order that any x86-64 CPU with AVX runs). A kernel whose
# OpenBLAS core name equals one already run (Zen maps to the Haswell kernels in some builds) is
# skipped. Logs: $LWNN_PORTABILITY_LOGS (default: a new folder under /tmp).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${LWNN_VENV:-.venv}"
PY="$VENV/bin/python"
KERNELS="Haswell SkylakeX Zen Sandybridge"
THREADS="1 2"
PART="all"
while (($#)); do
    case "$1" in
        --kernels) KERNELS="$2"; shift 2 ;;
        --threads) THREADS="$2"; shift 2 ;;
        --part) PART="$2"; shift 2 ;;
        -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "check_portability: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
case "$PART" in all|notebooks|tests) ;; *) echo "check_portability: --part is all, notebooks or tests; got '$PART'" >&2; exit 2 ;; esac
source scripts/nbval_args.sh
CORES="$(nproc)"
FLAGS="$(grep -m1 '^flags' /proc/cpuinfo)"
has() { [[ " $FLAGS " == *" $1 "* ]]; }

# Whether this CPU can execute a kernel's instructions (forcing one it cannot is SIGILL).
runnable() {
    case "$1" in
        SkylakeX|Cooperlake|SapphireRapids) has avx512f && has avx512bw && has avx512vl && has avx512dq ;;
        Haswell|Zen) has avx2 && has fma ;;
        Sandybridge) has avx ;;
        Nehalem|Prescott) return 0 ;;
    esac
}
for kernel in $KERNELS; do
    case "$kernel" in
        SkylakeX|Cooperlake|SapphireRapids|Haswell|Zen|Sandybridge|Nehalem|Prescott) ;;
        *) echo "check_portability: unknown kernel '$kernel'; known: Haswell SkylakeX Cooperlake" \
                "SapphireRapids Zen Sandybridge Nehalem Prescott" >&2; exit 2 ;;
    esac
done
[[ "$THREADS" =~ ^[1-9][0-9]*( [1-9][0-9]*)*$ ]] \
    || { echo "check_portability: --threads takes counts such as \"1 2\"; got '$THREADS'" >&2; exit 2; }

[[ -x "$PY" ]] || { echo "check_portability: no venv at $VENV; run scripts/setup.sh first" >&2; exit 2; }
LOGS="${LWNN_PORTABILITY_LOGS:-$(mktemp -d -t lwnn-portability.XXXXXX)}"
mkdir -p "$LOGS"

# The core name OpenBLAS really uses under OPENBLAS_CORETYPE=$1 (numpy's bundled OpenBLAS).
corename() {
    OPENBLAS_CORETYPE="$1" "$PY" - <<'EOF'
import ctypes, pathlib, numpy
libs = sorted((pathlib.Path(numpy.__file__).parent.parent / "numpy.libs").glob("*openblas*"))
lib = ctypes.CDLL(str(libs[0]))
fn = next(getattr(lib, n) for n in ("scipy_openblas_get_corename64_", "openblas_get_corename64_",
                                     "openblas_get_corename") if hasattr(lib, n))
fn.restype = ctypes.c_char_p
print(fn().decode())
EOF
}

pytest_run() {  # pytest_run LOG WORKERS ARGS...: the same options as scripts/test.sh
    local log="$1" workers="$2"; shift 2
    local dist=(-p no:cacheprovider)
    ((workers > 1)) && dist+=(-n "$workers" --dist loadfile) || dist+=(-p no:xdist)
    "$PY" -m pytest "${dist[@]}" -q "$@" >"$log" 2>&1
    local rc=$?
    local summary
    summary="$(grep -E '^=+ .*(passed|failed|error).* =+$|^[0-9]+ (passed|failed|error)' "$log" | tail -n 1 | tr -d '=')"
    printf '%s' "${summary:-no summary (exit $rc)}" | sed 's/^ *//; s/ *$//'
    return "$rc"
}

declare -A seen=()
results=()
failed=0
start_all=$SECONDS
printf 'check_portability: CPU %s, %s cores; logs in %s\n' \
    "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')" "$CORES" "$LOGS"
for kernel in $KERNELS; do
    if ! runnable "$kernel"; then
        results+=("$(printf '%-12s %-12s %-7s %-6s %s' "$kernel" "-" "-" "skip" "this CPU cannot run its instructions")")
        continue
    fi
    core="$(corename "$kernel")"
    if [[ -n "${seen[$core]:-}" ]]; then
        results+=("$(printf '%-12s %-12s %-7s %-6s %s' "$kernel" "$core" "-" "skip" "the same kernels as ${seen[$core]}")")
        continue
    fi
    seen[$core]="$kernel"
    for threads in $THREADS; do
        workers=$((CORES / threads)); ((workers < 1)) && workers=1; ((workers > 2)) && workers=2
        tag="${kernel}-${threads}t"
        t0=$SECONDS
        status="pass"
        detail=()
        export OPENBLAS_CORETYPE="$kernel" OPENBLAS_NUM_THREADS="$threads" OMP_NUM_THREADS="$threads" \
            MKL_NUM_THREADS="$threads"
        unset OPENBLAS_L2_SIZE
        if [[ "$PART" != tests ]]; then
            s="$(pytest_run "$LOGS/$tag-notebooks.log" "$workers" "${NBVAL_ARGS[@]}")" || status="FAIL"
            detail+=("notebooks: $s")
        fi
        if [[ "$PART" != notebooks ]]; then
            s="$(LWNN_REQUIRE_BROWSER=1 pytest_run "$LOGS/$tag-tests.log" "$workers" tests)" || status="FAIL"
            detail+=("tests: $s")
        fi
        [[ "$status" == pass ]] || failed=1
        joined="$(IFS=';'; echo "${detail[*]}" | sed 's/;/; /g')"
        results+=("$(printf '%-12s %-12s %-7s %-6s %s (%d s)' "$kernel" "$core" "$threads" "$status" "$joined" \
            $((SECONDS - t0)))")
        printf 'check_portability: %s done: %s\n' "$tag" "$status"
    done
done
unset OPENBLAS_CORETYPE

printf '\n%-12s %-12s %-7s %-6s %s\n' "kernel" "core used" "threads" "result" "detail"
printf '%s\n' "${results[@]}"
printf 'check_portability: %d s in all; %s\n' $((SECONDS - start_all)) \
    "$( ((failed)) && echo "FAILED (see the logs)" || echo "ok")"
exit "$failed"
