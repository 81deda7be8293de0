"""Element-wise chains folded into one lookup table before quantizing.

A sub-graph of element-wise layers that reads a single tensor ``x`` (plus scalar constants) and
hands one tensor on is a function of ``x`` alone, value by value: hard-swish as exported
(``x * clip(x + 3, 0, 6) / 6``), an affine ``a * y + b`` after it, ReLU6 chains. An integer device
evaluates such a function as one table over the input codes (TFLite's int8 LUT kernels do this
per op); folding the chain removes the requantization, and the float fallback of ops like Div,
between its layers. The merged layer's op is ``ElementwiseChain``; it exists only in quantized
models.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from lwnn.graph import Layer
from lwnn.ops import op_types
from lwnn.ops.base import MergedOp
from lwnn.passes import readers

# The element-wise ops (``Op.elementwise``): functions of one tensor, and of two with broadcasting.
UNARY = op_types(lambda op: op.elementwise == 1)
BINARY = op_types(lambda op: op.elementwise == 2)


@dataclass(frozen=True)
class ElementwiseChain(MergedOp):
    """A function of one tensor: the member layers evaluated in order on ``source``."""

    type: ClassVar[str] = "ElementwiseChain"
    const_inputs: ClassVar[tuple[int, ...]] = ()
    members: tuple[Layer, ...]
    source: str  # the tensor the chain reads
    constants: tuple[tuple[str, float], ...]  # the scalar constants its layers read

    def infer(self, shapes, values):
        return [tuple(shapes[0])]

    def evaluate(self, x: np.ndarray) -> np.ndarray:
        """The chain's value at ``x`` (any shape), with the float CPU kernels of its members."""
        from lwnn.backends.cpu import run_cpu_kernel

        env = {self.source: x, **{n: np.asarray(v, x.dtype) for n, v in self.constants}}
        for layer in self.members:
            args = [env[n] if n else None for n in layer.inputs]
            for name, value in zip(layer.outputs, run_cpu_kernel(layer, args)):
                env[name] = value
        return env[self.members[-1].outputs[0]]


def fold_elementwise_chains(
    layers: list[Layer], constants: dict, outputs: list[str], can_join: Callable[[Layer, Layer], bool]
) -> tuple[list[Layer], dict[str, tuple[Layer, ...]]]:
    """Layers with each chain of two or more element-wise layers merged into one, and the groups."""
    consumers = readers(layers)
    graph_outputs = set(outputs)
    taken: set[int] = set()
    merged: dict[int, Layer] = {}
    groups: dict[str, tuple[Layer, ...]] = {}
    for i, layer in enumerate(layers):
        if i in taken or not _elementwise(layer, constants):
            continue
        sources = {n for n in layer.inputs if n and not _scalar(n, constants)}
        if len(sources) != 1:
            continue
        group = _grow(i, next(iter(sources)), layers, constants, consumers, graph_outputs, taken, can_join)
        if group is None:
            continue
        members = tuple(layers[j] for j in group)
        (source,) = sources
        scalars = tuple(sorted({(n, float(np.asarray(constants[n]).reshape(-1)[0]))
                                for m in members for n in m.inputs if n and n in constants}))
        name = "+".join(m.name for m in members)
        op = ElementwiseChain(members, source, scalars)
        merged[group[-1]] = Layer(name, op, (source,), (members[-1].outputs[0],))
        groups[name] = members
        taken.update(group)
    out = []
    for i, layer in enumerate(layers):
        if i in merged:
            out.append(merged[i])
        elif i not in taken:
            out.append(layer)
    return out, groups


def _grow(start, source, layers, constants, consumers, graph_outputs, taken, can_join) -> list[int] | None:
    """Indices of the chain that starts at ``start``, or None if it stays a single layer or
    would hand on more than one tensor."""
    group = [start]
    produced = set(layers[start].outputs)
    def handed_on(inside: set[int]) -> list[str]:
        return [t for t in produced
                if t in graph_outputs or any(c not in inside for c in consumers.get(t, ()))]

    while True:
        inside = set(group)
        open_tensors = handed_on(inside)
        if len(open_tensors) != 1 or open_tensors[0] in graph_outputs:
            break
        nxt = [c for c in consumers.get(open_tensors[0], ()) if c not in inside]
        ok = all(
            c not in taken and c > max(group) and _elementwise(layers[c], constants)
            and can_join(layers[start], layers[c])
            and all(n in produced or n == source or _scalar(n, constants) for n in layers[c].inputs if n)
            for c in nxt)
        if not ok:
            break
        group = sorted(inside | set(nxt))
        for c in nxt:
            produced.update(layers[c].outputs)
    result = handed_on(set(group))
    if len(group) < 2 or len(result) != 1 or result[0] != layers[group[-1]].outputs[0]:
        return None
    return group


def _scalar(name: str, constants: dict) -> bool:
    value = constants.get(name)
    return value is not None and np.size(value) == 1 and np.asarray(value).dtype.kind == "f"


def _elementwise(layer: Layer, constants: dict) -> bool:
    if len(layer.outputs) != 1:
        return False
    if layer.op_type in UNARY:
        return all(not n or n == layer.inputs[0] or _scalar(n, constants) for n in layer.inputs)
    return layer.op_type in BINARY and len(layer.inputs) == 2
