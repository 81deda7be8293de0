"""Pooling and reductions: MaxPool, AveragePool (1D/2D/3D), GlobalAveragePool, GlobalMaxPool,
ReduceMean/ReduceMax/ReduceMin/ReduceSum."""

from __future__ import annotations

from dataclasses import dataclass

from lwnn.errors import ShapeError
from lwnn.ops.base import Op, expect_rank, normalize_axis, window_out_size, window_pads


@dataclass(frozen=True)
class _Pool(Op):
    kernel_shape: tuple[int, ...] = ()
    strides: tuple[int, ...] = ()
    pads: tuple[int, ...] = ()
    dilations: tuple[int, ...] = ()
    ceil_mode: bool = False
    auto_pad: str = "NOTSET"

    def geometry(self, x_shape: tuple):
        """(kernel, strides, dilations, explicit pads, output spatial sizes)."""
        n = len(x_shape) - 2
        k = self.kernel_shape
        strides = self.strides or (1,) * n
        dilations = self.dilations or (1,) * n
        pads = window_pads(self.auto_pad, self.pads, x_shape[2:], k, strides, dilations)
        out = tuple(
            window_out_size(x_shape[2 + i], k[i], s, d, pads[i], pads[n + i], self.ceil_mode)
            for i, (s, d) in enumerate(zip(strides, dilations))
        )
        return k, strides, dilations, pads, out

    def infer(self, shapes, values):
        x = shapes[0]
        expect_rank(self, x, (3, 4, 5))
        if len(self.kernel_shape) != len(x) - 2:
            raise ShapeError(
                f"{self.type} has a {len(self.kernel_shape)}-D kernel {self.kernel_shape} but its "
                f"input has {len(x) - 2} spatial dims. Received shape {tuple(x)}."
            )
        *_, out = self.geometry(x)
        if min(out) <= 0:
            raise ShapeError(f"{self.type} kernel {self.kernel_shape} does not fit input {tuple(x)}.")
        return [(x[0], x[1], *out)]


@dataclass(frozen=True)
class MaxPool(_Pool):
    type = "MaxPool"
    moves_values = True


@dataclass(frozen=True)
class AveragePool(_Pool):
    type = "AveragePool"
    count_include_pad: bool = False


@dataclass(frozen=True)
class GlobalAveragePool(Op):
    type = "GlobalAveragePool"

    def infer(self, shapes, values):
        x = shapes[0]
        expect_rank(self, x, (3, 4, 5))
        return [(x[0], x[1]) + (1,) * (len(x) - 2)]


@dataclass(frozen=True)
class GlobalMaxPool(GlobalAveragePool):
    type = "GlobalMaxPool"
    moves_values = True


@dataclass(frozen=True)
class _Reduce(Op):
    """Reduce over ``axes`` (all axes when empty, unless noop_with_empty_axes)."""

    axes: tuple[int, ...] = ()
    keepdims: bool = True
    noop_with_empty_axes: bool = False

    def resolved_axes(self, rank: int) -> tuple[int, ...]:
        if not self.axes:
            return () if self.noop_with_empty_axes else tuple(range(rank))
        return tuple(sorted(normalize_axis(self, a, rank) for a in self.axes))

    def infer(self, shapes, values):
        x = shapes[0]
        axes = self.resolved_axes(len(x))
        if self.keepdims:
            return [tuple(1 if i in axes else d for i, d in enumerate(x))]
        return [tuple(d for i, d in enumerate(x) if i not in axes)]


@dataclass(frozen=True)
class ReduceMean(_Reduce):
    type = "ReduceMean"


@dataclass(frozen=True)
class ReduceMax(_Reduce):
    type = "ReduceMax"


@dataclass(frozen=True)
class ReduceMin(_Reduce):
    type = "ReduceMin"


@dataclass(frozen=True)
class ReduceSum(_Reduce):
    type = "ReduceSum"
