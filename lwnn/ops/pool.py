"""Pooling and reductions: MaxPool, AveragePool (1D/2D/3D), GlobalAveragePool, GlobalMaxPool,
ReduceMean/ReduceMax/ReduceMin/ReduceSum."""

from __future__ import annotations

from dataclasses import dataclass

from lwnn.errors import ShapeError
from lwnn.ops.base import (
    Op,
    check_attributes_once,
    check_out_sizes,
    check_window,
    expect_rank,
    normalize_axis,
    required,
    window_out_size,
    window_pads,
)


@dataclass(frozen=True)
class _Pool(Op):
    kernel_shape: tuple[int, ...] = ()
    strides: tuple[int, ...] = ()
    pads: tuple[int, ...] = ()
    dilations: tuple[int, ...] = ()
    ceil_mode: bool = False
    auto_pad: str = "NOTSET"

    def check_attributes(self, n: int | None = None) -> None:
        """kernel_shape (required), strides and dilations >= 1, pads >= 0 and smaller than the
        kernel (as onnxruntime requires: a window wholly in the padding has no value), auto_pad
        as ONNX spells it; with ``n`` spatial axes, their lengths too."""
        if not self.kernel_shape:
            raise ShapeError(f"{self.type} expects a kernel_shape attribute. Received none.")
        check_window(self, n, strides=self.strides, dilations=self.dilations, pads=self.pads,
                     auto_pad=self.auto_pad, kernel=self.kernel_shape)
        k, pads = self.kernel_shape, self.pads
        explicit = self.auto_pad in ("", "NOTSET") and len(pads) == 2 * len(k)
        if explicit and any(p >= kk for p, kk in zip(pads, k + k)):
            raise ShapeError(
                f"{self.type} expects pads smaller than the kernel on every axis. Received "
                f"pads={list(pads)} for kernel_shape={list(k)}."
            )

    def geometry(self, x_shape: tuple):
        """(kernel, strides, dilations, explicit pads, output spatial sizes); attributes checked."""
        n = len(x_shape) - 2
        check_attributes_once(self, n)
        k = self.kernel_shape
        strides = self.strides or (1,) * n
        dilations = self.dilations or (1,) * n
        pads = window_pads(self.auto_pad, self.pads, x_shape[2:], k, strides, dilations)
        out = tuple(
            window_out_size(x_shape[2 + i], k[i], s, d, pads[i], pads[n + i], self.ceil_mode)
            for i, (s, d) in enumerate(zip(strides, dilations))
        )
        check_out_sizes(self, out, lambda: f"kernel {tuple(k)} on input {tuple(x_shape)}, pads {list(pads)}")
        return k, strides, dilations, pads, out

    def infer(self, shapes, values):
        x = required(self, shapes, 0, "X")
        expect_rank(self, x, (3, 4, 5))
        *_, out = self.geometry(x)
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
        x = required(self, shapes, 0, "X")
        expect_rank(self, x, (3, 4, 5))
        if min(x[2:]) < 1:  # a mean or maximum of nothing (onnxruntime rejects it too)
            raise ShapeError(f"{self.type} expects spatial sizes >= 1. Received shape {tuple(x)}.")
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
        # An axis named twice is reduced once, as onnxruntime does.
        return tuple(sorted({normalize_axis(self, a, rank) for a in self.axes}))

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
