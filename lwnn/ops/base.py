"""The op base class, the op registry and shape helpers shared by op definitions.

An op is a frozen dataclass of its attributes plus shape inference. It holds no math:
backends register kernels for op types (see ``lwnn.backends``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar

import numpy as np

from lwnn.errors import ShapeError

OPS: dict[str, type[Op]] = {}


@dataclass(frozen=True)
class Op:
    """Base of every op. Subclasses set ``type`` and implement ``infer``."""

    type: ClassVar[str] = ""
    # Inputs that must be constant once input shapes are known (e.g. Reshape's shape).
    const_inputs: ClassVar[tuple[int, ...]] = ()
    # Element-wise ops: how many tensors they combine value by value (1: unary; 2: binary, with
    # broadcasting); 0 for every other op. The op sets of graph rewrites come from here.
    elementwise: ClassVar[int] = 0
    # Ops that only move or select values (no arithmetic): integer runtimes run their float
    # kernels on the codes, and their outputs keep their input's quantization.
    moves_values: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.type and not issubclass(cls, MergedOp):
            OPS[cls.type] = cls

    def infer(self, shapes: list, values: list) -> list[tuple]:
        """Output shapes from input shapes (``None`` for omitted inputs) and constant values."""
        raise NotImplementedError(f"{self.type}.infer")

    def attrs(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def op_types(where) -> tuple[str, ...]:
    """The registered op types whose class satisfies ``where`` (e.g. ``lambda op:
    op.elementwise == 1``), in registration order. Import ``lwnn.ops`` first: it registers all."""
    return tuple(name for name, cls in OPS.items() if where(cls))


class MergedOp(Op):
    """Several layers merged into one by a graph rewrite (``lwnn.passes``). Not an op a model
    file can name (it is not in ``OPS``); its float value is its members' CPU kernels in order
    (``evaluate``), which is how the CPU float runtime runs it."""

    def evaluate(self, *args):
        raise NotImplementedError(f"{self.type}.evaluate")


def expect_rank(op: Op, shape: tuple, ranks: tuple[int, ...], what: str = "input") -> None:
    if len(shape) not in ranks:
        want = " or ".join(str(r) for r in ranks)
        raise ShapeError(f"{op.type} expects a rank-{want} {what}. Received shape {tuple(shape)}.")


def normalize_axis(op: Op, axis: int, rank: int) -> int:
    if not -rank <= axis < rank:
        raise ShapeError(f"{op.type} axis {axis} is out of range for a rank-{rank} tensor.")
    return axis % rank


def broadcast(op: Op, shapes: list[tuple]) -> tuple:
    try:
        return tuple(np.broadcast_shapes(*[tuple(s) for s in shapes]))
    except ValueError:
        raise ShapeError(
            f"{op.type} cannot broadcast its inputs together. Received shapes "
            f"{', '.join(str(tuple(s)) for s in shapes)}."
        ) from None


def window_pads(
    auto_pad: str,
    pads: tuple[int, ...],
    in_sizes: tuple[int, ...],
    kernel: tuple[int, ...],
    strides: tuple[int, ...],
    dilations: tuple[int, ...],
) -> tuple[int, ...]:
    """Explicit (begin..., end...) pads for a sliding window op, resolving ONNX auto_pad."""
    n = len(in_sizes)
    if auto_pad in ("", "NOTSET"):
        return tuple(pads) if pads else (0,) * (2 * n)
    if auto_pad == "VALID":
        return (0,) * (2 * n)
    begins, ends = [], []
    for size, k, s, d in zip(in_sizes, kernel, strides, dilations):
        out = -(-size // s)
        total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
        small, big = total // 2, total - total // 2
        begins.append(small if auto_pad == "SAME_UPPER" else big)
        ends.append(big if auto_pad == "SAME_UPPER" else small)
    return tuple(begins + ends)


def window_out_size(size: int, k: int, s: int, d: int, pb: int, pe: int, ceil: bool = False) -> int:
    span = size + pb + pe - ((k - 1) * d + 1)
    out = (-(-span // s) if ceil else span // s) + 1
    if ceil and (out - 1) * s >= size + pb:
        out -= 1  # the last window would start inside the end padding only
    return out
