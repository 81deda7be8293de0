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
kernel("Shape")(lambda op, x: np.array(x.shape[op.start : op.end], dtype=np.int64))
kernel("Cast")(lambda op, x: x.astype(op.to))
kernel("ConstantOfShape")(lambda op, shape: np.full(op.target(shape), op.value, dtype=op.dtype))
kernel("Expand")(lambda op, x, shape: np.broadcast_to(x, op.infer([x.shape], [x, shape])[0]).copy())


@kernel("Concat")
def concat(op, *xs):
    try:
        return np.concatenate(xs, axis=op.axis)
    except ValueError:  # numpy.exceptions.AxisError is a ValueError too
        op.infer([x.shape for x in xs], list(xs))  # raises the ShapeError that says why
        raise


@kernel("Gather")
def gather(op, x, idx):
    # Checked at run time too: indices computed from the feeds reach here unplanned.
    op.check_indices(x.shape, idx)
    return np.take(x, idx.astype(np.int64, copy=False), axis=op.axis)


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
    op.check_widths(x.shape, widths)
    if op.mode == "constant":
        fill = 0 if value is None or not np.size(value) else np.asarray(value).reshape(-1)[0]
        if all(b >= 0 and e >= 0 for b, e in widths):
            return pad_constant(x, widths, fill)
        # Output j of an axis is input j - begin where that exists, else the fill; negative pads
        # remove values after the other side is padded (as onnxruntime computes them).
        shape = tuple(d + b + e for d, (b, e) in zip(x.shape, widths))
        out = np.full(shape, fill, dtype=x.dtype)
        dst = tuple(slice(max(b, 0), max(b + d + min(e, 0), max(b, 0))) for d, (b, e) in zip(x.shape, widths))
        src = tuple(slice(s.start - b, s.stop - b) for s, (b, _) in zip(dst, widths))
        out[dst] = x[src]
        return out
    # Negative pads crop; np.pad only adds, so crop first.
    crop = tuple(slice(max(-b, 0), d - max(-e, 0)) for d, (b, e) in zip(x.shape, widths))
    x = x[crop]
    widths = [(max(b, 0), max(e, 0)) for b, e in widths]
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
