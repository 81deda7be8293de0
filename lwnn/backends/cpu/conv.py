"""CPU float kernels for Conv, ConvTranspose, Dense and MatMul.

Convolutions run as one BLAS GEMM over an im2col matrix built from a strided view (groups are
a batched GEMM); depthwise convolutions accumulate one shifted, scaled copy of the input per
kernel tap, which is vectorised over all pixels and channels.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from lwnn.backends.cpu.registry import kernel


def _as_2d(x: np.ndarray, w: np.ndarray):
    """View 1-D convolutions as 2-D ones with height 1."""
    return (x[:, :, None, :], w[:, :, None, :]) if x.ndim == 3 else (x, w)


def _pad_spatial(x: np.ndarray, pads: tuple[int, ...]) -> np.ndarray:
    n = x.ndim - 2
    if not any(pads):
        return x
    return np.pad(x, [(0, 0), (0, 0)] + [(pads[i], pads[n + i]) for i in range(n)])


def _taps(x: np.ndarray, kh: int, kw: int, oh: int, ow: int, strides, dilations) -> np.ndarray:
    """Read-only view [N, C, KH, KW, OH, OW] of the input window of every output pixel."""
    n, c, _, _ = x.shape
    s0, s1, s2, s3 = x.strides
    return as_strided(
        x,
        shape=(n, c, kh, kw, oh, ow),
        strides=(s0, s1, s2 * dilations[0], s3 * dilations[1], s2 * strides[0], s3 * strides[1]),
        writeable=False,
    )


def conv2d(x: np.ndarray, w: np.ndarray, strides, dilations, group: int) -> np.ndarray:
    """Unpadded NCHW convolution without bias (x already padded)."""
    n, c, h, wd = x.shape
    m, cg, kh, kw = w.shape
    oh = (h - (kh - 1) * dilations[0] - 1) // strides[0] + 1
    ow = (wd - (kw - 1) * dilations[1] - 1) // strides[1] + 1
    if group > 1 and cg == 1:
        return _depthwise(x, w, oh, ow, strides, dilations, group)
    if kh == kw == 1 and strides == (1, 1) and group == 1:
        return np.matmul(w.reshape(m, c), x.reshape(n, c, h * wd)).reshape(n, m, oh, ow)
    taps = _taps(np.ascontiguousarray(x), kh, kw, oh, ow, strides, dilations)
    cols = taps.reshape(n, group, cg * kh * kw, oh * ow)  # the im2col copy
    wg = w.reshape(group, m // group, cg * kh * kw)
    return np.matmul(wg, cols).reshape(n, m, oh, ow)


def _depthwise(x, w, oh, ow, strides, dilations, group):
    n, c = x.shape[:2]
    m, _, kh, kw = w.shape
    mult = m // group
    wt = w.reshape(c, mult, kh, kw)
    out = np.zeros((n, c, mult, oh, ow), dtype=np.result_type(x, w))
    sh, sw = strides
    for i in range(kh):
        for j in range(kw):
            r, q = i * dilations[0], j * dilations[1]
            tap = x[:, :, r : r + sh * (oh - 1) + 1 : sh, q : q + sw * (ow - 1) + 1 : sw]
            out += tap[:, :, None] * wt[None, :, :, i, j, None, None]
    return out.reshape(n, m, oh, ow)


@kernel("Conv")
def conv(op, x, w, b=None):
    strides, dilations, pads = op.geometry(x.shape, w.shape)
    one_d = x.ndim == 3
    x2, w2 = _as_2d(_pad_spatial(x, pads), w)
    if one_d:
        strides, dilations = (1, *strides), (1, *dilations)
    y = conv2d(x2, w2, tuple(strides), tuple(dilations), op.group)
    if b is not None:
        y += b.reshape(1, -1, 1, 1).astype(y.dtype, copy=False)
    return y[:, :, 0, :] if one_d else y


@kernel("ConvTranspose")
def conv_transpose(op, x, w, b=None):
    strides, dilations, pads, out_pad = op.geometry(x.shape, w.shape)
    one_d = x.ndim == 3
    x2, w2 = _as_2d(x, w)
    if one_d:
        strides, dilations, out_pad = (1, *strides), (1, *dilations), (0, *out_pad)
        pads = (0, pads[0], 0, pads[1])
    n, c, h, wd = x2.shape
    _, mg, kh, kw = w2.shape
    g = op.group
    # Each input pixel scatters its weighted kernel: cols[n, g, mg, kh, kw, h, w].
    wt = w2.reshape(g, c // g, mg * kh * kw).transpose(0, 2, 1)
    cols = np.matmul(wt, x2.reshape(n, g, c // g, h * wd)).reshape(n, g * mg, kh, kw, h, wd)
    full_h = strides[0] * (h - 1) + (kh - 1) * dilations[0] + 1 + out_pad[0]
    full_w = strides[1] * (wd - 1) + (kw - 1) * dilations[1] + 1 + out_pad[1]
    out = np.zeros((n, g * mg, full_h, full_w), dtype=cols.dtype)
    sh, sw = strides
    for i in range(kh):
        for j in range(kw):
            r, q = i * dilations[0], j * dilations[1]
            out[:, :, r : r + sh * (h - 1) + 1 : sh, q : q + sw * (wd - 1) + 1 : sw] += cols[:, :, i, j]
    out = out[:, :, pads[0] : full_h - pads[2], pads[1] : full_w - pads[3]]
    if b is not None:
        out = out + b.reshape(1, -1, 1, 1).astype(out.dtype, copy=False)
    return np.ascontiguousarray(out[:, :, 0, :] if one_d else out)


@kernel("Dense")
def dense(op, a, b, c=None):
    a = a.T if op.trans_a else a
    b = b.T if op.trans_b else b
    y = a @ b
    if op.alpha != 1.0:
        y *= np.asarray(op.alpha, dtype=y.dtype)
    if c is not None:
        y += (c * np.asarray(op.beta, dtype=c.dtype)).astype(y.dtype, copy=False)
    return y


@kernel("MatMul")
def matmul(op, a, b):
    return np.matmul(a, b)
