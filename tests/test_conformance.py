"""ONNX node conformance: every case of Debian's libonnx-testdata whose ops lwnn converts.

Each case's model runs on lwnn's CPU float backend and its outputs are compared with the
expected ``output_*.pb`` as ONNX's own backend test runner does
(``onnx/backend/test/runner/__init__.py``, ``assert_similar_outputs``): same shape, same dtype,
``np.testing.assert_allclose(rtol=1e-3, atol=1e-7)``, the defaults set for every node case in
``onnx/backend/test/loader/__init__.py``.

A case is skipped only when lwnn raises ``UnsupportedOpError`` (an attribute value or dtype it
rejects on purpose); ``tests/conftest.py`` prints the pass/fail/skip table by op at the end.

lwnn plans every shape before a run, so inputs such as Reshape's shape or Resize's scales must
be constants (``lwnn.importers.onnx_ops.CONST_INPUTS``). The ONNX cases feed them as graph
inputs; the harness moves those graph inputs into initializers with the data set's values, as
an exporter with fixed shapes would write them.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import NODE_DIR, Case, conformance_cases

import lwnn
from lwnn.importers.onnx_ops import CONST_INPUTS

if not NODE_DIR.is_dir():
    pytest.skip(
        f"ONNX node conformance data not found at {NODE_DIR} (apt-get install libonnx-testdata).",
        allow_module_level=True,
    )

RTOL, ATOL = 1e-3, 1e-7  # onnx.backend.test defaults for node cases
CASES = conformance_cases().runnable


def _read_tensors(folder, prefix: str) -> list[np.ndarray]:
    from onnx import TensorProto, numpy_helper

    files = sorted(folder.glob(f"{prefix}_*.pb"), key=lambda p: int(p.stem.split("_")[1]))
    return [numpy_helper.to_array(TensorProto.FromString(f.read_bytes())) for f in files]


def _with_constant_params(model, feeds: dict[str, np.ndarray]):
    """A copy of ``model`` whose graph inputs feeding a CONST_INPUTS slot are initializers."""
    from onnx import numpy_helper

    names = {
        node.input[i]
        for node in model.graph.node
        for i in CONST_INPUTS.get(node.op_type, ())
        if i < len(node.input) and node.input[i] in feeds
    }
    if not names:
        return model, feeds
    baked = type(model)()
    baked.CopyFrom(model)
    kept = [vi for vi in baked.graph.input if vi.name not in names]
    del baked.graph.input[:]
    baked.graph.input.extend(kept)
    baked.graph.initializer.extend(numpy_helper.from_array(feeds[n], n) for n in sorted(names))
    return baked, {n: v for n, v in feeds.items() if n not in names}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_node_case(case: Case, record_property):
    import onnx

    record_property("conformance_group", case.group)
    model = onnx.load(str(case.path / "model.onnx"))
    data_sets = sorted(case.path.glob("test_data_set_*"))
    assert data_sets, f"{case.name} has no test_data_set_* folder"
    for data in data_sets:
        inputs, expected = _read_tensors(data, "input"), _read_tensors(data, "output")
        feeds = {vi.name: x for vi, x in zip(model.graph.input, inputs)}
        case_model, feeds = _with_constant_params(model, feeds)
        if case_model is not model:
            record_property("inputs_made_constant", True)
        try:
            outputs = lwnn.load(case_model).run(feeds)
        except lwnn.UnsupportedOpError as err:
            record_property("skip_reason", str(err))
            pytest.skip(f"lwnn rejects it: {err}")
        for vi, ref in zip(model.graph.output, expected):
            out = outputs[vi.name]
            where = f"{case.name}/{data.name} output {vi.name!r}"
            assert out.shape == ref.shape, f"{where}: shape {out.shape}, expected {ref.shape}"
            assert out.dtype == ref.dtype, f"{where}: dtype {out.dtype}, expected {ref.dtype}"
            np.testing.assert_allclose(out, ref, rtol=RTOL, atol=ATOL, err_msg=where)
