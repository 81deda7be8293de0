"""scripts/check_portability.sh refuses bad arguments before it runs anything (its real job, running
the notebooks and the suite per BLAS kernel, takes minutes per setting and is a developer's check)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "check_portability.sh"


@pytest.mark.parametrize("args, message", [
    (["--kernels", "Skylake"], "unknown kernel 'Skylake'; known: Haswell SkylakeX"),
    (["--threads", "two"], "--threads takes counts"),
    (["--part", "docs"], "--part is all, notebooks or tests"),
    (["--fast"], "unknown argument '--fast'"),
])
def test_bad_arguments_are_refused_with_a_reason(args, message, tmp_path):
    logs = tmp_path / "logs"
    done = subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "LWNN_PORTABILITY_LOGS": str(logs)})
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert not logs.exists()  # nothing started


def test_help_describes_the_settings():
    done = subprocess.run(["bash", str(SCRIPT), "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "OPENBLAS" not in done.stderr
    assert "every BLAS kernel" in done.stdout and "--part notebooks" in done.stdout
