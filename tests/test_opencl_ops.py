"""Every op on OpenCL against the CPU float backend, over test_ops' attribute grid.

The test functions of ``test_ops`` (the grid checked against onnxruntime) are collected here a
second time with ``check_op`` replaced by ``check_on_opencl``: the same one-node models and inputs,
but the oracle is lwnn's CPU float backend (itself checked against onnxruntime in test_ops), within
the float bound of docs/architecture.md, "Float accuracy" (1e-5 relative, absolute below
magnitude 1). Each case also checks that the layer ran on the device where the runtime has a kernel
for it, and on the CPU (with the copies recorded) where it does not.
"""

from __future__ import annotations

import pytest
import test_ops
from helpers import RTOL, make_node_model
from opencl_helpers import check_model_on_opencl

import lwnn

# Tests of test_ops that check an import error rather than calling check_op.
NOT_GRID = {"test_resize_rejects_out_of_scope_attributes"}


def check_on_opencl(
    op_type, inputs, attrs=None, *, const=(), opset=17, num_outputs=1, rtol=RTOL, oracle="onnxruntime"
):
    """``helpers.check_op``'s signature; the oracle is the CPU float backend."""
    model = make_node_model(op_type, inputs, attrs, const=const, opset=opset, num_outputs=num_outputs)
    const = set(const)
    feeds = {n: v for n, v in inputs.items() if v is not None and n not in const}
    m = lwnn.load(model)
    _, outputs = check_model_on_opencl(m, feeds, rtol)
    return [outputs[f"y{i}"] for i in range(num_outputs)]


@pytest.fixture(autouse=True)
def _oracle_is_cpu(monkeypatch):
    monkeypatch.setattr(test_ops, "check_op", check_on_opencl)


# Collect test_ops' grid (and its rng fixture) in this module.
globals().update(
    {
        name: obj
        for name, obj in vars(test_ops).items()
        if (name.startswith("test_") and callable(obj) and name not in NOT_GRID) or name == "rng"
    }
)


def test_grid_is_collected_and_runs_on_the_device(rng):
    """The reuse above really collects the grid, and a conv of the grid runs on the device."""
    collected = [
        n for n in globals() if n.startswith("test_") and n != "test_grid_is_collected_and_runs_on_the_device"
    ]
    assert {"test_conv2d", "test_conv_transpose2d", "test_gemm", "test_resize_linear", "test_pad"} <= set(
        collected
    )
    calls = []
    real = check_model_on_opencl

    def spy(model, feeds, rtol):
        rec, out = real(model, feeds, rtol)
        calls.append(dict(rec.executed_by))
        return rec, out

    import test_opencl_ops

    test_opencl_ops.check_model_on_opencl = spy
    try:
        test_ops.test_conv2d(rng, 3, 2, "p1", 2, "grouped", True)
    finally:
        test_opencl_ops.check_model_on_opencl = real
    assert calls == [{"conv0": "opencl/float"}]
