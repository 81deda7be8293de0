"""Bad nodes are rejected with an ``LwnnError`` naming the node, the attribute or input and
expected versus received, never a bare exception or a silently wrong result (issue 13, the
groups found in the importer's converters, the ops' shape inference and the CPU float kernels).

Each group has its own minimal one-node model. Where onnxruntime rejects the model, the test
asserts that it does (the oracle is outside lwnn); each group also checks lwnn's own layer of the
check directly (the converter, ``Op.infer`` or the kernel), so the test says which code rejects it
whatever other checks run before it at import.

Invalid models cannot come from ``helpers.make_node_model`` (it runs ONNX's checker), so ``bad_model``
builds them without it.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import check_op, make_node_model
from onnx import TensorProto, helper, numpy_helper

import lwnn
from lwnn.backends.cpu import KERNELS
from lwnn.importers.onnx_ops import CONVERTERS, Node
from lwnn.ops import conv as c
from lwnn.ops import pool as p
from lwnn.ops import shape as s

RNG_SEED = 13
# Invalid models are the point here; ONNX's checker (which lwnn runs as a warning) says so too.
pytestmark = pytest.mark.filterwarnings("ignore:.*onnx.checker reports:UserWarning")

X = np.arange(2 * 5 * 5, dtype=np.float32).reshape(1, 2, 5, 5) / 10
W = np.linspace(-1, 1, 4 * 2 * 3 * 3, dtype=np.float32).reshape(4, 2, 3, 3)


def bad_model(op_type, inputs, attrs=None, *, const=(), opset=17, num_outputs=1):
    """A one-node model (node name "n0") that ONNX's checker may reject: graph inputs with their
    shapes, ``const`` names as initializers, a ``None`` input as '' (omitted)."""
    node = helper.make_node(op_type, [n if v is not None else "" for n, v in inputs.items()],
                            [f"y{i}" for i in range(num_outputs)], name="n0", **(attrs or {}))
    graph_inputs, initializers = [], []
    for name, value in inputs.items():
        if value is None:
            continue
        if name in const:
            initializers.append(numpy_helper.from_array(value, name))
        else:
            elem = helper.np_dtype_to_tensor_dtype(value.dtype)
            graph_inputs.append(helper.make_tensor_value_info(name, elem, value.shape))
    outputs = [helper.make_tensor_value_info(f"y{i}", TensorProto.FLOAT, None) for i in range(num_outputs)]
    graph = helper.make_graph([node], f"{op_type}_bad", graph_inputs, outputs, initializer=initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def feeds_of(inputs, const=()):
    return {n: v for n, v in inputs.items() if v is not None and n not in const}


def ort_rejects(model, feeds) -> bool:
    """Whether onnxruntime refuses the model, at load or at run."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 4
    try:
        session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        session.run(None, feeds)
    except Exception:  # onnxruntime's own exception types (Fail, InvalidGraph, InvalidArgument)
        return True
    return False


def lwnn_rejects(model, feeds, match: str | None = None) -> lwnn.LwnnError:
    """lwnn raises an LwnnError (never another exception) at load or at run; returns it."""
    with pytest.raises(lwnn.LwnnError, match=match) as info:
        lwnn.load(model).run(feeds)
    assert not isinstance(info.value, lwnn.KernelError), f"not lwnn's fault: {info.value}"
    return info.value


def node(op_type, attrs, inputs=("x", "w"), outputs=("y",), opset=17, consts=None):
    consts = consts or {}
    return Node("n0", op_type, list(inputs), list(outputs), dict(attrs), opset, consts.get, consts)


# --- 1. attributes of the wrong type -----------------------------------------------------------

WRONG_TYPES = {
    "tensor": numpy_helper.from_array(np.array([1, 1], np.int64)),
    "floats": [1.0, 1.0],
    "string": "ab",
    "int": 1,
}


