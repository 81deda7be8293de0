"""Fuzzing lwnn's inputs (issue 13): a fixed-seed sample of mutated models, feeds and calibration
sets (tests/fuzzing.py), each case in its own process with a time and memory limit.

The oracle, per family: every case ends in success or an ``lwnn.LwnnError`` (no bare exception,
no MemoryError, no crash, no hang); where onnxruntime runs the same model and feeds, lwnn's outputs
agree with it; lwnn never runs something onnxruntime rejects and returns outputs that contradict
the model's declared outputs. A failure message lists the failures grouped by place, each with a
case key: ``.venv/bin/python scripts/fuzz.py --repro FAMILY:SEED`` reruns that case with its
traceback. ``scripts/fuzz.py --cases 2000`` is the larger run.
"""

from __future__ import annotations

from collections import Counter

import fuzzing
import numpy as np
import pytest

CASES_PER_FAMILY = 60  # 360 cases: about 30 s on two cores
SEED = 13  # case seeds 13_000_000 + k
JOBS = 2  # cases at a time (one per core)
CASE_TIMEOUT_S = 20.0  # wall time per case (a few hundred ms is typical; the bigger models ~1 s)
MEMORY_MB = 2048  # address space per case beyond what it starts with
SELFTEST_TIMEOUT_S = 3.0  # for the harness's own probes (one of them sleeps forever)


@pytest.fixture(scope="module")
def runner():
    with fuzzing.Runner(JOBS, CASE_TIMEOUT_S, MEMORY_MB) as r:
        yield r


@pytest.fixture(scope="module")
def records(runner):
    return runner.run(fuzzing.plan(CASES_PER_FAMILY * len(fuzzing.FAMILIES), SEED))


def test_isolation_classifies_every_outcome(runner):
    """The harness itself: probes that succeed, raise, exhaust memory, segfault, hang or get
    killed end up as exactly those outcomes, and the runner goes on after each."""
    probes = [("selftest", k) for k in range(len(fuzzing.SELFTEST_PROBES))]
    got = runner.run(probes, timeout_s=SELFTEST_TIMEOUT_S)
    outcomes = {r["mutation"].split("/")[1]: r["outcome"] for r in got}
    assert outcomes == fuzzing.SELFTEST_EXPECTED, got
    bare = next(r for r in got if r["outcome"] == "bare")
    assert bare["error_type"] == "KeyError" and bare["place"].startswith("fuzzing.py:")


def test_mutator_is_deterministic():
    for family in fuzzing.FAMILIES:
        a, b = fuzzing.make_case(family, 7), fuzzing.make_case(family, 7)
        assert (a.mutation, a.detail, a.model) == (b.mutation, b.detail, b.model)


def test_oracle_compares_outputs():
    f32 = np.float32
    declared = {"y": (np.dtype(f32), [None, 10])}
    assert fuzzing.contradiction(declared, {"y": np.zeros((2, 10), f32)}) is None
    assert "declared" in fuzzing.contradiction(declared, {"y": np.zeros((2, 11), f32)})
    assert "declared" in fuzzing.contradiction(declared, {"y": np.zeros((2, 10, 1), f32)})
    assert "names" in fuzzing.contradiction(declared, {"z": np.zeros((2, 10), f32)})
    ref = np.linspace(-3, 3, 12, dtype=f32).reshape(3, 4)
    assert fuzzing.compare_outputs({"y": ref + 1e-6}, ["y"], [ref]) is None
    assert fuzzing.compare_outputs({"y": ref + 1e-2}, ["y"], [ref])[0] == "values"
    assert fuzzing.compare_outputs({"y": ref[:2]}, ["y"], [ref])[0] == "shape"
    with_nan = ref.copy()
    with_nan[0, 0] = np.nan
    assert fuzzing.compare_outputs({"y": with_nan}, ["y"], [with_nan]) is None
    assert fuzzing.compare_outputs({"y": with_nan}, ["y"], [ref])[0] == "nonfinite"


def test_fuzz_reaches_both_paths(records):
    """Not a degenerate sample: cases run to the end and cases are rejected, in every family,
    and lwnn's outputs were compared with onnxruntime's many times."""
    for family in fuzzing.FAMILIES:
        outcomes = Counter(r["outcome"] for r in records if r["family"] == family)
        assert outcomes["ok"] >= CASES_PER_FAMILY // 20, (family, outcomes)
        assert outcomes["lwnn_error"] >= CASES_PER_FAMILY // 20, (family, outcomes)
    compared = sum(r["outcome"] == "ok" and r.get("ort") == "ok" for r in records)
    assert compared >= len(records) // 10, compared


@pytest.mark.parametrize("family", fuzzing.FAMILIES)
def test_fuzz_oracle(records, family):
    mine = [r for r in records if r["family"] == family]
    bad = [r for r in mine if fuzzing.failures_of(r)]
    assert not bad, (
        f"{len(bad)} of {len(mine)} {family} cases broke the oracle "
        f"({dict(Counter(k for r in bad for k in fuzzing.failures_of(r)))}):\n"
        + fuzzing.format_table(mine)
        + "\n\n"
        + fuzzing.format_failures(bad)
        + "\n\nrerun one with: .venv/bin/python scripts/fuzz.py --repro FAMILY:SEED"
    )
