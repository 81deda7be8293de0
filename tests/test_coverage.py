"""The coverage table is generated from the registered ops and runtimes; the README shows it."""

from __future__ import annotations

import re
from pathlib import Path

from lwnn import coverage
from lwnn.backends import RUNTIME_COLUMNS
from lwnn.importers.onnx_ops import CONVERTERS
from lwnn.ops import OPS

README = Path(__file__).resolve().parents[1] / "README.md"


def test_print_coverage_tables():
    seed = coverage.to_markdown(coverage.seed_table())
    ops = coverage.to_markdown(coverage.op_table(), "Op")
    print("\n" + seed + "\n\n" + ops)
    assert seed.splitlines()[0].endswith(" | ".join(RUNTIME_COLUMNS) + " |")


def test_seed_layers_that_exist_run_on_cpu_float():
    for row in coverage.seed_table():
        if row.op_type != "-":
            assert row.support[0] == "Y", row
        assert set(row.support) <= {"Y", "C", "F", "N"}


def test_every_op_has_a_cpu_float_kernel():
    rows = {r.layer: r for r in coverage.op_table()}
    assert set(rows) == set(OPS)
    assert all(r.support[0] == "Y" for r in rows.values())


def test_columns_come_from_the_registered_runtimes():
    assert RUNTIME_COLUMNS == ("cpu float", "cpu s8", "cpu q8", "cpu q16",
                               "opencl float", "opencl s8", "opencl q8", "opencl q16")
    rows = {r.layer: dict(zip(RUNTIME_COLUMNS, r.support)) for r in coverage.seed_table()}
    assert rows["Conv2D"]["opencl s8"] == "Y"  # an OpenCL integer kernel
    assert rows["Pad"]["opencl q8"] == "C"  # no device kernel: the CPU's q8 kernel runs it
    assert rows["PReLU"]["opencl s8"] == rows["PReLU"]["cpu s8"] == "F"  # no s8 kernel anywhere
    assert rows["LSTM"]["opencl float"] == "F"


def test_every_onnx_converter_targets_a_known_op():
    assert len(CONVERTERS) >= 50
    assert {"Conv", "ConvTranspose", "Gemm", "Resize", "Upsample", "HardSwish"} <= set(CONVERTERS)


def test_readme_shows_the_generated_table():
    text = README.read_text()
    match = re.search(r"<!-- coverage:begin -->\n(.*?)\n<!-- coverage:end -->", text, re.S)
    assert match, "README.md lacks the <!-- coverage:begin/end --> block"
    assert match.group(1).strip() == coverage.to_markdown(coverage.seed_table()).strip(), (
        "README coverage table is stale; regenerate it with `python scripts/update_readme_coverage.py`"
    )
