"""Test configuration: shared fixtures, and the ONNX conformance table (passed / failed / skipped
by op) printed at the end of any run that included conformance cases.

Fixtures: ``rng`` (a fresh generator per test, seeded by the module's ``RNG_SEED``),
``bundled_model`` and ``bundled_samples`` (the bundled Fashion-MNIST CNN and its 256 samples, loaded
once per session) and ``backend`` (each test that takes it runs once per backend, "cpu" and
"opencl"; never skipped).

The table is built from test reports, which pytest-xdist forwards to the controlling process,
so it is complete with ``-n auto`` too.
"""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
import pytest

BACKENDS = ("cpu", "opencl")


@pytest.fixture
def rng(request):
    """A fresh generator for each test, seeded with the test module's ``RNG_SEED`` (0 without one),
    so a module's tests draw the same values whatever else runs."""
    return np.random.default_rng(getattr(request.module, "RNG_SEED", 0))


@pytest.fixture(scope="session")
def bundled_model():
    """The bundled model, loaded once: running a ``Model`` only fills its plan cache (shapes ->
    plan), and ``lwnn.quantize`` copies what it changes, so tests may share it. A test that
    changes a model (its graph, its attributes) must load its own."""
    import lwnn
    from lwnn import data

    return lwnn.load(data.default_model_path())


@pytest.fixture(scope="session")
def bundled_samples():
    """``lwnn.data.default_samples()``: (images float32 [256, 1, 28, 28], labels uint8 [256]),
    read once. Shared: slice or copy them, never write into them."""
    from lwnn import data

    return data.default_samples()


@pytest.fixture(params=BACKENDS)
def backend(request):
    """The backend a test runs on: every test taking this fixture runs once per backend. Never
    skipped: without an OpenCL device the "opencl" runs fail, saying why (PoCL runs them in CI)."""
    return request.param


_GROUP = "conformance_group"
_results: dict[str, tuple[str, str, str]] = {}  # nodeid -> (group, outcome, skip reason)
_made_constant: set[str] = set()  # nodeids whose parameter inputs became initializers


def pytest_runtest_logreport(report):
    props = dict(report.user_properties)
    if _GROUP not in props:
        return
    if props.get("inputs_made_constant"):
        _made_constant.add(report.nodeid)
    if report.when == "call" or report.outcome != "passed":
        previous = _results.get(report.nodeid)
        if previous and previous[1] == "failed":
            return  # a teardown pass does not undo a failure
        _results[report.nodeid] = (props[_GROUP], report.outcome, props.get("skip_reason", ""))


def pytest_terminal_summary(terminalreporter):
    from lwnn import coverage

    terminalreporter.section("lwnn coverage (seed layers x runtimes)")
    terminalreporter.write_line(coverage.to_markdown(coverage.seed_table()))
    if not _results:
        return
    from helpers import conformance_cases

    tr = terminalreporter
    by_group: dict[str, Counter] = defaultdict(Counter)
    for group, outcome, _ in _results.values():
        by_group[group][outcome] += 1
    width = max(len(g) for g in by_group) + 2
    tr.section("ONNX node conformance by op")
    tr.write_line(f"{'op':<{width}}{'passed':>8}{'failed':>8}{'skipped':>9}")
    total: Counter = Counter()
    for group in sorted(by_group):
        c = by_group[group]
        total.update(c)
        tr.write_line(f"{group:<{width}}{c['passed']:>8}{c['failed']:>8}{c['skipped']:>9}")
    tr.write_line(f"{'total':<{width}}{total['passed']:>8}{total['failed']:>8}{total['skipped']:>9}")
    cases = conformance_cases()
    tr.write_line(
        f"not tensor cases (sequence/optional inputs or outputs): {len(cases.not_tensor)}; "
        f"cases with ops lwnn does not convert: {len(cases.unsupported_ops)}; "
        f"cases run with parameter inputs as initializers (CONST_INPUTS): {len(_made_constant)}"
    )
    skips = sorted((nodeid.split("[", 1)[-1].rstrip("]"), reason)
                   for nodeid, (_, outcome, reason) in _results.items() if outcome == "skipped")
    if skips:
        tr.write_line("skip reasons:")
        for name, reason in skips:
            tr.write_line(f"  {name}: {reason}")
