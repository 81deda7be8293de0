"""CPU float kernels for data movement, shape computation and Resize."""

from __future__ import annotations

import numpy as np

from lwnn.backends.cpu.padding import pad_constant
from lwnn.backends.cpu.registry import kernel
from lwnn.errors import UnsupportedOpError

kernel("Reshape")(lambda op, x, shape: x.reshape(op.target(x.shape, shape)))
kernel("Transpose")(lambda op, x: np.ascontiguousarray(x.transpose(op.resolved_perm(x.ndim))))
kernel("Flatten")(lambda op, x: x.reshape(op.infer([x.shape], [x])[0]))
kernel("Squeeze")(lambda op, x: x.reshape(op.infer([x.shape], [x])[0]))
kernel("Unsqueeze")(lambda op, x: x.reshape(op.infer([x.shape], [x])[0]))
kernel("Concat")(lambda op, *xs: np.concatenate(xs, axis=op.axis))
kernel("Shape")(lambda op, x: np.array(x.shape[op.start : op.end], dtype=np.int64))
kernel("Gather")(lambda op, x, idx: np.take(x, idx.astype(np.int64), axis=op.axis))
kernel("Cast")(lambda op, x: x.astype(op.to))
kernel("ConstantOfShape")(
    lambda op, shape: np.full([int(d) for d in shape], op.value, dtype=op.dtype)
)
kernel("Expand")(lambda op, x, shape: np.broadcast_to(x, op.infer([x.shape], [x, shape])[0]).copy())


@kernel("Split")
def split(op, x, *_):
    bounds = np.cumsum(op.resolved_sizes(x.shape))[:-1]
    return tuple(np.ascontiguousarray(p) for p in np.split(x, bounds, axis=op.axis))


@kernel("Slice")
def slice_(op, x, *params):
    return np.ascontiguousarray(x[op.slices(x.shape, [x, *params])])


@kernel("Pad")
def pad(op, x, pads, value=None, axes=None):
    widths = op.widths(x.shape, [x, pads, value, axes])
    # Negative pads crop; np.pad only adds, so crop first.
    crop = tuple(slice(max(-b, 0), d - max(-e, 0)) for d, (b, e) in zip(x.shape, widths))
    x = x[crop]
    widths = [(max(b, 0), max(e, 0)) for b, e in widths]
    if op.mode == "constant":
        fill = 0 if value is None or not np.size(value) else np.asarray(value).reshape(-1)[0]
        return pad_constant(x, widths, fill)
    return np.pad(x, widths, mode={"reflect": "reflect", "edge": "edge", "wrap": "wrap"}[op.mode])


def _source_coords(op, out_size: int, in_size: int, scale: float, length: float) -> np.ndarray:
    """Input coordinate of every output index along one axis (ONNX coordinate modes, as the
    ONNX reference evaluates them: ``length`` is the unfloored resized length)."""
    o = np.arange(out_size, dtype=np.float64)
    mode = op.coordinate_transformation_mode
    if mode == "asymmetric":
        return o / scale
    if mode == "align_corners":
        return o * (in_size - 1) / (length - 1) if length != 1 else np.zeros_like(o)
    if mode == "pytorch_half_pixel":
        return (o + 0.5) / scale - 0.5 if length != 1 else np.full_like(o, -0.5)
    if mode == "tf_half_pixel_for_nn":
        return (o + 0.5) / scale
    if mode == "half_pixel":
        return (o + 0.5) / scale - 0.5
    if mode == "half_pixel_symmetric":
        offset = in_size / 2 * (1 - out_size / length)
        return offset + (o + 0.5) / scale - 0.5
    raise UnsupportedOpError(
        f"Resize coordinate_transformation_mode {mode!r} is not supported. "
        f"Supported: {', '.join(op.COORDINATE_MODES)}."
    )


def _nearest(op, coords: np.ndarray, scale: float) -> np.ndarray:
    mode = op.nearest_mode
    if mode == "simple":
        mode = "ceil" if scale < 1 else "floor"
    if mode == "floor":
        return np.floor(coords)
    if mode == "ceil":
        return np.ceil(coords)
    if mode == "round_prefer_ceil":
        return np.floor(coords + 0.5)
    if mode == "round_prefer_floor":
        return np.ceil(coords - 0.5)
    raise UnsupportedOpError(
        f"Resize nearest_mode {mode!r} is not supported. Supported: {', '.join(op.NEAREST_MODES)}."
    )


@kernel("Resize")
def resize(op, x, roi=None, scales=None, sizes=None):
    values = [x, roi, scales, sizes]
    scale_list, out_sizes = op.scales_and_sizes(x.shape, values)
    lengths = op.lengths(x.shape, values)
    y = x
    # Separable: resample one axis at a time, skipping unchanged axes.
    for axis, (n_in, n_out, s, length) in enumerate(zip(x.shape, out_sizes, scale_list, lengths)):
        if n_in == n_out and s == 1.0:
            continue
        coords = _source_coords(op, n_out, n_in, s, length)
        if op.mode == "nearest":
            idx = np.clip(_nearest(op, coords, s), 0, n_in - 1).astype(np.int64)
            y = np.take(y, idx, axis=axis)
            continue
        coords = np.clip(coords, 0, n_in - 1)
        lo = np.floor(coords).astype(np.int64)
        hi = np.minimum(lo + 1, n_in - 1)
        frac = (coords - lo).astype(x.dtype)
        shape = [1] * y.ndim
        shape[axis] = n_out
        frac = frac.reshape(shape)
        y = np.take(y, lo, axis=axis) * (1 - frac) + np.take(y, hi, axis=axis) * frac
    return np.ascontiguousarray(y)