@pytest.mark.parametrize("given", WRONG_TYPES, ids=str)
def test_attribute_of_the_wrong_type(given):
    inputs = dict(x=X, w=W)
    model = bad_model("Conv", inputs, dict(strides=WRONG_TYPES[given]), const=("w",))
    assert ort_rejects(model, feeds_of(inputs, ("w",)))
    lwnn_rejects(model, feeds_of(inputs, ("w",)))
    # The converter's own check: node, attribute, expected versus received type.
    value = helper.get_attribute_value(helper.make_attribute("strides", WRONG_TYPES[given]))
    with pytest.raises(lwnn.ModelFormatError, match=r"Node 'n0' \(Conv\): attribute 'strides' must be INTS"):
        CONVERTERS["Conv"](node("Conv", dict(strides=value)))


def test_typed_attribute_accessors_name_node_and_attribute():
    n = node("Gemm", dict(alpha=1, transA=1.5, perm=["a"]))
    with pytest.raises(lwnn.ModelFormatError, match=r"'alpha' must be FLOAT.*Received INT 1"):
        n.float_attr("alpha", 1.0)
    with pytest.raises(lwnn.ModelFormatError, match=r"'transA' must be INT.*Received FLOAT 1.5"):
        n.int_attr("transA", 0)
    with pytest.raises(lwnn.ModelFormatError, match=r"'perm' must be INTS.*Received STRINGS"):
        n.ints("perm")
    # A float where the schema says FLOAT but the model gives an INT: rejected as onnxruntime does.
    inputs = dict(x=X)
    model = bad_model("LeakyRelu", inputs, dict(alpha=1))
    assert ort_rejects(model, inputs)
    lwnn_rejects(model, inputs)


# --- 2. window attributes of the wrong length or sign: shape inference rejects them -------------

BAD_WINDOWS = [
    ("Conv", dict(strides=[0, 1]), "strides", ">= 1"),
    ("Conv", dict(strides=[1, 1, 1]), "strides", "2 values"),
    ("Conv", dict(dilations=[0, 1]), "dilations", ">= 1"),
    ("Conv", dict(pads=[1, 1]), "pads", "4 values"),
    ("Conv", dict(pads=[-1, 0, 0, 0]), "pads", ">= 0"),
    ("Conv", dict(group=0), "group", ">= 1"),
    ("MaxPool", dict(kernel_shape=[0, 2]), "kernel_shape", ">= 1"),
    ("MaxPool", dict(kernel_shape=[2]), "kernel_shape", "2 values"),
    ("MaxPool", dict(kernel_shape=[2, 2], strides=[-1, 1]), "strides", ">= 1"),
    ("MaxPool", dict(kernel_shape=[2, 2], pads=[2, 2, 2, 2]), "pads smaller than the kernel", ""),
    ("MaxPool", dict(kernel_shape=[2, 2], dilations=[1]), "dilations", "2 values"),
    ("ConvTranspose", dict(output_padding=[-1, 0]), "output_padding", ">= 0"),
    ("ConvTranspose", dict(strides=[2, 2], output_padding=[2, 2]), "output_padding below max", ""),
    ("ConvTranspose", dict(output_shape=[10]), "output_shape", "2 values"),
    ("ConvTranspose", dict(pads=[9, 9, 9, 9]), "output spatial size", ""),
]


def _window_case(op_type, attrs):
    w = W if op_type == "Conv" else W.transpose(1, 0, 2, 3).copy()  # ConvTranspose: [C, M, k, k]
    inputs = dict(x=X) if op_type.endswith("Pool") else dict(x=X, w=w)
    return inputs, ("w",) if "w" in inputs else ()


@pytest.mark.parametrize("op_type, attrs, attribute, expected", BAD_WINDOWS,
                         ids=[f"{t}-{a}" for t, a, *_ in BAD_WINDOWS])
