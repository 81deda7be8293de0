"""nbval's cell markers in the notebooks are ones nbval recognises, and each says why.

nbval honours a marker only when the comment is the marker alone (``# NBVAL_IGNORE_OUTPUT``); a
line such as ``# NBVAL_IGNORE_OUTPUT: because ...`` is silently compared as usual. So the marker
stands on its own line, and the comment right after it gives the reason (notebooks/README.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").rglob("*.ipynb"))
MARKERS = {"NBVAL_IGNORE_OUTPUT", "NBVAL_CHECK_OUTPUT", "NBVAL_RAISES_EXCEPTION", "NBVAL_SKIP"}


def code_cells(path: Path):
    cells = json.loads(path.read_text())["cells"]
    return [(i, "".join(c["source"]).splitlines()) for i, c in enumerate(cells) if c["cell_type"] == "code"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_markers_are_exact_and_give_a_reason(path):
    for i, lines in code_cells(path):
        for j, line in enumerate(lines):
            if "NBVAL" not in line:
                continue
            marker = line.strip().lstrip("#").strip()
            assert marker in MARKERS, f"{path.name} cell {i}: {line.strip()!r} is not a marker nbval honours"
            reason = lines[j + 1].strip() if j + 1 < len(lines) else ""
            assert reason.startswith("#") and len(reason) > 10, \
                f"{path.name} cell {i}: {marker} needs a comment on the next line saying why"


def test_the_notebooks_are_found():
    assert len(NOTEBOOKS) >= 13
