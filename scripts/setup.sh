#!/usr/bin/env bash
# Idempotent set-up for a Debian 12 machine: system packages, a venv, pinned Python packages.
# A re-run with nothing changed only checks and returns in a few seconds.
#
#   bash scripts/setup.sh                      # venv at .venv
#   LWNN_VENV=/tmp/venv bash scripts/setup.sh  # venv elsewhere (LWNN_PYTHON picks the interpreter)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${LWNN_VENV:-.venv}"
PYTHON="${LWNN_PYTHON:-python3}"
PIP_VERSION="26.3"   # pinned so that every venv resolves with the same pip
STAMP="$VENV/.lwnn-setup.sha256"

# Debian packages (README.md "What setup installs" lists the same; tests/test_environment.py checks).
DEBIAN_PACKAGES=(
    # Python interpreter, venv module, headers for any package that has to compile
    python3 python3-venv python3-dev
    # OpenCL: Debian's PoCL CPU device and the ICD loader (not the pyopencl[pocl] extra), clinfo
    pocl-opencl-icd ocl-icd-libopencl1 clinfo
    # Real data: Fashion-MNIST, ONNX op conformance cases, 16 kHz speech, words spoken on demand
    dataset-fashion-mnist libonnx-testdata pocketsphinx-testdata espeak-ng
    # Headless browser for notebook/widget screenshots
    chromium
)

step() { printf 'setup: %-16s %s\n' "$1" "$2"; }

# (a) Debian packages -------------------------------------------------------------------------
missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
    status="$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)"
    [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done
if ((${#missing[@]} == 0)); then
    step "debian" "ok (${#DEBIAN_PACKAGES[@]} packages present)"
elif ((EUID == 0)); then
    step "debian" "installing ${missing[*]}"
    aptlog="$(mktemp -t lwnn-apt.XXXXXX)"
    if ! { DEBIAN_FRONTEND=noninteractive apt-get update -q \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"; \
        } >"$aptlog" 2>&1; then
        tail -n 30 "$aptlog" >&2
        step "debian" "FAILED: apt-get install ${missing[*]} (full log: $aptlog)" >&2
        exit 1
    fi
    rm -f "$aptlog"
    step "debian" "ok (installed ${#missing[@]})"
else
    step "debian" "missing: ${missing[*]}"
    echo "Run as root, then re-run this script:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
fi

# (b) venv ----------------------------------------------------------------------------------
if [[ -x "$VENV/bin/python" ]]; then
    if ! "$VENV/bin/python" -c '' 2>/dev/null; then
        step "venv" "$VENV is broken (its interpreter does not run); remove it and re-run" >&2
        exit 1
    fi
    step "venv" "$VENV exists ($("$VENV/bin/python" -V 2>&1))"
else
    "$PYTHON" -m venv "$VENV"
    step "venv" "created $VENV ($("$VENV/bin/python" -V 2>&1))"
fi

# (c) Python packages, skipped while the stamp matches ----------------------------------------
want="$( { cat requirements.txt requirements-nodeps.txt pyproject.toml; echo "pip==$PIP_VERSION"; } \
    | sha256sum | cut -d' ' -f1)"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
    step "python deps" "up to date (stamp matches)"
else
    rm -f "$STAMP"
    log="$VENV/.lwnn-setup.log"
    pip() {  # pip's chatter goes to the log; on failure show its tail
        if ! "$VENV/bin/python" -m pip --disable-pip-version-check install "$@" >>"$log" 2>&1; then
            tail -n 30 "$log" >&2
            step "python deps" "FAILED: pip install $* (full log: $log)" >&2
            exit 1
        fi
    }
    : >"$log"
    pip "pip==$PIP_VERSION"
    pip -r requirements.txt
    pip --no-deps -r requirements-nodeps.txt
    pip --no-deps -e .
    echo "$want" >"$STAMP"
    step "python deps" "installed requirements.txt, requirements-nodeps.txt (--no-deps), lwnn (-e)"
fi

# (d) OpenCL check, informational -------------------------------------------------------------
devices="$(clinfo -l 2>/dev/null | grep -c 'Device #' || true)"
step "opencl" "$devices device(s) visible"