def test_window_attributes_are_checked(op_type, attrs, attribute, expected):
    inputs, const = _window_case(op_type, attrs)
    model = bad_model(op_type, inputs, attrs, const=const)
    feeds = feeds_of(inputs, const)
    assert ort_rejects(model, feeds)
    lwnn_rejects(model, feeds)
    # Shape inference itself: a ShapeError naming the op and the attribute.
    op, _ = CONVERTERS[op_type].__wrapped__(node(op_type, attrs, inputs=list(inputs)))
    with pytest.raises(lwnn.ShapeError, match=rf"{op_type}.*{attribute}.*{expected}"):
        op.infer([v.shape for v in inputs.values()], [None] * len(inputs))


def test_nothing_reaches_a_kernel_unchecked():
    # The kernels take their geometry from the op, which checks it: a folded layer (one whose
    # inputs are all constants, run without shape inference) cannot slip through either.
    with pytest.raises(lwnn.ShapeError, match=r"Conv expects every value of strides to be >= 1"):
        KERNELS["Conv"](c.Conv(strides=(0, 1)), X, W)
    with pytest.raises(lwnn.ShapeError, match=r"MaxPool expects pads to have 4 values"):
        KERNELS["MaxPool"](p.MaxPool(kernel_shape=(2, 2), pads=(1, 1)), X)
    with pytest.raises(lwnn.ShapeError, match=r"Slice expects axes in \[-4, 3\]"):
        KERNELS["Slice"](s.Slice(), X, np.array([0]), np.array([1]), np.array([7]))
    # A node folded at import is shape-checked first, and the error names the node.
    inputs = dict(x=X, w=W)
    model = bad_model("Conv", inputs, dict(pads=[1, 1, 1, 1, 1, 1]), const=("x", "w"))
    lwnn_rejects(model, {}, match="n0")


PAD_CASES = [
    ("constant", [0, 3, 0, -3], True),  # pad 3 in front, then remove 3 at the end: [0, 0]
    ("constant", [0, -1, 0, 2], True),
    ("edge", [0, -1, 0, 2], True),
    ("reflect", [0, 3, 0, 0], False),  # reflect mirrors at most length - 1
    ("edge", [0, 1, 0, -3], False),  # nothing left of the axis to copy
    ("constant", [0, -2, 0, -2], False),  # removes more than the axis
]


@pytest.mark.parametrize("mode, pads, valid", PAD_CASES, ids=[f"{m}-{p}" for m, p, _ in PAD_CASES])
def test_pad_widths_as_onnxruntime_takes_them(mode, pads, valid):
    inputs = dict(x=np.array([[1.0, 2.0, 3.0]], np.float32), pads=np.array(pads, np.int64))
    if valid:
        check_op("Pad", inputs, dict(mode=mode), const=("pads",))
        return
    model = make_node_model("Pad", inputs, dict(mode=mode), const=("pads",))
    assert ort_rejects(model, {"x": inputs["x"]})
    lwnn_rejects(model, {"x": inputs["x"]}, match=r"Layer 'pad0' \(Pad\): Pad ")


# --- 3. silently wrong before: onnxruntime rejects them, so must lwnn --------------------------

SILENT = [
    ("dilations", dict(dilations=[-1, -1]), r"dilations to be >= 1"),
    ("six pads", dict(pads=[1, 1, 1, 1, 1, 1]), r"pads to have 4 values"),
    ("same_upper", dict(auto_pad="same_upper"), r"auto_pad to be one of NOTSET, SAME_UPPER"),
    ("bogus", dict(auto_pad="BOGUS"), r"Received auto_pad='BOGUS'"),
]


@pytest.mark.parametrize("attrs, message", [case[1:] for case in SILENT], ids=[case[0] for case in SILENT])
def test_silently_wrong_conv_is_rejected(attrs, message):
    inputs = dict(x=X, w=W)
    model = bad_model("Conv", inputs, attrs, const=("w",))
    assert ort_rejects(model, {"x": X})
    lwnn_rejects(model, {"x": X})
    with pytest.raises(lwnn.ShapeError, match=message):
        c.Conv(**{k: tuple(v) if isinstance(v, list) else v for k, v in attrs.items()}).infer(
            [X.shape, W.shape], [None, W])


