# Sourced by scripts/test.sh and scripts/check_portability.sh: the pytest options that run every
# notebook under notebooks/ as a regression test, in one place.
#
# Each notebook runs top to bottom in a fresh kernel of the current venv, in the same pytest call
# as the suite, and its outputs must equal the saved ones (strict: no --nbval-lax; single cells
# opt out with a "# NBVAL_IGNORE_OUTPUT" line, the reason on the next comment line, and check
# their claims instead; tests/test_notebook_markers.py checks that form).
# notebooks/sanitize.cfg masks timings, memory addresses, progress bars and the file paths in
# warnings. Regenerate the saved outputs after a library change with
# `.venv/bin/python scripts/run_notebooks.py`.
NBVAL_ARGS=()
if compgen -G "notebooks/*.ipynb" >/dev/null || compgen -G "notebooks/models/*.ipynb" >/dev/null; then
    NBVAL_ARGS=(--nbval --nbval-current-env --nbval-sanitize-with notebooks/sanitize.cfg
                --nbval-cell-timeout 300 notebooks)
fi
