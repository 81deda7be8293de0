"""Conv + BatchNorm folding for runs that do not record."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import lwnn


def conv_bn_model(extra_consumer: bool) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w"),
        numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "b"),
        numpy_helper.from_array(rng.uniform(0.5, 2, 4).astype(np.float32), "gamma"),
        numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "beta"),
        numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "mean"),
        numpy_helper.from_array(rng.uniform(0.1, 3, 4).astype(np.float32), "var"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "gamma", "beta", "mean", "var"], ["y"], name="bn"),
    ]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4, 8, 8])]
    if extra_consumer:
        nodes.append(helper.make_node("Relu", ["c"], ["r"], name="relu"))
        outputs.append(helper.make_tensor_value_info("r", TensorProto.FLOAT, [2, 4, 8, 8]))
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 8, 8])], outputs, inits
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_folded_run_equals_recorded_run_and_recording_keeps_every_name():
    model = lwnn.load(conv_bn_model(extra_consumer=False))
    x = {"x": np.random.default_rng(1).standard_normal((2, 3, 8, 8)).astype(np.float32)}
    plan = model.plan({"x": (2, 3, 8, 8)})
    assert [layer.op_type for layer in plan.fast_steps] == ["Conv"]
    assert [layer.op_type for layer in plan.steps] == ["Conv", "BatchNorm"]
    fast = model.run(x)["y"]
    rec = model.run(x, record=True)
    assert "c" in rec and "y" in rec
    np.testing.assert_allclose(fast, rec["y"], rtol=1e-5, atol=1e-5 * np.abs(rec["y"]).max())


def test_conv_with_another_consumer_is_not_folded():
    model = lwnn.load(conv_bn_model(extra_consumer=True))
    plan = model.plan({"x": (2, 3, 8, 8)})
    assert [layer.op_type for layer in plan.fast_steps] == ["Conv", "BatchNorm", "Relu"]