SCALES = np.array([1, 1, 2, 2], np.float32)
BAD_ENUMS = [
    ("Resize", dict(x=X, roi=None, scales=SCALES), dict(mode="bilinear"), ("scales",)),
    ("Resize", dict(x=X, roi=None, scales=SCALES), dict(mode="NEAREST"), ("scales",)),
    ("Resize", dict(x=X, roi=None, scales=SCALES), dict(coordinate_transformation_mode="HALF_PIXEL"),
     ("scales",)),
    ("Resize", dict(x=X, roi=None, scales=SCALES), dict(nearest_mode="round"), ("scales",)),
    ("Resize", dict(x=X, roi=None, scales=np.array([1, 1, 0, 2], np.float32)), {}, ("scales",)),
    ("Pad", dict(x=X, pads=np.zeros(8, np.int64)), dict(mode="CONSTANT"), ("pads",)),
    ("MaxPool", dict(x=X), dict(kernel_shape=[2, 2], storage_order=2), ()),
    ("ConvTranspose", dict(x=X, w=W.transpose(1, 0, 2, 3).copy()), dict(auto_pad="same_lower"), ("w",)),
]


@pytest.mark.parametrize("op_type, inputs, attrs, const", BAD_ENUMS,
                         ids=[f"{t}-{a}" for t, _, a, _ in BAD_ENUMS])
def test_out_of_range_enum_values_are_rejected(op_type, inputs, attrs, const):
    model = bad_model(op_type, inputs, attrs, const=const)
    feeds = feeds_of(inputs, const)
    assert ort_rejects(model, feeds)
    error = lwnn_rejects(model, feeds)
    assert "n0" in str(error)


# --- 4. attributes the op does not define ------------------------------------------------------

UNKNOWN = [
    ("Relu", 17, dict(alpha=0.5), r"unknown attribute 'alpha'\. Relu-14 defines: none"),
    ("Conv", 17, dict(foo=1), r"unknown attribute 'foo'\. Conv-11 defines: auto_pad, dilations, group, "
                              r"kernel_shape, pads, strides"),
    # num_outputs came with Split-18: unknown at opset 17.
    ("Split", 17, dict(axis=1, num_outputs=2), r"unknown attribute 'num_outputs'\. Split-13 defines: axis"),
]


@pytest.mark.parametrize("op_type, opset, attrs, message", UNKNOWN, ids=[u[0] for u in UNKNOWN])
def test_unknown_attributes_are_rejected(op_type, opset, attrs, message):
    inputs = dict(x=X, w=W) if op_type == "Conv" else dict(x=X)
    const = ("w",) if op_type == "Conv" else ()
    outputs = 2 if op_type == "Split" else 1
    model = bad_model(op_type, inputs, attrs, const=const, opset=opset, num_outputs=outputs)
    assert ort_rejects(model, {"x": X})
    lwnn_rejects(model, {"x": X})
    n = node(op_type, attrs, inputs=list(inputs), outputs=[f"y{i}" for i in range(outputs)], opset=opset)
    with pytest.raises(lwnn.ModelFormatError, match=rf"Node 'n0' \({op_type}\), opset {opset}: {message}"):
        CONVERTERS[op_type](n)


def test_attributes_of_a_later_opset_are_known_there():
    # The schema in effect at the model's opset decides: num_outputs is valid Split-18.
    model = make_node_model("Split", dict(x=X), dict(axis=1, num_outputs=2), opset=18, num_outputs=2)
    out = lwnn.load(model).run({"x": X})
    np.testing.assert_array_equal(out["y0"], X[:, :1])
    # and an op used before ONNX defined it is rejected, as onnxruntime rejects it.
    model = bad_model("HardSwish", dict(x=X), opset=13)
    assert ort_rejects(model, {"x": X})
    lwnn_rejects(model, {"x": X}, match="added in opset 14")


# --- 5. a required input given as '' -----------------------------------------------------------

