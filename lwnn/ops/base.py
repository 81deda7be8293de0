"""The op base class, the op registry and shape helpers shared by op definitions.

An op is a frozen dataclass of its attributes plus shape inference. It holds no math:
backends register kernels for op types (see ``lwnn.backends``).
"""

from __future__ import annotations

import functools
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
        """Output shapes from input shapes (``None`` for omitted inputs) and constant values.
        Raises ``ShapeError`` for inputs or attributes the op cannot accept: nothing reaches a
        kernel that shape inference did not approve."""
        raise NotImplementedError(f"{self.type}.infer")

    def check_attributes(self) -> None:
        """The checks of the attributes that need no shapes (signs, enum spellings), so that an
        importer can reject a bad node when it reads it; ``infer`` makes them too. ShapeError."""

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


AUTO_PADS = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")


def _listed(values) -> str:
    return "[" + ", ".join(str(v) for v in values) + "]"


def check_auto_pad(op: Op, auto_pad: str) -> None:
    """ONNX's auto_pad values, spelled as ONNX spells them (onnxruntime rejects any other
    spelling); "" is NOTSET, as onnxruntime reads it."""
    if auto_pad not in ("", *AUTO_PADS):
        raise ShapeError(
            f"{op.type} expects auto_pad to be one of {', '.join(AUTO_PADS)} (upper case, as ONNX "
            f"spells them). Received auto_pad={auto_pad!r}."
        )


INT32_MAX = 2**31 - 1  # window attributes beyond it are no real model's, and overflow index arithmetic


def check_ints(op: Op, name: str, values: tuple, *, length: int | None = None, minimum: int | None = None,
               per: str = "one per spatial axis", maximum: int | None = INT32_MAX) -> None:
    """An attribute list of ``length`` values (when given, unless it is empty: the default) each at
    least ``minimum`` and at most ``maximum``; a ShapeError naming the op, the attribute, expected
    versus received."""
    if length is not None and values and len(values) != length:
        raise ShapeError(
            f"{op.type} expects {name} to have {length} values ({per}). Received {name}={_listed(values)} "
            f"({len(values)} values)."
        )
    if minimum is not None and any(v < minimum for v in values):
        raise ShapeError(
            f"{op.type} expects every value of {name} to be >= {minimum}. Received {name}={_listed(values)}."
        )
    if maximum is not None and any(v > maximum for v in values):
        raise ShapeError(
            f"{op.type} expects every value of {name} to be <= {maximum}. Received {name}={_listed(values)}."
        )


def check_window(op: Op, n: int | None, *, strides: tuple, dilations: tuple, pads: tuple, auto_pad: str,
                 kernel: tuple | None = None) -> None:
    """The attributes of a sliding-window op (Conv, ConvTranspose, pools) for ``n`` spatial axes:
    one stride, dilation and kernel size >= 1 per axis, 2 * n pads >= 0 (begins, then ends), and
    an auto_pad ONNX defines. Attributes left empty take their defaults. ``n=None`` (the input's
    rank is not known yet) checks all but the lengths."""
    check_auto_pad(op, auto_pad)
    if kernel is not None and n is not None and len(kernel) != n:
        raise ShapeError(
            f"{op.type} expects kernel_shape to have {n} values (one per spatial axis of its "
            f"{n + 2}-D input). Received kernel_shape={_listed(kernel)} ({len(kernel)} values)."
        )
    if kernel is not None:
        check_ints(op, "kernel_shape", kernel, minimum=1)
    check_ints(op, "strides", strides, length=n, minimum=1)
    check_ints(op, "dilations", dilations, length=n, minimum=1)
    if n is None and len(pads) % 2:
        raise ShapeError(
            f"{op.type} expects pads to hold a begin and an end per spatial axis (an even count). "
            f"Received pads={_listed(pads)} ({len(pads)} values)."
        )
    check_ints(op, "pads", pads, length=None if n is None else 2 * n, minimum=0,
               per=f"a begin and an end for each of {n} spatial axes")


def check_group(op: Op, group: int) -> None:
    if group < 1:
        raise ShapeError(f"{op.type} expects group >= 1. Received group={group}.")


def required(op: Op, shapes: list, index: int, what: str):
    """The shape of input ``index``; a ShapeError when it is omitted."""
    shape = shapes[index] if index < len(shapes) else None
    if shape is None:
        raise ShapeError(f"{op.type} expects input {index} ({what}). Received none.")
    return tuple(shape)


def check_out_sizes(op: Op, out: tuple, detail) -> None:
    """Output spatial sizes must be >= 1 (a window op never makes an empty axis); ``detail()``
    says what gave them, in the message."""
    if min(out, default=1) <= 0:
        raise ShapeError(
            f"{op.type} output spatial size would be {tuple(out)}, but must be >= 1 on every axis "
            f"({detail()})."
        )


@functools.lru_cache(maxsize=1024)
def _attributes_ok(op: Op, n: int) -> bool:
    op.check_attributes(n)
    return True


def check_attributes_once(op: Op, n: int) -> None:
    """``op.check_attributes(n)``, remembered per op and rank once it passes: kernels take their
    geometry from the op on every call."""
    try:
        _attributes_ok(op, n)
    except TypeError:  # an op built with a list attribute is not hashable: check it every time
        op.check_attributes(n)


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
