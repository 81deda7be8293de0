"""CPU float kernels for Conv, ConvTranspose, Dense and MatMul (any number of spatial dims).

Convolutions run as one BLAS GEMM over an im2col matrix built from a strided view (groups are
a batched GEMM); depthwise convolutions accumulate one shifted, scaled copy of the input per
kernel tap, which is vectorised over all pixels and channels. Transposed convolutions are one
GEMM followed by a scatter-add per kernel tap.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from lwnn.backends.cpu.padding import pad_constant
from lwnn.backends.cpu.registry import kernel


def _pad_spatial(x: np.ndarray, pads: tuple[int, ...]) -> np.ndarray:
    n = x.ndim - 2
    if not any(pads):
        return x
    return pad_constant(x, [(0, 0), (0, 0)] + [(pads[i], pads[n + i]) for i in range(n)])


def _tap_slices(tap, strides, dilations, sizes) -> tuple[slice, ...]:
    """Index of the positions kernel tap ``tap`` touches for ``sizes`` output (or input) pixels."""
    return (slice(None), slice(None)) + tuple(
        slice(t * d, t * d + s * (n - 1) + 1, s) for t, s, d, n in zip(tap, strides, dilations, sizes)
    )


def conv_nd(x: np.ndarray, w: np.ndarray, strides, dilations, group: int) -> np.ndarray:
    """Unpadded NC... convolution without bias (x already padded)."""
    n, c, *size = x.shape
    m, cg, *k = w.shape
    out = [(s - (kk - 1) * d - 1) // st + 1 for s, kk, d, st in zip(size, k, dilations, strides)]
    if x.size == 0 or w.size == 0:  # an empty batch (or no channels): every sum is over nothing
        return np.zeros((n, m, *out), dtype=np.result_type(x, w))
    if group > 1 and cg == 1:
        return _depthwise(x, w, out, strides, dilations, group)
    if all(kk == 1 for kk in k) and all(s == 1 for s in strides) and group == 1:
        return np.matmul(w.reshape(m, c), x.reshape(n, c, -1)).reshape(n, m, *out)
    # Measured: the shifted GEMM wins on large maps (1.5x at 80x80), im2col on small ones.
    if len(k) == 2 and strides == (1, 1) and group == 1 and out[0] * size[1] >= 1024:
        return _shifted_gemm(x, w, out, dilations)
    x = np.ascontiguousarray(x)
    # Read-only view [N, C, *K, *OUT] of the input window of every output pixel.
    spatial = x.strides[2:]
    taps = as_strided(
        x,
        shape=(n, c, *k, *out),
        strides=(*x.strides[:2], *(s * d for s, d in zip(spatial, dilations)),
                 *(s * st for s, st in zip(spatial, strides))),
        writeable=False,
    )
    cols = taps.reshape(n, group, cg * int(np.prod(k)), int(np.prod(out)))  # the im2col copy
    wg = w.reshape(group, m // group, -1)
    return np.matmul(wg, cols).reshape(n, m, *out)


def _shifted_gemm(x, w, out, dilations):
    """Stride-1 2-D convolution as one GEMM per kernel tap, without an im2col copy.

    With the padded input flattened to [N, C, H*W], tap (i, j) reads the contiguous run that
    starts at i*dh*W + j*dw, so BLAS multiplies a strided view directly; each output row comes
    out W wide, and the columns past the true output width are cropped at the end.
    """
    n, c, h, wd = x.shape
    m, _, kh, kw = w.shape
    oh, ow = out
    # One extra zero row keeps the last tap's run inside the buffer.
    flat = np.zeros((n, c, (h + 1) * wd), dtype=x.dtype)
    flat[:, :, : h * wd] = x.reshape(n, c, h * wd)
    length = oh * wd
    y = np.empty((n, m, length), dtype=np.result_type(x, w))
    partial = np.empty_like(y)
    wt = np.ascontiguousarray(w.transpose(2, 3, 0, 1))  # [kh, kw, M, C]
    for t, (i, j) in enumerate(np.ndindex(kh, kw)):
        start = i * dilations[0] * wd + j * dilations[1]
        np.matmul(wt[i, j], flat[:, :, start : start + length], out=y if t == 0 else partial)
        if t:
            y += partial
    return np.ascontiguousarray(y.reshape(n, m, oh, wd)[:, :, :, :ow])


def _flat_pitch(x_shape, strides) -> int | None:
    """Row pitch of the flat-tap layout, or None when the strides do not allow it."""
    sh, sw = strides
    return sh * x_shape[3] // sw if (sh * x_shape[3]) % sw == 0 else None


def _flat_taps(x: np.ndarray, k, out, strides, dilations):
    """For a 2-D window op: yield (tap, view [N, C, OH*pitch]) where view is one strided run of
    the flattened input, so NumPy loops over long rows instead of OW-wide ones. Output (oh, ow)
    sits at oh*pitch + ow (pitch = sh*W/sw); columns >= OW are junk to crop."""
    n, c, h, wd = x.shape
    sw = strides[1]
    length = out[0] * _flat_pitch(x.shape, strides)
    last = (k[0] - 1) * dilations[0] * wd + (k[1] - 1) * dilations[1] + sw * (length - 1) + 1
    flat = np.zeros((n, c, max(last, h * wd)), dtype=x.dtype)
    flat[:, :, : h * wd] = x.reshape(n, c, h * wd)
    for i, j in np.ndindex(*k):
        start = i * dilations[0] * wd + j * dilations[1]
        yield (i, j), flat[:, :, start : start + sw * (length - 1) + 1 : sw]


def _depthwise(x, w, out, strides, dilations, group):
    if x.ndim == 4 and _flat_pitch(x.shape, strides):
        return _depthwise_flat(x, w, out, strides, dilations, group)
    n, c = x.shape[:2]
    m, _, *k = w.shape
    mult = m // group
    wt = w.reshape(c, mult, *k)
    dtype = np.result_type(x, w)
    y = np.empty((n, c, mult, *out), dtype=dtype)
    partial = np.empty_like(y)
    expand = (None,) * len(out)
    # Multiply into one reused buffer, then accumulate: no temporary array per tap.
    for t, tap in enumerate(np.ndindex(*k)):
        view = x[_tap_slices(tap, strides, dilations, out)][:, :, None]
        np.multiply(view, wt[(None, slice(None), slice(None), *tap, *expand)], out=y if t == 0 else partial)
        if t:
            y += partial
    return y.reshape(n, m, *out)


def _depthwise_flat(x, w, out, strides, dilations, group):
    n, c = x.shape[:2]
    m, _, kh, kw = w.shape
    mult = m // group
    pitch = _flat_pitch(x.shape, strides)
    wt = w.reshape(c, mult, kh, kw).astype(np.result_type(x, w))
    y = np.empty((n, c, mult, out[0] * pitch), dtype=wt.dtype)
    partial = np.empty_like(y)
    for t, ((i, j), view) in enumerate(_flat_taps(x, (kh, kw), out, strides, dilations)):
        np.multiply(view[:, :, None], wt[None, :, :, i, j, None], out=y if t == 0 else partial)
        if t:
            y += partial
    return np.ascontiguousarray(y.reshape(n, m, out[0], pitch)[:, :, :, : out[1]])


@kernel("Conv")
def conv(op, x, w, b=None):
    strides, dilations, pads = op.geometry(x.shape, w.shape)
    y = conv_nd(_pad_spatial(x, pads), w, tuple(strides), tuple(dilations), op.group)
    if b is not None:
        y += b.reshape((1, -1) + (1,) * (y.ndim - 2)).astype(y.dtype, copy=False)
    return y


@kernel("ConvTranspose")
def conv_transpose(op, x, w, b=None):
    strides, dilations, pads, out_pad = op.geometry(x.shape, w.shape)
    n, c, *size = x.shape
    _, mg, *k = w.shape
    g, nd = op.group, len(size)
    # Each input pixel scatters its weighted kernel: cols[n, g * mg, *k, *size].
    # Explicit sizes (no -1): an empty batch reshapes too.
    wt = w.reshape(g, c // g, mg * int(np.prod(k))).transpose(0, 2, 1)
    cols = np.matmul(wt, x.reshape(n, g, c // g, int(np.prod(size)))).reshape(n, g * mg, *k, *size)
    full = [st * (i - 1) + (kk - 1) * d + 1 + extra
            for st, i, kk, d, extra in zip(strides, size, k, dilations, out_pad)]
    # Negative pads (an output_shape larger than the full result) extend it with zeros.
    lead = [max(-pads[i], 0) for i in range(nd)]
    trail = [max(-pads[nd + i], 0) for i in range(nd)]
    buf = np.zeros((n, g * mg, *(f + a + b_ for f, a, b_ in zip(full, lead, trail))), dtype=cols.dtype)
    body = buf[(slice(None), slice(None), *(slice(a, a + f) for a, f in zip(lead, full)))]
    for tap in np.ndindex(*k):
        body[_tap_slices(tap, strides, dilations, size)] += cols[(slice(None), slice(None), *tap)]
    crop = tuple(slice(max(pads[i], 0), lead[i] + full[i] - pads[nd + i]) for i in range(nd))
    out = buf[(slice(None), slice(None), *crop)]
    if b is not None:
        out = out + b.reshape((1, -1) + (1,) * nd).astype(out.dtype, copy=False)
    return np.ascontiguousarray(out)


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
