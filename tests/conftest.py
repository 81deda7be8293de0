"""Test configuration: print the ONNX conformance table (passed / failed / skipped by op) at the
end of any run that included conformance cases.

The table is built from test reports, which pytest-xdist forwards to the controlling process,
so it is complete with ``-n auto`` too.
"""

from __future__ import annotations

from collections import Counter, defaultdict

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
