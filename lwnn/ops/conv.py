"""Convolutions and matrix products: Conv (1D/2D/3D, grouped, depthwise, dilated),
ConvTranspose, Dense (ONNX Gemm semantics) and MatMul."""

from __future__ import annotations

from dataclasses import dataclass

from lwnn.errors import ShapeError
from lwnn.ops.base import (
    Op,
    broadcast,
    check_attributes_once,
    check_group,
    check_ints,
    check_out_sizes,
    check_window,
    expect_rank,
    required,
    window_out_size,
    window_pads,
)

SPATIAL_RANKS = (3, 4, 5)  # 1-D, 2-D and 3-D convolutions (N, C, *spatial)


@dataclass(frozen=True)
class Conv(Op):
    """Inputs: x [N, C, *spatial], w [M, C/group, *kernel], optional bias [M]."""

    type = "Conv"
    strides: tuple[int, ...] = ()
    pads: tuple[int, ...] = ()
    dilations: tuple[int, ...] = ()
    group: int = 1
    auto_pad: str = "NOTSET"

    def check_attributes(self, n: int | None = None) -> None:
        """strides, dilations >= 1, pads >= 0, group >= 1, auto_pad as ONNX spells it; with ``n``
        spatial axes, their lengths too."""
        check_window(self, n, strides=self.strides, dilations=self.dilations, pads=self.pads,
                     auto_pad=self.auto_pad)
        check_group(self, self.group)

    def geometry(self, x_shape: tuple, w_shape: tuple):
        """(strides, dilations, explicit pads) for these input shapes (attributes checked)."""
        n = len(x_shape) - 2
        check_attributes_once(self, n)
        strides = self.strides or (1,) * n
        dilations = self.dilations or (1,) * n
        pads = window_pads(self.auto_pad, self.pads, x_shape[2:], w_shape[2:], strides, dilations)
        return strides, dilations, pads

    def is_depthwise(self, x_shape: tuple) -> bool:
        return self.group > 1 and self.group == x_shape[1]

    def infer(self, shapes, values):
        x, w = required(self, shapes, 0, "X"), required(self, shapes, 1, "W")
        b = shapes[2] if len(shapes) > 2 else None
        expect_rank(self, x, SPATIAL_RANKS)
        expect_rank(self, w, (len(x),), "weight")
        check_group(self, self.group)
        if x[1] != w[1] * self.group or w[0] % self.group:
            raise ShapeError(
                f"Conv with group={self.group} expects {w[1] * self.group} input channels "
                f"for a weight of shape {tuple(w)}. Received an input of shape {tuple(x)}."
            )
        if min(w[2:]) < 1:
            raise ShapeError(f"Conv expects kernel sizes >= 1. Received a weight of shape {tuple(w)}.")
        if b is not None and tuple(b) != (w[0],):
            raise ShapeError(f"Conv expects a bias of shape ({w[0]},). Received {tuple(b)}.")
        strides, dilations, pads = self.geometry(x, w)
        n = len(x) - 2
        spatial = []
        for i in range(n):
            size = window_out_size(x[2 + i], w[2 + i], strides[i], dilations[i], pads[i], pads[n + i])
            if size <= 0:
                raise ShapeError(
                    f"Conv kernel {tuple(w[2:])} (dilations {tuple(dilations)}) does not fit an "
                    f"input of spatial size {tuple(x[2:])} with pads {tuple(pads)}."
                )
            spatial.append(size)
        return [(x[0], w[0], *spatial)]


