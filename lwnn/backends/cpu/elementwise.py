"""CPU float kernels for element-wise ops, BatchNormalization and Softmax."""

from __future__ import annotations

import math
from functools import reduce

import numpy as np

from lwnn.backends.cpu.registry import kernel
from lwnn.ops.base import normalize_axis

_erf = np.frompyfunc(math.erf, 1, 1)


def _same_dtype(fn):
    """Keep float32 tensors float32 when a Python scalar attribute joins the arithmetic."""

    def run(op, x, *rest):
        return np.asarray(fn(op, x, *rest)).astype(x.dtype, copy=False)

    return run


kernel("Add")(lambda op, a, b: a + b)
kernel("Sub")(lambda op, a, b: a - b)
kernel("Mul")(lambda op, a, b: a * b)
kernel("Pow")(_same_dtype(lambda op, a, b: np.power(a, b)))
kernel("Max")(lambda op, *xs: reduce(np.maximum, xs))
kernel("Min")(lambda op, *xs: reduce(np.minimum, xs))


@kernel("Div")
def div(op, a, b):
    if np.issubdtype(a.dtype, np.integer) and np.issubdtype(b.dtype, np.integer):
        return np.trunc(a / b).astype(np.result_type(a, b))  # ONNX integer Div truncates
    return a / b


kernel("Identity")(lambda op, x: x)
kernel("Relu")(lambda op, x: np.maximum(x, np.zeros((), x.dtype)))
kernel("LeakyRelu")(_same_dtype(lambda op, x: np.where(x >= 0, x, x * op.alpha)))
kernel("PRelu")(lambda op, x, slope: np.where(x >= 0, x, x * slope).astype(x.dtype, copy=False))
kernel("Clip")(_same_dtype(lambda op, x: np.clip(x, op.min, op.max)))
kernel("HardSigmoid")(_same_dtype(lambda op, x: np.clip(x * op.alpha + op.beta, 0, 1)))
kernel("HardSwish")(_same_dtype(lambda op, x: x * np.clip(x / 6 + 0.5, 0, 1)))
kernel("Tanh")(lambda op, x: np.tanh(x))
kernel("Elu")(_same_dtype(lambda op, x: np.where(x > 0, x, op.alpha * np.expm1(np.minimum(x, 0)))))
kernel("Sqrt")(lambda op, x: np.sqrt(x))
kernel("Exp")(lambda op, x: np.exp(x))
kernel("Log")(lambda op, x: np.log(x))
kernel("Neg")(lambda op, x: -x)
kernel("Abs")(lambda op, x: np.abs(x))
kernel("Reciprocal")(lambda op, x: 1 / x)
kernel("Erf")(_same_dtype(lambda op, x: _erf(x.astype(np.float64)).astype(np.float64)))


@kernel("Sigmoid")
def sigmoid(op, x):
    # exp of a non-positive number only: no overflow warnings for large |x|.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


@kernel("BatchNorm")
def batch_norm(op, x, scale, bias, mean, var):
    k = (scale / np.sqrt(var + np.asarray(op.epsilon, var.dtype))).astype(x.dtype)
    shift = (bias - mean * k).astype(x.dtype)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return x * k.reshape(shape) + shift.reshape(shape)


@kernel("Softmax")
def softmax(op, x):
    axis = normalize_axis(op, op.axis, x.ndim)
    if x.size == 0:  # an empty batch (or axis): nothing to normalise
        return x.copy()
    if op.coerce_2d:
        flat = x.reshape(int(np.prod(x.shape[:axis])), int(np.prod(x.shape[axis:])))
        return softmax_along(flat, 1).reshape(x.shape)
    return softmax_along(x, axis)


def softmax_along(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)