@pytest.mark.parametrize("op_type, inputs, index, formal", [
    ("Conv", dict(x=X, w=None), 1, "W"),
    ("Gemm", dict(a=np.ones((2, 3), np.float32), b=None, c=np.ones(4, np.float32)), 1, "B"),
    ("Concat", dict(x=X, z=None), 1, "inputs"),
], ids=["Conv-W", "Gemm-B", "Concat-variadic"])
def test_required_input_given_as_empty(op_type, inputs, index, formal):
    attrs = dict(axis=1) if op_type == "Concat" else {}
    model = bad_model(op_type, inputs, attrs)
    feeds = feeds_of(inputs)
    assert ort_rejects(model, feeds)
    lwnn_rejects(model, feeds)
    n = node(op_type, attrs, inputs=[k if v is not None else "" for k, v in inputs.items()])
    with pytest.raises(lwnn.ModelFormatError,
                       match=rf"Node 'n0' \({op_type}\), opset 17: input {index} \({formal}\) is required"):
        CONVERTERS[op_type](n)


def test_missing_inputs_in_shape_inference_are_shape_errors():
    with pytest.raises(lwnn.ShapeError, match=r"Conv expects input 1 \(W\)\. Received none"):
        c.Conv().infer([X.shape, None], [None, None])
    with pytest.raises(lwnn.ShapeError, match=r"Dense expects input 1 \(B\)"):
        c.Dense().infer([(2, 3)], [None])


# --- 6. Gather indices out of range ------------------------------------------------------------

@pytest.mark.parametrize("constant", [True, False], ids=["constant", "fed"])
@pytest.mark.parametrize("index", [7, -6])
def test_gather_index_out_of_range(constant, index):
    inputs = dict(x=X, i=np.array([0, index], np.int64))
    const = ("i",) if constant else ()
    model = make_node_model("Gather", inputs, dict(axis=2), const=const)
    feeds = feeds_of(inputs, const)
    assert ort_rejects(model, feeds)
    lwnn_rejects(model, feeds, match=rf"Layer 'gather0' \(Gather\): Gather index {index} is out of range "
                                     r"for axis 2 of size 5 .*valid indices are -5\.\.4")


def test_gather_index_in_range_still_works():
    check_op("Gather", dict(x=X, i=np.array([[-5, 4], [0, -1]], np.int64)), dict(axis=2), const=("i",))
    check_op("Gather", dict(x=X, i=np.array([-5, 4], np.int64)), dict(axis=3))


# --- 7. empty batches --------------------------------------------------------------------------

def test_bundled_cnn_runs_an_empty_batch():
    import onnxruntime as ort

    from lwnn import data

    path = data.default_model_path()
    x = np.zeros((0, 1, 28, 28), np.float32)
    expected = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"image": x})
    got = lwnn.load(path).run({"image": x})
    assert [v.shape for v in got.values()] == [e.shape for e in expected] == [(0, 10)]
    assert [v.dtype for v in got.values()] == [e.dtype for e in expected]