@dataclass(frozen=True)
class ConvTranspose(Op):
    """Inputs: x [N, C, *spatial], w [C, M/group, *kernel], optional bias [M]."""

    type = "ConvTranspose"
    strides: tuple[int, ...] = ()
    pads: tuple[int, ...] = ()
    dilations: tuple[int, ...] = ()
    group: int = 1
    output_padding: tuple[int, ...] = ()
    output_shape: tuple[int, ...] = ()
    auto_pad: str = "NOTSET"

    def check_attributes(self, n: int | None = None) -> None:
        """strides, dilations >= 1, pads, output_padding >= 0 and below max(stride, dilation),
        group >= 1, auto_pad as ONNX spells it; with ``n`` spatial axes, their lengths too."""
        check_window(self, n, strides=self.strides, dilations=self.dilations, pads=self.pads,
                     auto_pad=self.auto_pad)
        check_group(self, self.group)
        check_ints(self, "output_padding", self.output_padding, length=n, minimum=0)
        check_ints(self, "output_shape", self.output_shape, length=n, minimum=1)
        for i, extra in enumerate(self.output_padding):
            stride = self.strides[i] if i < len(self.strides) else 1
            dilation = self.dilations[i] if i < len(self.dilations) else 1
            if extra >= max(stride, dilation):
                raise ShapeError(
                    f"ConvTranspose expects output_padding below max(stride, dilation) on every axis. "
                    f"Received output_padding={list(self.output_padding)} with strides "
                    f"{list(self.strides)} and dilations {list(self.dilations)}."
                )

    def geometry(self, x_shape: tuple, w_shape: tuple):
        """(strides, dilations, explicit pads, output_padding) for these input shapes (attributes
        checked)."""
        n = len(x_shape) - 2
        check_attributes_once(self, n)
        strides = self.strides or (1,) * n
        dilations = self.dilations or (1,) * n
        out_pad = self.output_padding or (0,) * n
        pads = self.pads if self.pads and self.auto_pad in ("", "NOTSET") else (0,) * (2 * n)
        # output_shape (or SAME) sets the pads; a negative total extends the output with zeros.
        if self.output_shape or self.auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            target = self.output_shape if self.output_shape else [
                x_shape[2 + i] * strides[i] for i in range(n)
            ]
            begins, ends = [], []
            for i in range(n):
                span = strides[i] * (x_shape[2 + i] - 1) + out_pad[i] + (w_shape[2 + i] - 1) * dilations[i]
                total = span + 1 - target[i]
                if self.auto_pad == "SAME_UPPER":
                    begins.append(total // 2)
                    ends.append(total - total // 2)
                else:
                    begins.append(total - total // 2)
                    ends.append(total // 2)
            pads = tuple(begins + ends)
        return strides, dilations, pads, out_pad

    def infer(self, shapes, values):
        x, w = required(self, shapes, 0, "X"), required(self, shapes, 1, "W")
        b = shapes[2] if len(shapes) > 2 else None
        expect_rank(self, x, SPATIAL_RANKS)
        expect_rank(self, w, (len(x),), "weight")
        check_group(self, self.group)
        if w[0] != x[1] or x[1] % self.group:
            raise ShapeError(
                f"ConvTranspose with group={self.group} expects a weight whose first dim is the "
                f"{x[1]} input channels, a multiple of group. Received weight shape {tuple(w)}."
            )
        if min(w[2:]) < 1:
            raise ShapeError(
                f"ConvTranspose expects kernel sizes >= 1. Received a weight of shape {tuple(w)}."
            )
        m = w[1] * self.group
        if b is not None and tuple(b) != (m,):
            raise ShapeError(f"ConvTranspose expects a bias of shape ({m},). Received {tuple(b)}.")
        strides, dilations, pads, out_pad = self.geometry(x, w)
        n = len(x) - 2
        spatial = tuple(
            strides[i] * (x[2 + i] - 1) + out_pad[i] + (w[2 + i] - 1) * dilations[i] + 1
            - pads[i] - pads[n + i]
            for i in range(n)
        )
        check_out_sizes(self, spatial, lambda: f"input {tuple(x)}, weight {tuple(w)}, pads {list(pads)}")
        return [(x[0], m, *spatial)]


@dataclass(frozen=True)
class Dense(Op):
    """ONNX Gemm: y = alpha * A' @ B' + beta * C, with A' = A.T if trans_a (same for B)."""

    type = "Dense"
    alpha: float = 1.0
    beta: float = 1.0
    trans_a: bool = False
    trans_b: bool = False

    def infer(self, shapes, values):
        a, b = required(self, shapes, 0, "A"), required(self, shapes, 1, "B")
        c = shapes[2] if len(shapes) > 2 else None
        expect_rank(self, a, (2,), "A")
        expect_rank(self, b, (2,), "B")
        m, k = (a[1], a[0]) if self.trans_a else (a[0], a[1])
        k2, n = (b[1], b[0]) if self.trans_b else (b[0], b[1])
        if k != k2:
            raise ShapeError(
                f"Dense (Gemm) inner dimensions differ: A gives K={k}, B gives K={k2}. "
                f"Received A {tuple(a)}, B {tuple(b)}."
            )
        if c is not None and broadcast(self, [c, (m, n)]) != (m, n):
            raise ShapeError(f"Dense (Gemm) bias of shape {tuple(c)} does not broadcast to ({m}, {n}).")
        return [(m, n)]


@dataclass(frozen=True)
class MatMul(Op):
    """numpy.matmul semantics (batched, broadcasting)."""

    type = "MatMul"

    def infer(self, shapes, values):
        a, b = required(self, shapes, 0, "A"), required(self, shapes, 1, "B")
        if len(a) == 0 or len(b) == 0:
            raise ShapeError(f"MatMul does not accept scalars. Received {tuple(a)} and {tuple(b)}.")
        a2 = (1, *a) if len(a) == 1 else tuple(a)
        b2 = (*b, 1) if len(b) == 1 else tuple(b)
        if a2[-1] != b2[-2]:
            raise ShapeError(
                f"MatMul inner dimensions differ: {a2[-1]} versus {b2[-2]}. "
                f"Received {tuple(a)} and {tuple(b)}."
            )
        batch = broadcast(self, [a2[:-2], b2[:-2]])
        out = (*batch, a2[-2], b2[-1])
        if len(a) == 1:
            out = out[:-2] + out[-1:]
        if len(b) == 1:
            out = out[:-1]
        return [out]
