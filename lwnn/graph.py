"""The graph IR: tensors by name, layers in execution order, NCHW as ONNX.

A ``Graph`` is what importers produce and what every backend executes. It holds no kernels
and no quantization state; those live in backends and in ``lwnn.quant``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from lwnn.ops.base import Op

# A dimension is an int, or None when the model leaves it free (batch, image height, ...).
Shape = tuple
DIM_FREE = None


@dataclass(frozen=True)
class TensorSpec:
    """Declared type of a graph input or output: dtype and shape (None marks a free dim)."""

    name: str
    dtype: np.dtype
    shape: Shape
    # An optional input's value when it is not fed (an ONNX initializer of the same name, IR >= 4).
    default: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def optional(self) -> bool:
        return self.default is not None

    def describe(self) -> str:
        default = " (optional)" if self.optional else ""
        if self.shape is None:
            return f"{np.dtype(self.dtype).name}[unknown rank]{default}"
        dims = ", ".join("?" if d is None else str(d) for d in self.shape)
        return f"{np.dtype(self.dtype).name}[{dims}]{default}"


@dataclass(frozen=True)
class Layer:
    """One node of the graph: an op applied to named input tensors, producing named outputs.

    An empty string in ``inputs`` marks an omitted optional input (as in ONNX).
    """

    name: str
    op: Op
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]

    @property
    def op_type(self) -> str:
        return self.op.type

    def __repr__(self) -> str:
        ins = ", ".join(self.inputs)
        outs = ", ".join(self.outputs)
        return f"Layer({self.name!r}: {self.op_type}({ins}) -> {outs})"


@dataclass
class Graph:
    """Inputs, constant tensors (weights), layers in execution order, and output names."""

    inputs: dict[str, TensorSpec]
    outputs: list[str]
    layers: list[Layer]
    constants: dict[str, np.ndarray] = field(default_factory=dict)
    name: str = "model"
    # Declared output types where the source format gives them (shape may contain None).
    output_specs: dict[str, TensorSpec] = field(default_factory=dict)

    def producer_of(self) -> dict[str, Layer]:
        return {out: layer for layer in self.layers for out in layer.outputs}

    def layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        from lwnn.errors import LwnnError

        raise LwnnError(
            f"No layer named {name!r} in model {self.name!r}. "
            f"Layers: {_preview([layer.name for layer in self.layers])}"
        )


def _preview(names: list[str], limit: int = 12) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    more = len(names) - limit
    return shown + (f", ... ({more} more)" if more > 0 else "")
