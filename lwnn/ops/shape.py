"""Ops that move data without arithmetic (Reshape, Transpose, Concat, Slice, Pad, ...), the
shape-computation ops that importers fold away when their inputs are known (Shape, Gather,
Cast, ConstantOfShape), and Resize (nearest/linear upsampling)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lwnn.errors import ShapeError
from lwnn.ops.base import Op, normalize_axis, required


def _axes(op: Op, axes, rank: int, what: str = "axes") -> list[int]:
    """``axes`` normalized to [0, rank), each in range and named once (as onnxruntime requires)."""
    out = []
    for a in axes:
        a = int(a)
        if not -rank <= a < rank:
            raise ShapeError(
                f"{op.type} expects {what} in [{-rank}, {rank - 1}] for a rank-{rank} tensor. "
                f"Received {what}={[int(v) for v in axes]}."
            )
        out.append(a % rank)
    if len(set(out)) != len(out):
        raise ShapeError(
            f"{op.type} expects each axis once in {what}. Received {what}={[int(v) for v in axes]}."
        )
    return out


@dataclass(frozen=True)
class Reshape(Op):
    """Inputs: x and a constant int64 shape (0 copies a dim unless allowzero, -1 is inferred)."""

    type = "Reshape"
    moves_values = True
    const_inputs = (1,)
    allowzero: bool = False

    def target(self, x: tuple, spec: np.ndarray) -> tuple:
        dims = [int(d) for d in np.asarray(spec).reshape(-1)]
        if any(d < -1 for d in dims):
            raise ShapeError(f"Reshape expects target dims >= -1. Received shape {tuple(dims)}.")
        if self.allowzero and 0 in dims and -1 in dims:
            raise ShapeError(
                "Reshape with allowzero=1 cannot take both 0 and -1 in its target. "
                f"Received shape {tuple(dims)}."
            )
        if not self.allowzero and any(d == 0 and i >= len(x) for i, d in enumerate(dims)):
            raise ShapeError(
                f"Reshape target {tuple(dims)} copies an input dim (0) at a position the rank-{len(x)} "
                f"input {tuple(x)} does not have."
            )
        out = [x[i] if d == 0 and not self.allowzero else d for i, d in enumerate(dims)]
        size = int(np.prod(x))
        if out.count(-1) > 1:
            raise ShapeError(f"Reshape target {tuple(dims)} has more than one -1.")
        if -1 in out:
            known = int(np.prod([d for d in out if d != -1]))
            if known == 0 or size % known:
                raise ShapeError(f"Reshape cannot reshape {tuple(x)} into {tuple(dims)}.")
            out[out.index(-1)] = size // known
        if int(np.prod(out)) != size:
            raise ShapeError(
                f"Reshape cannot reshape {tuple(x)} ({size} elements) into {tuple(dims)} "
                f"({int(np.prod(out))} elements)."
            )
        return tuple(out)

    def infer(self, shapes, values):
        return [self.target(tuple(shapes[0]), values[1])]


@dataclass(frozen=True)
class Transpose(Op):
    type = "Transpose"
    moves_values = True
    perm: tuple[int, ...] = ()

    def resolved_perm(self, rank: int) -> tuple[int, ...]:
        perm = self.perm or tuple(reversed(range(rank)))
        if sorted(perm) != list(range(rank)):
            raise ShapeError(f"Transpose perm {perm} is not a permutation of a rank-{rank} tensor.")
        return perm

    def infer(self, shapes, values):
        x = shapes[0]
        perm = self.resolved_perm(len(x))
        return [tuple(x[p] for p in perm)]


@dataclass(frozen=True)
class Flatten(Op):
    type = "Flatten"
    moves_values = True
    axis: int = 1

    def infer(self, shapes, values):
        x = shapes[0]
        axis = self.axis + len(x) if self.axis < 0 else self.axis
        if not 0 <= axis <= len(x):
            raise ShapeError(f"Flatten axis {self.axis} is out of range for shape {tuple(x)}.")
        return [(int(np.prod(x[:axis])), int(np.prod(x[axis:])))]


@dataclass(frozen=True)
class Squeeze(Op):
    type = "Squeeze"
    moves_values = True
    axes: tuple[int, ...] = ()

    def resolved_axes(self, x: tuple) -> tuple[int, ...]:
        if not self.axes:
            return tuple(i for i, d in enumerate(x) if d == 1)
        # An axis named twice is squeezed once, as onnxruntime does.
        axes = tuple(sorted({normalize_axis(self, a, len(x)) for a in self.axes}))
        for a in axes:
            if x[a] != 1:
                raise ShapeError(f"Squeeze axis {a} has size {x[a]}, not 1, in shape {tuple(x)}.")
        return axes

    def infer(self, shapes, values):
        x = shapes[0]
        axes = self.resolved_axes(tuple(x))
        return [tuple(d for i, d in enumerate(x) if i not in axes)]


@dataclass(frozen=True)
class Unsqueeze(Op):
    type = "Unsqueeze"
    moves_values = True
    axes: tuple[int, ...] = ()

    def infer(self, shapes, values):
        x = list(shapes[0])
        rank = len(x) + len(self.axes)
        for a in sorted(_axes(self, self.axes, rank)):
            x.insert(a, 1)
        return [tuple(x)]


@dataclass(frozen=True)
class Concat(Op):
    type = "Concat"
    axis: int = 1

    def infer(self, shapes, values):
        if not shapes or any(s is None for s in shapes):
            raise ShapeError(
                f"Concat expects one or more inputs, none omitted. Received {len(shapes)} inputs."
            )
        first = tuple(shapes[0])
        axis = normalize_axis(self, self.axis, len(first))
        total = 0
        for s in shapes:
            if len(s) != len(first) or any(a != b for i, (a, b) in enumerate(zip(s, first)) if i != axis):
                raise ShapeError(
                    f"Concat on axis {self.axis} needs equal shapes elsewhere. Received "
                    f"{', '.join(str(tuple(t)) for t in shapes)}."
                )
            total += s[axis]
        return [first[:axis] + (total,) + first[axis + 1 :]]


@dataclass(frozen=True)
class Split(Op):
    type = "Split"
    moves_values = True
    axis: int = 0
    sizes: tuple[int, ...] = ()
    num_outputs: int = 1

    def resolved_sizes(self, x: tuple) -> tuple[int, ...]:
        dim = x[normalize_axis(self, self.axis, len(x))]
        if self.num_outputs < 1:
            raise ShapeError(f"Split expects num_outputs >= 1. Received num_outputs={self.num_outputs}.")
        if self.sizes:
            if len(self.sizes) != self.num_outputs:
                raise ShapeError(
                    f"Split expects one size per output ({self.num_outputs}). "
                    f"Received split={list(self.sizes)}."
                )
            if min(self.sizes) < 0:
                raise ShapeError(f"Split expects sizes >= 0. Received split={list(self.sizes)}.")
            if sum(self.sizes) != dim:
                raise ShapeError(f"Split sizes {self.sizes} do not add up to {dim} in shape {tuple(x)}.")
            return self.sizes
        n = self.num_outputs
        chunk = -(-dim // n)
        sizes = tuple(min(chunk, dim - i * chunk) for i in range(n))
        if sizes and min(sizes) < 0:
            raise ShapeError(f"Split cannot split {dim} elements (shape {tuple(x)}) into {n} outputs.")
        return sizes

    def infer(self, shapes, values):
        x = tuple(shapes[0])
        axis = normalize_axis(self, self.axis, len(x))
        return [x[:axis] + (s,) + x[axis + 1 :] for s in self.resolved_sizes(x)]


@dataclass(frozen=True)
class Slice(Op):
    """Inputs: x, starts, ends, optional axes, optional steps (all constant)."""

    type = "Slice"
    moves_values = True
    const_inputs = (1, 2, 3, 4)

    @staticmethod
    def slices(x: tuple, values: list) -> tuple[slice, ...]:
        starts, ends = np.asarray(values[1]).reshape(-1), np.asarray(values[2]).reshape(-1)
        axes = values[3] if len(values) > 3 and values[3] is not None else range(len(starts))
        steps = values[4] if len(values) > 4 and values[4] is not None else [1] * len(starts)
        axes, steps = np.asarray(axes).reshape(-1), np.asarray(steps).reshape(-1)
        if not len(starts) == len(ends) == len(axes) == len(steps):
            raise ShapeError(
                f"Slice expects starts, ends, axes and steps of one length. Received {len(starts)} starts, "
                f"{len(ends)} ends, {len(axes)} axes, {len(steps)} steps."
            )
        axes = _axes(Slice, axes, len(x))
        index = [slice(None)] * len(x)
        for start, end, axis, step in zip(starts, ends, axes, steps):
            if int(step) == 0:
                raise ShapeError(f"Slice steps must be non-zero. Received a step of 0 on axis {axis}.")
            start, end, step = slice(int(start), int(end), int(step)).indices(x[axis])
            # indices() gives end -1 for "before element 0"; as a slice bound -1 means the last.
            index[axis] = slice(start, None if end < 0 else end, step)
        return tuple(index)

    def infer(self, shapes, values):
        x = tuple(shapes[0])
        idx = self.slices(x, values)
        return [tuple(len(range(*s.indices(d))) for s, d in zip(idx, x))]


@dataclass(frozen=True)
class Pad(Op):
    """Inputs: x, constant pads (begin..., end...), optional constant value, optional axes."""

    type = "Pad"
    moves_values = True
    const_inputs = (1, 2, 3)
    mode: str = "constant"

    @staticmethod
    def widths(x: tuple, values: list) -> list[tuple[int, int]]:
        pads = [int(p) for p in np.asarray(values[1]).reshape(-1)]
        axes = values[3] if len(values) > 3 and values[3] is not None else range(len(x))
        axes = _axes(Pad, np.asarray(axes).reshape(-1), len(x))
        n = len(axes)
        if len(pads) != 2 * n:
            raise ShapeError(f"Pad expects {2 * n} pad values for shape {tuple(x)}. Received {len(pads)}.")
        widths = [(0, 0)] * len(x)
        for i, a in enumerate(axes):
            widths[a] = (pads[i], pads[n + i])
        return widths

    def check_widths(self, x: tuple, widths: list[tuple[int, int]]) -> None:
        """The pads of each axis, as onnxruntime accepts them: in constant mode any whose output
        is not negative (a negative pad removes values after the other side is padded); the
        other modes copy values from what is left of the axis once negative pads removed theirs,
        so something must be left, and reflect mirrors at most that length minus 1 per side."""
        pads = [w for side in zip(*widths) for w in side] if widths else []
        for axis, (d, (b, e)) in enumerate(zip(x, widths)):
            if d + b + e < 0:
                raise ShapeError(f"Pad removes more than the whole of shape {x} (pads {pads}).")
            if self.mode == "constant" or b == e == 0:
                continue
            kept = d + min(b, 0) + min(e, 0)
            if kept <= 0:
                raise ShapeError(
                    f"Pad mode {self.mode!r} cannot pad axis {axis}: no values of it remain to copy. "
                    f"Received shape {x}, pads {pads}."
                )
            if self.mode == "reflect" and max(b, e) > kept - 1:
                raise ShapeError(
                    f"Pad mode 'reflect' pads axis {axis} by at most {kept - 1} (its length after "
                    f"cropping, minus 1) on each side. Received shape {x}, pads {pads}."
                )

    def infer(self, shapes, values):
        x = tuple(shapes[0])
        widths = self.widths(x, values)
        self.check_widths(x, widths)
        return [tuple(d + b + e for d, (b, e) in zip(x, widths))]


@dataclass(frozen=True)
class Resize(Op):
    """ONNX Resize/Upsample. Inputs: x, roi (unused), scales, sizes (scales or sizes constant).

    ``nearest_mode="simple"`` is the rounding of Resize-10 and Upsample, which the ONNX spec
    leaves open: onnxruntime's (floor when upsampling an axis, ceil when downsampling it).
    """

    type = "Resize"
    const_inputs = (1, 2, 3)
    mode: str = "nearest"  # nearest | linear
    coordinate_transformation_mode: str = "half_pixel"
    nearest_mode: str = "round_prefer_floor"

    MODES = ("nearest", "linear")
    COORDINATE_MODES = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners",
                        "asymmetric", "tf_half_pixel_for_nn")
    NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil", "simple")

    @staticmethod
    def lengths(x: tuple, values: list) -> list[float]:
        """Resized length of every axis before flooring (ONNX's output_width): the coordinate
        modes align_corners, pytorch_half_pixel and half_pixel_symmetric depend on it."""
        sizes = values[3] if len(values) > 3 else None
        if sizes is not None and np.size(sizes):
            return [float(s) for s in sizes]
        return [d * float(s) for d, s in zip(x, values[2])]

    @staticmethod
    def scales_and_sizes(x: tuple, values: list) -> tuple[list[float], list[int]]:
        """Scales and output sizes, one per axis: scales finite and > 0, sizes >= 1 (0 only
        where the input axis is empty), as onnxruntime requires."""
        scales = values[2] if len(values) > 2 else None
        sizes = values[3] if len(values) > 3 else None
        if sizes is not None and np.size(sizes):
            sizes = [int(s) for s in np.asarray(sizes).reshape(-1)]
            if len(sizes) != len(x):
                raise ShapeError(
                    f"Resize expects {len(x)} sizes for a rank-{len(x)} input {x}. Received {sizes}."
                )
            if any(o < 0 or (o == 0 and i > 0) for o, i in zip(sizes, x)):
                raise ShapeError(f"Resize expects sizes >= 1 (for input {x}). Received sizes {sizes}.")
            return [o / i if i else 1.0 for o, i in zip(sizes, x)], sizes
        if scales is None or not np.size(scales):
            raise ShapeError("Resize needs constant scales or sizes. Received neither.")
        scales = [float(s) for s in np.asarray(scales).reshape(-1)]
        if len(scales) != len(x):
            raise ShapeError(
                f"Resize expects {len(x)} scales for a rank-{len(x)} input {x}. Received {scales}."
            )
        if not all(np.isfinite(s) and s > 0 for s in scales):
            raise ShapeError(f"Resize expects finite scales > 0. Received scales {scales}.")
        return scales, [int(np.floor(d * s)) for d, s in zip(x, scales)]

    def infer(self, shapes, values):
        x = tuple(required(self, shapes, 0, "X"))
        if self.mode not in self.MODES:
            raise ShapeError(f"Resize expects mode one of {', '.join(self.MODES)}. Received {self.mode!r}.")
        scales, sizes = self.scales_and_sizes(x, values)
        return [tuple(sizes)]


@dataclass(frozen=True)
class Shape(Op):
    type = "Shape"
    start: int = 0
    end: int | None = None

    def infer(self, shapes, values):
        return [(len(range(len(shapes[0]))[self.start : self.end]),)]


@dataclass(frozen=True)
class Gather(Op):
    type = "Gather"
    moves_values = True
    axis: int = 0

    def check_indices(self, x: tuple, indices: np.ndarray) -> None:
        """Every index within [-size, size - 1] of the gathered axis, as ONNX requires."""
        axis = normalize_axis(self, self.axis, len(x))
        indices = np.asarray(indices)
        if not np.issubdtype(indices.dtype, np.integer):
            raise ShapeError(f"Gather expects integer indices. Received {indices.dtype} indices.")
        if not indices.size:
            return
        size, low, high = x[axis], int(indices.min()), int(indices.max())
        if low < -size or high >= size:
            bad = low if low < -size else high
            raise ShapeError(
                f"Gather index {bad} is out of range for axis {axis} of size {size} (input shape {x}): "
                f"valid indices are {-size}..{size - 1}."
            )

    def infer(self, shapes, values):
        x, idx = tuple(required(self, shapes, 0, "data")), tuple(required(self, shapes, 1, "indices"))
        axis = normalize_axis(self, self.axis, len(x))
        if len(values) > 1 and values[1] is not None:
            self.check_indices(x, values[1])
        return [x[:axis] + idx + x[axis + 1 :]]


@dataclass(frozen=True)
class Cast(Op):
    type = "Cast"
    to: str = "float32"  # a numpy dtype name

    def infer(self, shapes, values):
        return [tuple(shapes[0])]


@dataclass(frozen=True)
class ConstantOfShape(Op):
    type = "ConstantOfShape"
    const_inputs = (0,)
    value: float = 0.0
    dtype: str = "float32"

    @staticmethod
    def target(spec) -> tuple[int, ...]:
        dims = tuple(int(d) for d in np.asarray(spec).reshape(-1))
        if any(d < 0 for d in dims):
            raise ShapeError(f"ConstantOfShape expects dims >= 0. Received shape {dims}.")
        return dims

    def infer(self, shapes, values):
        return [self.target(values[0])]


@dataclass(frozen=True)
class Expand(Op):
    type = "Expand"
    moves_values = True
    const_inputs = (1,)

    def infer(self, shapes, values):
        from lwnn.ops.base import broadcast

        return [broadcast(self, [tuple(shapes[0]), tuple(int(d) for d in values[1])])]
