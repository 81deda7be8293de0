"""Broken and unusual ONNX graphs (issue 13's graph-level groups): each is loaded as onnxruntime
would — sorted when its nodes are out of order, optional where an input has a default — or refused
with an ``LwnnError`` naming the node, tensor or version, never a bare exception. Where the model
is invalid, onnxruntime (the oracle outside lwnn) refuses it too. And the memory guard refuses a
tensor larger than the limit before allocating it.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import lwnn

X = np.arange(6, dtype=np.float32).reshape(2, 3) - 2.5


def graph_model(nodes, *, inputs=("x",), outputs=("y",), initializers=(), opset=17, ir_version=8,
                input_shape=(2, 3)):
    """A model of ``nodes`` over float inputs of ``input_shape``; checked by nothing, on purpose."""
    graph = helper.make_graph(
        list(nodes), "bad",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, input_shape) for n in inputs],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs],
        initializer=list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=ir_version)


def ort_session(model):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def ort_rejects(model) -> bool:
    try:
        ort_session(model)
    except Exception:  # onnxruntime's own exception types
        return True
    return False


def load_refused(model, error=lwnn.ModelFormatError, match=None):
    with pytest.raises(error, match=match) as err:
        lwnn.load(model)
    assert not isinstance(err.value, lwnn.KernelError)
    return str(err.value)


def test_nodes_out_of_order_are_sorted_as_onnxruntime_does():
    nodes = [helper.make_node("Relu", ["a"], ["y"], name="second"),
             helper.make_node("Neg", ["x"], ["a"], name="first")]
    model = graph_model(nodes)
    got = lwnn.load(model).run({"x": X})["y"]
    want = ort_session(model).run(None, {"x": X})[0]
    np.testing.assert_array_equal(got, want)


def test_an_input_nothing_produces_is_named():
    model = graph_model([helper.make_node("Add", ["x", "w"], ["y"], name="add")])  # "w" was deleted
    message = load_refused(model)
    assert "'add'" in message and "'w'" in message and "no node produces" in message
    assert ort_rejects(model)


def test_a_cycle_is_refused():
    nodes = [helper.make_node("Add", ["x", "b"], ["a"], name="a_from_b"),
             helper.make_node("Relu", ["a"], ["b"], name="b_from_a"),
             helper.make_node("Identity", ["a"], ["y"], name="out")]
    load_refused(graph_model(nodes), match="cycle")
    assert ort_rejects(graph_model(nodes))


def test_two_nodes_writing_one_tensor_is_a_format_error_not_a_kernel_error():
    nodes = [helper.make_node("Relu", ["x"], ["y"], name="one"),
             helper.make_node("Neg", ["x"], ["y"], name="two")]
    message = load_refused(graph_model(nodes))
    assert "'y'" in message and "'one'" in message and "'two'" in message
    assert ort_rejects(graph_model(nodes))


def test_a_node_writing_an_initializer_is_refused():
    w = numpy_helper.from_array(np.ones((2, 3), np.float32), "w")
    nodes = [helper.make_node("Relu", ["x"], ["w"], name="overwrite"),
             helper.make_node("Add", ["x", "w"], ["y"])]
    load_refused(graph_model(nodes, initializers=[w]), match="'w'")


def test_an_initializer_listed_twice_is_refused():
    one = numpy_helper.from_array(np.ones((2, 3), np.float32), "w")
    two = numpy_helper.from_array(np.full((2, 3), 2, np.float32), "w")
    message = load_refused(graph_model([helper.make_node("Add", ["x", "w"], ["y"])], initializers=[one, two]))
    assert "'w'" in message and "twice" in message


@pytest.mark.parametrize("dims", [[2, 4], [7]])
def test_initializer_dims_that_do_not_match_the_data_are_refused(dims):
    w = numpy_helper.from_array(np.ones((2, 3), np.float32), "w")
    del w.dims[:]
    w.dims.extend(dims)
    model = graph_model([helper.make_node("Add", ["x", "w"], ["y"])], initializers=[w])
    message = load_refused(model)
    assert "'w'" in message and str(dims) in message
    assert ort_rejects(model)


def test_negative_initializer_dims_are_refused():
    w = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[-1])
    model = graph_model([helper.make_node("Add", ["x", "w"], ["y"])], initializers=[w])
    load_refused(model, match="negative")


def test_a_graph_output_nobody_writes_is_named():
    model = graph_model([helper.make_node("Relu", ["x"], ["y"])], outputs=("y", "ghost"))
    message = load_refused(model)
    assert "'ghost'" in message
    assert ort_rejects(model)


@pytest.mark.parametrize("opset,ir_version", [(100, 8), (-1, 8), (17, 99)])
def test_unknown_opsets_and_ir_versions_are_refused(opset, ir_version):
    model = graph_model([helper.make_node("Relu", ["x"], ["y"])], opset=opset, ir_version=ir_version)
    message = load_refused(model)
    assert (f"opset {opset}" in message) if ir_version == 8 else (f"IR version {ir_version}" in message)
    assert ort_rejects(model)


def test_weights_relabelled_as_another_type_are_refused_as_onnxruntime_does():
    w = numpy_helper.from_array(np.ones((1, 1, 3, 3), np.int32), "w")
    model = graph_model([helper.make_node("Conv", ["x", "w"], ["y"], name="conv")], initializers=[w],
                        input_shape=(1, 1, 4, 4))
    message = load_refused(model)
    assert "Conv" in message and "int32" in message
    assert ort_rejects(model)


def test_attribute_values_the_op_forbids_are_refused_as_onnxruntime_does():
    w = numpy_helper.from_array(np.ones((1, 1, 3, 3), np.float32), "w")
    model = graph_model([helper.make_node("Conv", ["x", "w"], ["y"], name="conv", dilations=[-1, -1])],
                        initializers=[w], input_shape=(1, 1, 4, 4))
    assert "dilations" in load_refused(model)
    assert ort_rejects(model)


def test_a_name_that_is_not_utf8_is_a_format_error(tmp_path):
    model = graph_model([helper.make_node("Relu", ["x"], ["y"], name="relu_node")])
    data = model.SerializeToString().replace(b"relu_node", b"relu\xff\xfeode")
    path = tmp_path / "bad.onnx"
    path.write_bytes(data)
    with pytest.raises(lwnn.ModelFormatError):
        lwnn.load(path)


def test_missing_external_data_is_a_format_error(tmp_path):
    w = numpy_helper.from_array(np.ones((2, 3), np.float32), "w")
    model = graph_model([helper.make_node("Add", ["x", "w"], ["y"])], initializers=[w])
    onnx.save_model(model, tmp_path / "m.onnx", save_as_external_data=True, all_tensors_to_one_file=True,
                    location="weights.bin", size_threshold=0)
    (tmp_path / "weights.bin").unlink()
    with pytest.raises(lwnn.ModelFormatError, match="m.onnx"):
        lwnn.load(tmp_path / "m.onnx")


# --- inputs with a default (IR >= 4) -----------------------------------------------------------

def _with_default(ir_version=8):
    bias = numpy_helper.from_array(np.full((2, 3), 10, np.float32), "bias")
    return graph_model([helper.make_node("Add", ["x", "bias"], ["y"], name="add")], inputs=("x", "bias"),
                       initializers=[bias], ir_version=ir_version)


def test_an_input_with_a_default_stays_an_optional_input():
    model = _with_default()
    m = lwnn.load(model)
    assert list(m.inputs) == ["x", "bias"]  # required first
    assert m.graph.inputs["bias"].optional and not m.graph.inputs["x"].optional
    sess = ort_session(model)
    np.testing.assert_array_equal(m.run({"x": X})["y"], sess.run(None, {"x": X})[0])  # the default
    b = np.full((2, 3), -1, np.float32)
    np.testing.assert_array_equal(m.run({"x": X, "bias": b})["y"], sess.run(None, {"x": X, "bias": b})[0])
    with pytest.raises(lwnn.FeedError, match="missing \\['x'\\]"):
        m.run({"bias": b})


def test_before_ir4_an_initializer_listed_as_input_is_a_constant():
    m = lwnn.load(_with_default(ir_version=3))
    assert list(m.inputs) == ["x"]
    np.testing.assert_array_equal(m.run({"x": X})["y"], X + 10)


def test_a_model_whose_only_input_has_a_default_can_be_quantized():
    x0 = numpy_helper.from_array(np.zeros((4, 3), np.float32), "x")
    w = numpy_helper.from_array(np.linspace(-1, 1, 6, dtype=np.float32).reshape(3, 2), "w")
    model = graph_model([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], inputs=("x",),
                        initializers=[x0, w], input_shape=(4, 3))
    m = lwnn.load(model)
    assert list(m.inputs) == ["x"]
    calib = {"x": np.random.default_rng(0).standard_normal((8, 4, 3)).astype(np.float32)[0]}
    q = lwnn.quantize(m, calib, "s8", progress=False)
    got = q.run({"x": calib["x"]})["y"]
    assert np.abs(got - calib["x"] @ numpy_helper.to_array(w)).max() < 0.05


# --- graphs built without an importer ----------------------------------------------------------

def test_planning_names_a_dangling_input_of_any_graph():
    from lwnn.ops.elementwise import Relu

    graph = lwnn.Graph({"x": lwnn.TensorSpec("x", np.float32, (2, 3))}, ["y"],
                       [lwnn.Layer("relu", Relu(), ("nowhere",), ("y",))])
    with pytest.raises(lwnn.LwnnError, match="'relu'.*'nowhere'"):
        lwnn.Model(graph).run({"x": X})


# --- the memory guard ------------------------------------------------------------------------

def test_a_petabyte_constant_is_refused_at_import_without_allocating():
    shape = numpy_helper.from_array(np.array([1 << 25, 1 << 25], np.int64), "shape")
    nodes = [helper.make_node("ConstantOfShape", ["shape"], ["big"], name="fill"),
             helper.make_node("Relu", ["x"], ["y"], name="relu")]
    with pytest.raises(lwnn.MemoryLimitError, match="'fill'.*'big'.*4,503,599,627,370,496 bytes"):
        lwnn.load(graph_model(nodes, initializers=[shape], outputs=("y", "big")))


def test_an_upsampling_of_ten_thousand_is_refused_when_planned():
    scales = numpy_helper.from_array(np.array([1, 1, 1e4, 1e4], np.float32), "scales")
    nodes = [helper.make_node("Resize", ["x", "", "scales"], ["y"], name="huge", mode="nearest")]
    m = lwnn.load(graph_model(nodes, initializers=[scales], input_shape=(1, 3, 8, 8)))
    with pytest.raises(lwnn.MemoryLimitError, match="'huge'.*\\(1, 3, 80000, 80000\\)"):
        m.run({"x": np.zeros((1, 3, 8, 8), np.float32)})


def test_the_memory_limit_can_be_set(monkeypatch):
    m = lwnn.load(graph_model([helper.make_node("Relu", ["x"], ["y"], name="relu")]))
    lwnn.set_memory_limit(16)
    expected = "24 bytes as 4-byte values, more than the memory limit of 16 b"
    try:
        with pytest.raises(lwnn.MemoryLimitError, match=expected):
            m.run({"x": X})
    finally:
        lwnn.set_memory_limit(None)
    monkeypatch.setenv("LWNN_MEMORY_LIMIT", "1K")
    assert lwnn.memory_limit() == 1024
    m.run({"x": X})
    with pytest.raises(lwnn.LwnnError, match="set_memory_limit expects"):
        lwnn.set_memory_limit(-5)


@pytest.mark.parametrize("dims", [[1], [-1]])
def test_a_constant_node_whose_data_does_not_match_its_dims_is_refused(dims):
    value = numpy_helper.from_array(np.ones(3, np.float32), "v")
    del value.dims[:]
    value.dims.extend(dims)
    nodes = [helper.make_node("Constant", [], ["c"], name="const", value=value),
             helper.make_node("Add", ["x", "c"], ["y"], name="add")]
    message = load_refused(graph_model(nodes))
    if dims == [1]:  # ([-1] is already refused by ONNX's shape check, naming the Add)
        assert "'const'" in message and str(dims) in message


def test_nan_in_a_weight_is_refused():
    w = numpy_helper.from_array(np.array([[1, np.nan, 3]] * 2, np.float32), "w")
    message = load_refused(graph_model([helper.make_node("Add", ["x", "w"], ["y"])], initializers=[w]))
    assert "'w'" in message and "2 NaN" in message


def test_nonfinite_feeds_are_refused_naming_the_input():
    m = lwnn.load(graph_model([helper.make_node("Relu", ["x"], ["y"])]))
    bad = X.copy()
    bad[1, 2] = np.nan
    bad[0, 0] = -np.inf
    with pytest.raises(lwnn.FeedError, match=r"Input 'x' has 1 NaN and 1 Inf values out of 6 \(the first at "
                                             r"index \(0, 0\)\)"):
        m.run({"x": bad})


def test_a_transposed_convolution_with_strides_of_a_million_is_refused_when_planned():
    w = numpy_helper.from_array(np.ones((1, 1, 3, 3), np.float32), "w")
    nodes = [helper.make_node("ConvTranspose", ["x", "w"], ["y"], name="up", strides=[1 << 20, 1 << 20])]
    m = lwnn.load(graph_model(nodes, initializers=[w], input_shape=(1, 1, 8, 8)))
    with pytest.raises(lwnn.MemoryLimitError, match="'up'.*'y'"):
        m.run({"x": np.zeros((1, 1, 8, 8), np.float32)})


def test_an_expand_to_a_petabyte_is_refused():
    shape = numpy_helper.from_array(np.array([1 << 20, 1 << 20, 2, 3], np.int64), "shape")
    nodes = [helper.make_node("Expand", ["x", "shape"], ["y"], name="grow")]
    m = lwnn.load(graph_model(nodes, initializers=[shape]))
    with pytest.raises(lwnn.MemoryLimitError, match="'grow'.*26,388,279,066,624 bytes"):
        m.run({"x": X})


def test_an_attribute_given_twice_is_refused():
    node = helper.make_node("Softmax", ["x"], ["y"], name="soft", axis=1)
    node.attribute.append(helper.make_attribute("axis", 0))
    model = graph_model([node])
    message = load_refused(model)
    assert "'soft'" in message and "'axis'" in message and "twice" in message
    assert ort_rejects(model)


def test_two_nodes_with_one_name_are_refused():
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="same"),
             helper.make_node("Neg", ["a"], ["y"], name="same")]
    assert "'same'" in load_refused(graph_model(nodes))
    assert ort_rejects(graph_model(nodes))


def test_an_lstm_without_hidden_size_is_refused():
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((1, 8, 3)).astype(np.float32), "w")
    r = numpy_helper.from_array(rng.standard_normal((1, 8, 2)).astype(np.float32), "r")
    model = graph_model([helper.make_node("LSTM", ["x", "w", "r"], ["y"], name="lstm")], initializers=[w, r],
                        input_shape=(4, 1, 3))
    assert "hidden_size must be given" in load_refused(model)
    assert ort_rejects(model)
