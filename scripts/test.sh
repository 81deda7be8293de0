#!/usr/bin/env bash
# Set up (idempotent), then run the test suite and the linter. Exits non-zero if either fails,
# and also when pytest collected no test at all (its exit code 5).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh || exit 1
VENV="${LWNN_VENV:-.venv}"
PY="$VENV/bin/python"

# --- Notebooks as regression tests (nbval): NBVAL_ARGS ------------------------------------------
source scripts/nbval_args.sh

# The browser test (tests/test_browser.py: JupyterLab + Debian's Chromium through playwright) skips
# when Chromium is missing on a developer's machine; here a missing browser is a failure.
export LWNN_REQUIRE_BROWSER=1

# Two pytest workers on two cores: one BLAS thread each, or they oversubscribe the cores and
# large GEMMs slow down many times over. Benchmarks set their own thread counts.
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

# --dist loadfile keeps each notebook's cells (and each test file) on one worker, as nbval needs.
"$PY" -m pytest -n 2 --dist loadfile tests "${NBVAL_ARGS[@]}"
pytest_rc=$?
if ((pytest_rc == 5)); then
    echo "test: pytest collected no tests; counting that as a failure" >&2
fi

"$VENV/bin/ruff" check --output-format=concise lwnn tests
ruff_rc=$?

if ((pytest_rc != 0 || ruff_rc != 0)); then
    echo "test: FAILED (pytest exit $pytest_rc, ruff exit $ruff_rc)" >&2
    exit 1
fi
echo "test: ok"
