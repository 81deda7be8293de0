"""CPU float kernels for pooling and reductions.

Windows are reduced one kernel tap at a time over strided views of the padded input, so the
work is vectorised over every output pixel and channel.
"""

from __future__ import annotations

import functools

import numpy as np

from lwnn.backends.cpu.padding import pad_constant
from lwnn.backends.cpu.registry import kernel


def _tap_views(x: np.ndarray, k, strides, dilations, out):
    """Yield, for each kernel tap, the [N, C, *out] view of the (padded) input it reads."""
    n = x.ndim - 2
    for tap in np.ndindex(*k):
        index = [slice(None), slice(None)]
        for d in range(n):
            start = tap[d] * dilations[d]
            index.append(slice(start, start + strides[d] * (out[d] - 1) + 1, strides[d]))
        yield x[tuple(index)]


def _padded(x: np.ndarray, pads, k, strides, dilations, out, fill: float) -> np.ndarray:
    """Pad by ``pads`` plus whatever ceil_mode windows need past the end, with ``fill``."""
    n = x.ndim - 2
    widths = [(0, 0), (0, 0)]
    for d in range(n):
        need = (out[d] - 1) * strides[d] + (k[d] - 1) * dilations[d] + 1
        end = max(need - x.shape[2 + d] - pads[d], pads[n + d])
        widths.append((pads[d], end))
    if all(w == (0, 0) for w in widths):
        return x
    return pad_constant(x, widths, fill)


def _lowest(dtype: np.dtype):
    """The pad value that never wins a max: -inf for floats, the minimum for integers."""
    return np.iinfo(dtype).min if np.issubdtype(dtype, np.integer) else -np.inf


@kernel("MaxPool")
def max_pool(op, x):
    k, strides, dilations, pads, out = op.geometry(x.shape)
    xp = _padded(x, pads, k, strides, dilations, out, _lowest(x.dtype))
    views = _tap_views(xp, k, strides, dilations, out)
    y = np.array(next(views))
    for v in views:
        np.maximum(y, v, out=y)
    return y


@kernel("AveragePool")
def average_pool(op, x):
    k, strides, dilations, pads, out = op.geometry(x.shape)
    xp = _padded(x, pads, k, strides, dilations, out, 0.0)
    y = np.zeros(x.shape[:2] + tuple(out), dtype=x.dtype)
    for v in _tap_views(xp, k, strides, dilations, out):
        y += v
    return y / _divisors(op, x.shape[2:], np.dtype(x.dtype).name)


@functools.lru_cache(maxsize=256)
def _divisors(op, spatial: tuple, dtype: str) -> np.ndarray:
    """Divisor per output pixel: taps inside the input (plus the explicit pads when counted).
    Depends only on the op and the input size, so it is computed once per shape."""
    k, strides, dilations, pads, out = op.geometry((1, 1, *spatial))
    n = len(spatial)
    ones = np.ones((1, 1, *spatial), dtype=dtype)
    if op.count_include_pad:
        ones = pad_constant(ones, [(0, 0), (0, 0)] + [(pads[d], pads[n + d]) for d in range(n)], 1)
        pads = (0,) * (2 * n)
    onesp = _padded(ones, pads, k, strides, dilations, out, 0.0)
    count = sum(_tap_views(onesp, k, strides, dilations, out))
    count.flags.writeable = False  # shared between calls through the cache
    return count


@kernel("GlobalAveragePool")
def global_average_pool(op, x):
    op.infer([x.shape], [x])  # shape-only checks: an empty spatial axis has no mean
    return x.mean(axis=tuple(range(2, x.ndim)), keepdims=True)


@kernel("GlobalMaxPool")
def global_max_pool(op, x):
    op.infer([x.shape], [x])
    return x.max(axis=tuple(range(2, x.ndim)), keepdims=True)


def _reduce(fn, empty=None):
    """``empty(dtype)``: the value of a reduction over no elements where NumPy has none (ONNX:
    the lowest value for ReduceMax, the highest for ReduceMin)."""

    def run(op, x):
        axes = op.resolved_axes(x.ndim)
        if not axes:
            return x.copy()
        if empty is not None and x.size == 0:
            return fn(x, axis=axes, keepdims=op.keepdims, initial=empty(x.dtype)).astype(x.dtype, copy=False)
        if x.size == 0:
            with np.errstate(invalid="ignore", divide="ignore"):  # the mean of nothing is NaN
                return np.asarray(fn(x, axis=axes, keepdims=op.keepdims)).astype(x.dtype, copy=False)
        return fn(x, axis=axes, keepdims=op.keepdims).astype(x.dtype, copy=False)

    return run


def _highest(dtype: np.dtype):
    return np.iinfo(dtype).max if np.issubdtype(dtype, np.integer) else np.inf


kernel("ReduceMean")(_reduce(np.mean))
kernel("ReduceMax")(_reduce(np.max, _lowest))
kernel("ReduceMin")(_reduce(np.min, _highest))
kernel("ReduceSum")(_reduce(np.sum))