X0 = np.zeros((0, 4, 6, 6), np.float32)
EMPTY_BATCH = [
    ("Conv", dict(x=X0, w=np.ones((8, 4, 3, 3), np.float32), b=np.ones(8, np.float32)),
     dict(pads=[1, 1, 1, 1]), ("w", "b")),
    ("Conv", dict(x=X0, w=np.ones((8, 4, 1, 1), np.float32)), {}, ("w",)),
    ("Conv", dict(x=X0, w=np.ones((4, 1, 3, 3), np.float32)), dict(group=4), ("w",)),
    ("Conv", dict(x=X0, w=np.ones((8, 2, 3, 3), np.float32)), dict(group=2, strides=[2, 2]), ("w",)),
    ("ConvTranspose", dict(x=X0, w=np.ones((4, 3, 3, 3), np.float32), b=np.ones(3, np.float32)),
     dict(strides=[2, 2]), ("w", "b")),
    ("MaxPool", dict(x=X0), dict(kernel_shape=[2, 2], strides=[2, 2]), ()),
    ("AveragePool", dict(x=X0), dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1]), ()),
    ("GlobalAveragePool", dict(x=X0), {}, ()),
    ("Gemm", dict(a=np.zeros((0, 5), np.float32), b=np.ones((5, 3), np.float32), c=np.ones(3, np.float32)),
     {}, ("b", "c")),
    ("MatMul", dict(a=np.zeros((0, 5), np.float32), b=np.ones((5, 3), np.float32)), {}, ("b",)),
    ("Add", dict(x=X0, y=np.ones((4, 1, 1), np.float32)), {}, ("y",)),
    ("Relu", dict(x=X0), {}, ()),
    ("Softmax", dict(x=np.zeros((0, 10), np.float32)), {}, ()),
    ("Concat", dict(x=X0, y=X0), dict(axis=1), ()),
    ("Reshape", dict(x=X0, shape=np.array([-1, 144])), {}, ("shape",)),
    ("Flatten", dict(x=X0), {}, ()),
    ("ReduceSum", dict(x=X0, axes=np.array([0])), {}, ("axes",)),
    ("Resize", dict(x=X0, roi=None, scales=SCALES), {}, ("scales",)),
]


@pytest.mark.parametrize("op_type, inputs, attrs, const", EMPTY_BATCH,
                         ids=[f"{t}-{i}" for i, (t, *_) in enumerate(EMPTY_BATCH)])
def test_empty_batch_runs_like_onnxruntime(op_type, inputs, attrs, const):
    (out,) = check_op(op_type, inputs, attrs, const=const)
    assert out.shape[0] in (0, 1)  # ReduceSum over the empty batch axis keeps it, as 1


def test_softmax_legacy_axis_and_reductions_on_an_empty_batch():
    import onnxruntime as ort

    check_op("Softmax", dict(x=np.zeros((0, 10), np.float32)), dict(axis=1), opset=11)
    # Reducing nothing: -inf for a max, +inf for a min, as ONNX says and onnxruntime gives.
    for op_type in ("ReduceMax", "ReduceMin"):
        model = make_node_model(op_type, dict(x=X0), dict(axes=[0]), opset=13)
        (want,) = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
            None, {"x": X0})
        got = lwnn.load(model).run({"x": X0})["y0"]
        assert got.shape == want.shape == (1, 4, 6, 6) and got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


# --- found by scripts/fuzz.py (the seeds that found them: attributes:386, attributes:163/275,
# initializers:248) --------------------------------------------------------------------------------

def _load_refused(model, error, match):
    with pytest.raises(error, match=match):
        lwnn.load(model)


def test_huge_strides_are_refused_before_index_arithmetic_overflows():
    x, w = np.zeros((1, 1, 5, 5), np.float32), np.ones((1, 1, 3, 3), np.float32)
    model = make_node_model("Conv", {"x": x, "w": w}, {"strides": [2**62, 2**62]}, const=["w"])
    _load_refused(model, lwnn.ShapeError, "strides to be <= 2147483647")


@pytest.mark.parametrize("op_type", ["MaxPool", "AveragePool"])
@pytest.mark.parametrize("ceil_mode", [100, -1])
def test_ceil_mode_other_than_0_or_1_is_refused(op_type, ceil_mode):
    x = np.zeros((1, 1, 7, 7), np.float32)
    model = make_node_model(op_type, {"x": x}, {"kernel_shape": [2, 2], "ceil_mode": ceil_mode})
    _load_refused(model, lwnn.ShapeError, f"ceil_mode must be 0 or 1. Received {ceil_mode}")


def test_clip_bounds_must_be_scalars():
    x = np.zeros((2, 3), np.float32)
    model = make_node_model("Clip", {"x": x, "lo": np.zeros(2, np.float32)}, const=["lo"])
    _load_refused(model, lwnn.LwnnError, r"min must be one value \(a scalar\). Received shape \(2,\)")
