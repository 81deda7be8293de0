"""Every ONNX op lwnn converts, on a grid of attributes, once per backend (the ``backend``
fixture of conftest.py): on the CPU against onnxruntime (``check_op``), on OpenCL against lwnn's CPU
float backend (``opencl_helpers.check_op_on_opencl``), which also checks that each layer ran on the
device where the runtime has a kernel for it and on the CPU where it does not. Tests in
``CPU_ONLY`` do not run a node and take no backend."""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pytest
from helpers import check_op, make_node_model

import lwnn

RNG_SEED = 1234  # the shared ``rng`` fixture's seed here (conftest.py)

# Tests that check an import error rather than running a node: CPU only.
CPU_ONLY = {"test_resize_rejects_out_of_scope_attributes"}


@pytest.fixture
def check(backend):
    """``check_op`` on ``backend`` (conftest.py): "cpu" against onnxruntime (or the ONNX reference
    where a test says so), "opencl" against lwnn's CPU float backend."""
    return functools.partial(check_op, backend=backend)


def randn(rng, *shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


def ints(*values):
    return np.array(values, dtype=np.int64)


def floats(*values):
    return np.array(values, dtype=np.float32)


# --- Conv ------------------------------------------------------------------------------------

# (group, input channels, output channels): plain, grouped, depthwise x1 and depthwise x2.
GROUPS = {"plain": (1, 4, 6), "grouped": (2, 4, 6), "dw1": (4, 4, 4), "dw2": (4, 4, 8)}
PADS_2D = {"p0": (0, 0, 0, 0), "p1": (1, 1, 1, 1), "asym": (0, 1, 2, 1)}
PADS_1D = {"p0": (0, 0), "p1": (1, 1), "asym": (2, 1)}


def _conv(check, rng, spatial, kernel, group_key, bias, **attrs):
    group, c, m = GROUPS[group_key]
    inputs = {"x": randn(rng, 2, c, *spatial), "w": randn(rng, m, c // group, *kernel)}
    if bias:
        inputs["b"] = randn(rng, m)
    check("Conv", inputs, dict(group=group, **attrs), const=("w", "b"))


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("group_key", GROUPS)
@pytest.mark.parametrize("dilation", [1, 2])
@pytest.mark.parametrize("pads", PADS_2D)
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("k", [1, 3, 5])
def test_conv2d(check, rng, k, stride, pads, dilation, group_key, bias):
    _conv(check, rng, (9, 10), (k, k), group_key, bias, strides=[stride, stride + (k > 1)],
          pads=list(PADS_2D[pads]), dilations=[dilation, dilation])


@pytest.mark.parametrize("group_key", GROUPS)
@pytest.mark.parametrize("dilation", [1, 2])
@pytest.mark.parametrize("pads", PADS_1D)
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("k", [1, 3, 5])
def test_conv1d(check, rng, k, stride, pads, dilation, group_key):
    _conv(check, rng, (11,), (k,), group_key, bias=k != 3, strides=[stride], pads=list(PADS_1D[pads]),
          dilations=[dilation])


@pytest.mark.parametrize("group_key", ["plain", "dw2"])
@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("k", [(3, 3), (5, 2), (1, 4)])
@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER", "VALID"])
def test_conv2d_auto_pad(check, rng, auto_pad, k, stride, group_key):
    # onnxruntime rejects SAME with dilations; test_conv_same_dilated covers that.
    dilations = [2, 1] if auto_pad == "VALID" else [1, 1]
    _conv(check, rng, (10, 11), k, group_key, True, auto_pad=auto_pad, strides=[stride, stride],
          dilations=dilations)


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER"])
def test_conv_same_dilated(check, rng, auto_pad, stride):
    """SAME pads from the dilated kernel (onnxruntime refuses SAME with dilations)."""
    inputs = {"x": randn(rng, 1, 2, 9, 8), "w": randn(rng, 3, 2, 3, 2)}
    check("Conv", inputs, dict(auto_pad=auto_pad, strides=[stride, stride], dilations=[2, 3]),
          const=("w",), oracle="reference")


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("k", [2, 3, 4])
@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER", "VALID"])
def test_conv1d_auto_pad(check, rng, auto_pad, k, stride):
    _conv(check, rng, (10,), (k,), "grouped", True, auto_pad=auto_pad, strides=[stride])


def test_conv3d(check, rng):
    _conv(check, rng, (5, 6, 7), (3, 2, 3), "grouped", True, strides=[1, 2, 2], pads=[1, 0, 1, 1, 1, 0])


# --- ConvTranspose ---------------------------------------------------------------------------


def _conv_transpose(check, rng, spatial, kernel, group, bias, **attrs):
    c, m = 4, 6
    inputs = {"x": randn(rng, 2, c, *spatial), "w": randn(rng, c, m // group, *kernel)}
    if bias:
        inputs["b"] = randn(rng, m)
    check("ConvTranspose", inputs, dict(group=group, **attrs), const=("w", "b"))


@pytest.mark.parametrize("group", [1, 2])
@pytest.mark.parametrize("dilation", [1, 2])
@pytest.mark.parametrize("pads", PADS_2D)
# onnxruntime requires output_padding < stride
@pytest.mark.parametrize("stride, output_padding", [(1, 0), (2, 0), (2, 1), (3, 0), (3, 2)])
@pytest.mark.parametrize("k", [(3, 3), (2, 4)])
def test_conv_transpose2d(check, rng, k, stride, output_padding, pads, dilation, group):
    _conv_transpose(check, rng, (4, 5), k, group, bias=group == 1, strides=[stride, stride],
                    pads=list(PADS_2D[pads]), output_padding=[output_padding, output_padding],
                    dilations=[dilation, dilation])


@pytest.mark.parametrize("group", [1, 2])
@pytest.mark.parametrize("dilation", [1, 2])
@pytest.mark.parametrize("pads", PADS_1D)
@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("k", [1, 3, 4])
def test_conv_transpose1d(check, rng, k, stride, pads, dilation, group):
    _conv_transpose(check, rng, (6,), (k,), group, bias=True, strides=[stride], pads=list(PADS_1D[pads]),
                    dilations=[dilation], output_padding=[stride - 1])


# Full (unpadded) output: 9 x 9 at stride 2, 12 x 12 at stride 3; a larger output_shape
# extends the result with zeros.
OUTPUT_SHAPES = [(2, (8, 10)), (2, (9, 7)), (2, (10, 9)), (3, (10, 12)), (3, (11, 9)), (3, (12, 13))]


@pytest.mark.parametrize("auto_pad", ["NOTSET", "SAME_LOWER"])
@pytest.mark.parametrize("stride, output_shape", OUTPUT_SHAPES, ids=str)
def test_conv_transpose_output_shape(check, rng, stride, output_shape, auto_pad):
    _conv_transpose(check, rng, (4, 4), (3, 3), 1, bias=True, strides=[stride, stride],
                    output_shape=list(output_shape), auto_pad=auto_pad)


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER", "VALID"])
@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("k", [(3, 3), (4, 3), (3, 5)])  # kernels >= stride: see spec corners
def test_conv_transpose_auto_pad(check, rng, k, stride, auto_pad):
    _conv_transpose(check, rng, (4, 5), k, 2, bias=False, strides=[stride, stride], auto_pad=auto_pad)


@pytest.mark.parametrize("attrs", [
    # SAME_UPPER with output_shape: the odd pad goes at the end (onnxruntime puts it first).
    dict(strides=[2, 2], output_shape=[8, 10], auto_pad="SAME_UPPER"),
    dict(strides=[3, 3], output_shape=[10, 11], auto_pad="SAME_UPPER"),
    # SAME with a kernel smaller than the stride: the output is input * stride, zero-extended
    # (onnxruntime clamps the total pad at 0 and returns a smaller output).
    dict(strides=[3, 3], auto_pad="SAME_UPPER"),
    dict(strides=[3, 2], auto_pad="SAME_LOWER"),
], ids=str)
def test_conv_transpose_spec_corners(check, rng, attrs):
    inputs = {"x": randn(rng, 1, 2, 4, 5), "w": randn(rng, 2, 3, 2, 3)}
    check("ConvTranspose", inputs, attrs, const=("w",), oracle="reference")


# --- Pooling ---------------------------------------------------------------------------------

POOL_PADS_2D = {"p0": (0, 0, 0, 0), "p1": (1, 1, 1, 1), "asym": (0, 1, 1, 0)}


@pytest.mark.parametrize("dilation", [1, 2])
@pytest.mark.parametrize("ceil", [0, 1])
@pytest.mark.parametrize("pads", POOL_PADS_2D)
@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("k", [(2, 2), (3, 3), (2, 3)])
def test_max_pool2d(check, rng, k, stride, pads, ceil, dilation):
    check("MaxPool", {"x": randn(rng, 2, 3, 9, 10)},
          dict(kernel_shape=list(k), strides=[stride, stride], pads=list(POOL_PADS_2D[pads]),
                  ceil_mode=ceil, dilations=[dilation, dilation]))


@pytest.mark.parametrize("count_include_pad", [0, 1])
@pytest.mark.parametrize("ceil", [0, 1])
@pytest.mark.parametrize("pads", POOL_PADS_2D)
@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("k", [(2, 2), (3, 3), (2, 3)])
def test_average_pool2d(check, rng, k, stride, pads, ceil, count_include_pad):
    check("AveragePool", {"x": randn(rng, 2, 3, 9, 10)},
          dict(kernel_shape=list(k), strides=[stride, stride], pads=list(POOL_PADS_2D[pads]),
                  ceil_mode=ceil, count_include_pad=count_include_pad))


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
@pytest.mark.parametrize("ceil", [0, 1])
@pytest.mark.parametrize("pads", [(0, 0), (1, 1), (1, 0)], ids=str)  # pads < kernel, as ONNX asks
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("k", [2, 3])
def test_pool1d(check, rng, op, k, stride, pads, ceil):
    attrs = dict(kernel_shape=[k], strides=[stride], pads=list(pads), ceil_mode=ceil)
    if op == "MaxPool":
        attrs["dilations"] = [2]
    else:
        attrs["count_include_pad"] = 1
    check(op, {"x": randn(rng, 2, 3, 11)}, attrs)


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("k", [(2, 2), (3, 3), (3, 2)])
@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER", "VALID"])
def test_pool2d_auto_pad(check, rng, op, auto_pad, k, stride):
    check(op, {"x": randn(rng, 1, 3, 8, 9)},
          dict(kernel_shape=list(k), strides=[stride, stride], auto_pad=auto_pad))


@pytest.mark.parametrize("ceil", [0, 1])
@pytest.mark.parametrize("dilation", [1, 2])
def test_average_pool_dilations(check, rng, dilation, ceil):
    # AveragePool has dilations from opset 19.
    check("AveragePool", {"x": randn(rng, 1, 2, 9, 10)},
          dict(kernel_shape=[3, 2], strides=[2, 2], pads=[1, 0, 1, 1], ceil_mode=ceil,
                  dilations=[dilation, dilation], count_include_pad=1), opset=19)


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
def test_pool3d(check, rng, op):
    check(op, {"x": randn(rng, 1, 2, 5, 6, 7)},
          dict(kernel_shape=[2, 3, 2], strides=[1, 2, 2], pads=[0, 1, 1, 1, 1, 0]))


def test_max_pool_uint8_pads(check, rng):
    x = rng.integers(0, 255, (1, 2, 5, 5), dtype=np.uint8)
    check("MaxPool", {"x": x}, dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1]))


@pytest.mark.parametrize("shape", [(2, 3, 7), (2, 3, 5, 6), (1, 2, 3, 4, 5)])
@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool"])
def test_global_pool(check, rng, op, shape):
    check(op, {"x": randn(rng, *shape)})


# --- Dense / MatMul --------------------------------------------------------------------------

GEMM_BIAS = {"none": None, "scalar": (), "one": (1,), "row": (6,), "row2d": (1, 6), "col": (4, 1),
             "full": (4, 6)}


@pytest.mark.parametrize("bias", GEMM_BIAS)
@pytest.mark.parametrize("alpha_beta", [(1.0, 1.0), (0.5, 2.0), (-1.5, 0.0)])
@pytest.mark.parametrize("trans_b", [0, 1])
@pytest.mark.parametrize("trans_a", [0, 1])
def test_gemm(check, rng, trans_a, trans_b, alpha_beta, bias):
    m, k, n = 4, 5, 6
    a = randn(rng, *((k, m) if trans_a else (m, k)))
    b = randn(rng, *((n, k) if trans_b else (k, n)))
    inputs = {"a": a, "b": b}
    if GEMM_BIAS[bias] is not None:
        inputs["c"] = randn(rng, *GEMM_BIAS[bias])
    attrs = dict(transA=trans_a, transB=trans_b, alpha=alpha_beta[0], beta=alpha_beta[1])
    check("Gemm", inputs, attrs, const=("b", "c"))


def test_gemm_runtime_b(check, rng):
    check("Gemm", {"a": randn(rng, 3, 5), "b": randn(rng, 4, 5), "c": randn(rng, 4)},
          dict(transB=1, alpha=0.25))


@pytest.mark.parametrize("shapes", [
    ((3, 4), (4, 5)), ((2, 3, 4), (2, 4, 5)), ((2, 3, 4), (4, 5)), ((4,), (4, 5)),
    ((3, 4), (4,)), ((4,), (4,)), ((2, 1, 3, 4), (5, 4, 2)), ((1, 3, 4), (2, 1, 4, 6)),
    ((7, 4), (2, 3, 4, 2)),
], ids=str)
def test_matmul(check, rng, shapes):
    a, b = shapes
    check("MatMul", {"a": randn(rng, *a), "b": randn(rng, *b)})


def test_matmul_constant_weight(check, rng):
    check("MatMul", {"a": randn(rng, 2, 3, 8), "w": randn(rng, 8, 5)}, const=("w",))


# --- Normalisation, Softmax ------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 7), (2, 3, 5, 6), (1, 3, 2, 3, 4)], ids=str)
@pytest.mark.parametrize("epsilon", [1e-5, 0.1])
def test_batch_norm(check, rng, shape, epsilon):
    c = shape[1]
    inputs = {"x": randn(rng, *shape), "scale": randn(rng, c), "bias": randn(rng, c),
              "mean": randn(rng, c), "var": rng.uniform(0.1, 2.0, c).astype(np.float32)}
    check("BatchNormalization", inputs, dict(epsilon=epsilon),
          const=("scale", "bias", "mean", "var"))


@pytest.mark.parametrize("opset", [11, 13])
@pytest.mark.parametrize("axis", [None, -1, 0, 1, 2, -3, 3])
def test_softmax(check, rng, axis, opset):
    attrs = {} if axis is None else {"axis": axis}
    check("Softmax", {"x": 4 * randn(rng, 2, 3, 4, 5)}, attrs, opset=opset)


# --- Activations -----------------------------------------------------------------------------

UNARY = {
    "Relu": ({}, 17), "Sigmoid": ({}, 17), "Tanh": ({}, 17), "HardSwish": ({}, 17),
    "LeakyRelu": ({}, 17), "LeakyRelu/0.2": ({"alpha": 0.2}, 17),
    "HardSigmoid": ({}, 17), "HardSigmoid/0.3,0.4": ({"alpha": 0.3, "beta": 0.4}, 17),
    "Elu": ({"alpha": 0.7}, 17), "Neg": ({}, 17), "Abs": ({}, 17), "Exp": ({}, 17),
    "Erf": ({}, 17), "Identity": ({}, 17),
}


@pytest.mark.parametrize("name", UNARY)
def test_unary(check, rng, name):
    attrs, opset = UNARY[name]
    check(name.split("/")[0], {"x": 4 * randn(rng, 2, 3, 4, 5)}, attrs, opset=opset)


@pytest.mark.parametrize("op", ["Sqrt", "Log", "Reciprocal"])
def test_positive_unary(check, rng, op):
    check(op, {"x": rng.uniform(0.1, 10.0, (2, 3, 4)).astype(np.float32)})


@pytest.mark.parametrize("slope", [(3, 1, 1), (1,), (5,), (1, 3, 1, 1), (3, 4, 5)], ids=str)
def test_prelu(check, rng, slope):
    check("PRelu", {"x": randn(rng, 2, 3, 4, 5), "slope": randn(rng, *slope)}, const=("slope",))


@pytest.mark.parametrize("bounds", [(0.0, 6.0), (0.0, None), (None, 0.5), (None, None), (-1.0, 1.0)],
                         ids=str)
@pytest.mark.parametrize("opset", [6, 11, 13])
def test_clip(check, rng, bounds, opset):
    lo, hi = bounds
    x = 5 * randn(rng, 2, 3, 4, 5)
    if opset < 11:  # bounds are attributes
        attrs = {k: v for k, v in (("min", lo), ("max", hi)) if v is not None}
        check("Clip", {"x": x}, attrs, opset=opset)
        return
    # Bounds are optional scalar inputs; trailing omitted ones are dropped, a middle one is "".
    inputs = {"x": x, "min": lo, "max": hi}
    while len(inputs) > 1 and inputs[list(inputs)[-1]] is None:
        inputs.popitem()
    inputs.update({k: floats(v).reshape(()) for k, v in inputs.items() if k != "x" and v is not None})
    check("Clip", inputs, const=("min", "max"), opset=opset)


# --- Broadcasting arithmetic -----------------------------------------------------------------

BROADCAST = [((2, 3, 4, 5), (2, 3, 4, 5)), ((2, 3, 4, 5), (5,)), ((2, 3, 4, 5), (3, 1, 1)),
             ((2, 1, 4, 1), (1, 3, 1, 5)), ((4, 5), ()), ((), (3, 4)), ((3, 1), (1, 4, 1, 2))]


@pytest.mark.parametrize("shapes", BROADCAST, ids=str)
@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div", "Pow", "Max", "Min"])
def test_binary(check, rng, op, shapes):
    a, b = randn(rng, *shapes[0]), randn(rng, *shapes[1])
    if op == "Pow":
        a = np.asarray(np.abs(a) + 0.5, dtype=np.float32)
    if op == "Div":
        b = np.where(np.abs(b) < 0.2, 1.0, b).astype(np.float32)
    check(op, {"a": a, "b": b})


@pytest.mark.parametrize("shapes", BROADCAST[:4], ids=str)
@pytest.mark.parametrize("op", ["Add", "Mul", "Max"])
def test_binary_constant_operand(check, rng, op, shapes):
    check(op, {"a": randn(rng, *shapes[0]), "b": randn(rng, *shapes[1])}, const=("b",))


@pytest.mark.parametrize("exponent", [2.0, 0.5, 3.0, -1.0])
def test_pow_constant_exponent(check, rng, exponent):
    x = rng.uniform(0.1, 3.0, (2, 3, 4)).astype(np.float32)
    check("Pow", {"x": x, "e": floats(exponent).reshape(())}, const=("e",))


def test_pow_integer_exponent(check, rng):
    x = randn(rng, 2, 3, 4)
    check("Pow", {"x": x, "e": np.array(3, dtype=np.int64)}, const=("e",))


@pytest.mark.parametrize("count", [1, 2, 3, 4])
@pytest.mark.parametrize("op", ["Max", "Min"])
def test_variadic(check, rng, op, count):
    shapes = [(2, 3, 4, 5), (3, 1, 5), (1,), (4, 1)][:count]
    check(op, {f"x{i}": randn(rng, *s) for i, s in enumerate(shapes)})


# --- Reductions ------------------------------------------------------------------------------

REDUCE_AXES = [None, (1,), (2, 3), (-1,), (0, 2), (-3, -1)]


@pytest.mark.parametrize("keepdims", [0, 1])
@pytest.mark.parametrize("axes", REDUCE_AXES, ids=str)
@pytest.mark.parametrize("op", ["ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum"])
def test_reduce(check, rng, op, axes, keepdims):
    x = randn(rng, 2, 3, 4, 5)
    attrs = {"keepdims": keepdims}
    if op == "ReduceSum":  # axes became an input in opset 13 for ReduceSum only
        inputs = {"x": x} if axes is None else {"x": x, "axes": ints(*axes)}
        check(op, inputs, attrs, const=("axes",))
        return
    if axes is not None:
        attrs["axes"] = list(axes)
    check(op, {"x": x}, attrs)


@pytest.mark.parametrize("noop", [0, 1])
@pytest.mark.parametrize("axes", [None, (1, -1)], ids=str)
def test_reduce_mean_opset18(check, rng, axes, noop):
    x = randn(rng, 2, 3, 4, 5)
    inputs = {"x": x} if axes is None else {"x": x, "axes": ints(*axes)}
    check("ReduceMean", inputs, {"noop_with_empty_axes": noop}, const=("axes",), opset=18)


# --- Data movement ---------------------------------------------------------------------------


@pytest.mark.parametrize("perm", [None, (0, 2, 3, 1), (3, 2, 1, 0), (1, 0, 2, 3)], ids=str)
def test_transpose(check, rng, perm):
    check("Transpose", {"x": randn(rng, 2, 3, 4, 5)}, {} if perm is None else {"perm": list(perm)})


@pytest.mark.parametrize("axis", [-4, -3, -2, -1, 0, 1, 2, 3, 4])
def test_flatten(check, rng, axis):
    check("Flatten", {"x": randn(rng, 2, 3, 4, 5)}, {"axis": axis})


@pytest.mark.parametrize("shape", [(6, 20), (0, -1), (2, 0, 20), (-1, 5), (0, 0, -1), (2, 3, 4, 5), (-1,),
                                   (0, 3, 2, 2, 5)], ids=str)
def test_reshape(check, rng, shape):
    check("Reshape", {"x": randn(rng, 2, 3, 4, 5), "shape": ints(*shape)}, const=("shape",))


@pytest.mark.parametrize("opset", [11, 13])
@pytest.mark.parametrize("axes", [None, (1,), (0, 3), (-1,), (-4, 1)], ids=str)
def test_squeeze(check, rng, axes, opset):
    x = randn(rng, 1, 1, 4, 1)
    if opset < 13:
        check("Squeeze", {"x": x}, {} if axes is None else {"axes": list(axes)}, opset=opset)
    else:
        inputs = {"x": x} if axes is None else {"x": x, "axes": ints(*axes)}
        check("Squeeze", inputs, const=("axes",), opset=opset)


@pytest.mark.parametrize("opset", [11, 13])
@pytest.mark.parametrize("axes", [(0,), (1, 3), (-1,), (3, 0), (-1, -2)], ids=str)
def test_unsqueeze(check, rng, axes, opset):
    x = randn(rng, 3, 4)
    if opset < 13:
        check("Unsqueeze", {"x": x}, {"axes": list(axes)}, opset=opset)
    else:
        check("Unsqueeze", {"x": x, "axes": ints(*axes)}, const=("axes",), opset=opset)


@pytest.mark.parametrize("count", [1, 2, 3])
@pytest.mark.parametrize("axis", [0, 1, 3, -1, -3])
def test_concat(check, rng, axis, count):
    inputs = {}
    for i in range(count):
        shape = [2, 3, 4, 5]
        shape[axis] = i + 1
        inputs[f"x{i}"] = randn(rng, *shape)
    check("Concat", inputs, {"axis": axis})


def test_concat_constant_operand(check, rng):
    check("Concat", {"x": randn(rng, 2, 3), "c": randn(rng, 2, 4)}, {"axis": 1}, const=("c",))


@pytest.mark.parametrize("case", [
    (11, 1, None, 3), (11, -1, (2, 3), 2), (13, 2, (1, 1, 2), 3), (13, 0, None, 2),
    (18, 1, None, 3), (18, 3, None, 2), (18, 2, (4, 0), 2),
], ids=str)
def test_split(check, rng, case):
    opset, axis, sizes, n = case
    x = randn(rng, 2, 6, 4, 5)
    attrs = {"axis": axis}
    inputs = {"x": x}
    if sizes is not None and opset < 13:
        attrs["split"] = list(sizes)
    elif sizes is not None:
        inputs["split"] = ints(*sizes)
    elif opset >= 18:
        attrs["num_outputs"] = n
    check("Split", inputs, attrs, const=("split",), opset=opset, num_outputs=n)


SLICES = [
    ((1,), (3,), None, None),
    ((0, 1), (2, 3), (0, 2), None),
    ((-3,), (-1,), (1,), None),
    ((-1,), (-1000,), (3,), (-1,)),
    ((4, 0), (0, 100), (3, 1), (-2, 2)),
    ((10,), (-10,), (-1,), (-1,)),
    ((0, 1), (2, 1000), (-4, -2), (1, 2)),
    ((-100,), (100,), (2,), (3,)),
    ((2,), (2,), (2,), None),
]


@pytest.mark.parametrize("spec", SLICES, ids=str)
def test_slice(check, rng, spec):
    starts, ends, axes, steps = spec
    inputs = {"x": randn(rng, 2, 3, 4, 5), "starts": ints(*starts), "ends": ints(*ends),
              "axes": None if axes is None else ints(*axes), "steps": None if steps is None else ints(*steps)}
    if steps is None:
        inputs.pop("steps")
        if axes is None:
            inputs.pop("axes")
    check("Slice", inputs, const=("starts", "ends", "axes", "steps"))


PADS = [(0, 0, 1, 2, 0, 0, 2, 1), (0, 1, 0, 0, 0, 1, 0, 0), (0, 0, 3, 0, 0, 0, 0, 3),
        (0, 0, -1, 1, 0, 0, 1, -2)]


@pytest.mark.parametrize("pads", PADS, ids=str)
@pytest.mark.parametrize("mode", ["constant", "reflect", "edge"])
def test_pad(check, rng, mode, pads):
    inputs = {"x": randn(rng, 1, 2, 5, 6), "pads": ints(*pads)}
    if mode == "constant":
        inputs["value"] = floats(1.5).reshape(())
    check("Pad", inputs, {"mode": mode}, const=("pads", "value"))


def test_pad_default_value_and_axes(check, rng):
    inputs = {"x": randn(rng, 2, 3, 4), "pads": ints(1, 2, 3, 0), "value": None, "axes": ints(-1, 0)}
    check("Pad", inputs, {"mode": "constant"}, const=("pads", "axes"), opset=18)


# --- Shape computation and type ops ----------------------------------------------------------


@pytest.mark.parametrize("to", ["FLOAT16", "DOUBLE", "INT32", "INT64", "INT8", "UINT8", "BOOL"])
def test_cast(check, rng, to):
    from onnx import TensorProto

    x = np.round(40 * randn(rng, 3, 4), 1).astype(np.float32)
    if to == "UINT8":
        x = np.abs(x)
    check("Cast", {"x": x}, {"to": getattr(TensorProto, to)})


@pytest.mark.parametrize("indices", [ints(2), ints(0, -1, 1), ints(0, 2, 2, 1).reshape(2, 2)], ids=str)
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_gather(check, rng, axis, indices):
    check("Gather", {"x": randn(rng, 3, 4, 5), "i": indices}, {"axis": axis})


@pytest.mark.parametrize("shape", [(2, 3, 4), (3, 1), (1, 1, 4), (2, 1, 1, 1)], ids=str)
def test_expand(check, rng, shape):
    check("Expand", {"x": randn(rng, 3, 1), "shape": ints(*shape)}, const=("shape",))


@pytest.mark.parametrize("start, end", [(None, None), (1, None), (-2, None), (0, -1), (1, 3)])
def test_shape(check, rng, start, end):
    attrs = {k: v for k, v in (("start", start), ("end", end)) if v is not None}
    check("Shape", {"x": randn(rng, 2, 3, 4, 5)}, attrs, opset=15)


def test_constant_of_shape(check):
    from onnx import helper

    value = helper.make_tensor("value", helper.np_dtype_to_tensor_dtype(np.dtype(np.int32)), [1], [7])
    check("ConstantOfShape", {"shape": ints(2, 3)}, {"value": value}, const=("shape",))


@pytest.mark.parametrize("opset", [11, 13])
def test_dropout_inference(check, rng, opset):
    if opset < 12:
        check("Dropout", {"x": randn(rng, 2, 3)}, {"ratio": 0.3}, opset=opset)
        return
    inputs = {"x": randn(rng, 2, 3), "ratio": floats(0.3).reshape(()), "mode": np.array(False)}
    check("Dropout", inputs, const=("ratio", "mode"), opset=opset)


# --- Resize / Upsample -----------------------------------------------------------------------

# scales / sizes whose output lengths are integers times the scale: onnxruntime and the ONNX
# reference agree there (test_resize_fractional_length covers the rest).
RESIZE_TARGETS = {
    "scales_up": ("scales", (1.0, 1.0, 2.0, 1.5)),
    "scales_down": ("scales", (1.0, 1.0, 0.5, 0.75)),
    "sizes_up": ("sizes", (1, 2, 9, 13)),
    "sizes_down": ("sizes", (1, 2, 4, 5)),
    "sizes_mixed": ("sizes", (1, 2, 3, 11)),
}
COORDS = ["half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel", "tf_half_pixel_for_nn"]


def _resize(check, rng, target, attrs, opset=13):
    kind, values = RESIZE_TARGETS[target]
    # roi is a required input before opset 13; an empty tensor means "not given".
    inputs = {"x": randn(rng, 1, 2, 6, 8), "roi": floats() if opset < 13 else None}
    if kind == "scales":
        inputs["scales"] = floats(*values)
    else:
        inputs["scales"] = None
        inputs["sizes"] = ints(*values)
    check("Resize", inputs, attrs, const=("roi", "scales", "sizes"), opset=opset)


@pytest.mark.parametrize("target", RESIZE_TARGETS)
@pytest.mark.parametrize("coords", COORDS)
@pytest.mark.parametrize("nearest_mode", ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"])
def test_resize_nearest(check, rng, nearest_mode, coords, target):
    _resize(check, rng, target, dict(mode="nearest", nearest_mode=nearest_mode,
                              coordinate_transformation_mode=coords))


@pytest.mark.parametrize("target", RESIZE_TARGETS)
@pytest.mark.parametrize("coords", COORDS[:4])
def test_resize_linear(check, rng, coords, target):
    _resize(check, rng, target, dict(mode="linear", coordinate_transformation_mode=coords))


@pytest.mark.parametrize("target", ["scales_up", "sizes_down"])
@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_resize_opset19_half_pixel_symmetric(check, rng, mode, target):
    _resize(check, rng, target, dict(mode=mode, coordinate_transformation_mode="half_pixel_symmetric"),
            opset=19)


@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_resize_default_attributes(check, rng, mode):
    _resize(check, rng, "scales_up", {"mode": mode}, opset=11)


@pytest.mark.parametrize("scales", [(1, 1, 2, 2), (1, 1, 3, 1.5), (1, 2, 2, 1)], ids=str)
@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_upsample(check, rng, mode, scales):
    check("Upsample", {"x": randn(rng, 1, 2, 3, 4), "scales": floats(*scales)}, {"mode": mode},
          const=("scales",), opset=9)


@pytest.mark.parametrize("scales", [(1, 1, 2, 2), (1, 1, 0.5, 0.75), (1, 1, 1.5, 2.5)], ids=str)
@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_resize_opset10(check, rng, mode, scales):
    check("Resize", {"x": randn(rng, 1, 2, 6, 8), "scales": floats(*scales)}, {"mode": mode},
          const=("scales",), opset=10)


@pytest.mark.parametrize("scales", [(1, 1, 0.6, 0.3), (1, 1, 1.7, 2.2)], ids=str)
@pytest.mark.parametrize("coords", ["align_corners", "pytorch_half_pixel", "half_pixel_symmetric"])
@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_resize_fractional_length(check, rng, mode, coords, scales):
    """Where scale * length is not an integer, onnxruntime measures align_corners and
    pytorch_half_pixel against the integer output length and the ONNX reference against the
    fractional one (the spec's output_width). lwnn follows the ONNX reference, which is what the
    ONNX conformance cases (test_resize_downsample_scales_linear_align_corners) expect."""
    inputs = {"x": randn(rng, 1, 2, 4, 9), "roi": None, "scales": floats(*scales)}
    check("Resize", inputs, dict(mode=mode, coordinate_transformation_mode=coords),
          const=("scales",), opset=19, oracle="reference")


@pytest.mark.parametrize("attrs", [
    dict(mode="cubic"), dict(mode="linear", coordinate_transformation_mode="tf_crop_and_resize"),
    dict(mode="nearest", nearest_mode="banana"), dict(mode="nearest", coordinate_transformation_mode="x"),
    dict(mode="linear", antialias=1),
], ids=str)
def test_resize_rejects_out_of_scope_attributes(rng, attrs):
    inputs = {"x": randn(rng, 1, 1, 4, 4), "roi": None, "scales": floats(1, 1, 2, 2)}
    model = make_node_model("Resize", inputs, attrs, const=("scales",), opset=19)
    with pytest.raises(lwnn.UnsupportedOpError, match="resize0") as err:
        lwnn.load(model)
    value = next(iter(v for k, v in attrs.items() if k != "mode" or v == "cubic"))
    assert str(value) in str(err.value) and "Supported" in str(err.value)


# --- Combinations the grids above do not reach -----------------------------------------------


@pytest.mark.parametrize("k, s", list(itertools.product([1, 3], [1, 2])))
def test_conv_depthwise_1x1_and_strided(check, rng, k, s):
    _conv(check, rng, (7, 7), (k, k), "dw1", False, strides=[s, s], pads=[k // 2] * 4)
