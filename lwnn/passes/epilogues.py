"""Element-wise fusion for unrecorded OpenCL runs: fewer kernel launches, fewer memory passes.

A chain of element-wise layers that follows a Conv, a binary op or starts on its own (ReLU, Clip,
HardSigmoid, arithmetic with a scalar constant, and hard-swish written out as
``x * clip(x + 3, 0, 6) / 6``) becomes the epilogue of one kernel: each stage is applied, in the
model's order and in float32, to the value before it is stored. Only intermediate tensors that
nothing else reads are skipped, so recorded runs (which need every tensor) never use this.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from lwnn.backends.opencl.layers.eltwise import UNARY
from lwnn.graph import Layer
from lwnn.ops.base import MergedOp
from lwnn.passes import readers

# Stage codes of kernels/common.h: the unary op codes of the eltwise layers, less Erf, which
# has never been fused (leaving it out keeps fusion decisions as they were).
UNARY_CODES = {op: code for op, code in UNARY.items() if op != "Erf"}
C_ADD, C_SUB, C_RSUB, C_MUL, C_DIV, C_RDIV, C_MUL_X, C_MAX, C_MIN = range(20, 29)
MAX_STAGES = 4


@dataclass(frozen=True)
class Chain(MergedOp):
    """A bare chain of element-wise stages (its head is the first stage)."""

    type: ClassVar[str] = "Chain"
    const_inputs: ClassVar[tuple] = ()


@dataclass(frozen=True)
class Fused(MergedOp):
    """``head`` (a Conv, a binary op or ``Chain``) followed by ``chain`` stages (code, a, b);
    ``parts`` are the original layers, which the CPU runs in order if the device cannot
    (``evaluate``), with the scalar ``constants`` they read besides the fused layer's inputs."""

    type: ClassVar[str] = "OpenCLFused"
    const_inputs: ClassVar[tuple] = ()
    head: object
    chain: tuple
    parts: tuple
    inputs: tuple = ()  # the fused layer's inputs, as the first part reads them
    constants: tuple = field(default=(), compare=False)  # (name, array) the later parts read

    def evaluate(self, *args) -> np.ndarray:
        """The float value: the parts' CPU kernels in order."""
        from lwnn.backends.cpu.dispatch import run_cpu_kernel

        env = {**dict(self.constants), **dict(zip(self.inputs, args))}
        for part in self.parts:
            outs = run_cpu_kernel(part, [env[n] if n else None for n in part.inputs])
            env.update(zip(part.outputs, outs))
        return env[self.parts[-1].outputs[0]]


def _unary_stage(layer: Layer):
    op = layer.op
    code = UNARY_CODES.get(layer.op_type)
    if code is None:
        return None
    a, b = {
        "LeakyRelu": (getattr(op, "alpha", 0.0), 0.0),
        "Elu": (getattr(op, "alpha", 0.0), 0.0),
        "Clip": (getattr(op, "min", 0.0), getattr(op, "max", 0.0)),
        "HardSigmoid": (getattr(op, "alpha", 0.0), getattr(op, "beta", 0.0)),
    }.get(layer.op_type, (0.0, 0.0))
    return (code, float(a), float(b))


def _scalar(constants: dict, name: str):
    v = constants.get(name)
    if v is None or v.size != 1 or v.dtype != np.float32:
        return None
    return float(v.reshape(-1)[0])


def _stage(layer: Layer, t: str, x0: str, constants: dict, shapes: dict):
    """The stage ``layer`` applies to tensor ``t`` (chain input ``x0``), or None."""
    if len(layer.outputs) != 1 or shapes[layer.outputs[0]] != shapes[t]:
        return None
    if len(layer.inputs) == 1 and layer.inputs[0] == t:
        return _unary_stage(layer)
    if layer.op_type not in ("Add", "Sub", "Mul", "Div", "Max", "Min") or len(layer.inputs) != 2:
        return None
    a, b = layer.inputs
    if layer.op_type == "Mul" and {a, b} == {t, x0} and t != x0:
        return (C_MUL_X, 0.0, 0.0)
    other = b if a == t else a if b == t else None
    if other is None or other == t:
        return None
    c = _scalar(constants, other)
    if c is None:
        return None
    first = a == t
    code = {
        "Add": C_ADD,
        "Mul": C_MUL,
        "Max": C_MAX,
        "Min": C_MIN,
        "Sub": C_SUB if first else C_RSUB,
        "Div": C_DIV if first else C_RDIV,
    }[layer.op_type]
    return (code, c, 0.0)


def fuse_elementwise(
    steps: list[Layer], constants: dict, shapes: dict, outputs: list[str], heads_ok
) -> list[Layer]:
    """``steps`` with element-wise chains merged into the layer before them (see module doc).
    ``heads_ok(layer)`` says whether a layer can take an epilogue on the device."""
    reads = readers(steps)
    outputs = set(outputs)
    out, taken = [], set()
    for i, layer in enumerate(steps):
        if i in taken:
            continue
        is_head = len(layer.outputs) == 1 and heads_ok(layer)
        if is_head:
            x0, chain = layer.outputs[0], []
        else:
            first = (
                _stage(layer, layer.inputs[0], layer.inputs[0], constants, shapes) if layer.inputs else None
            )
            if first is None:
                out.append(layer)
                continue
            x0, chain = layer.inputs[0], [first]
        parts = [i]
        t = layer.outputs[0]
        while len(chain) < MAX_STAGES and t not in outputs:
            nxt = [j for j in reads.get(t, []) if j not in taken]
            # The head's result may have a second reader: the Mul of a hard-swish later on.
            if not nxt or len(nxt) > (2 if t == x0 else 1):
                break
            j = nxt[0]
            stage = _stage(steps[j], t, x0, constants, shapes)
            if stage is None:
                break
            chain.append(stage)
            parts.append(j)
            t = steps[j].outputs[0]
        while len(parts) > 1 and not _self_contained(parts, steps, reads, outputs):
            parts.pop()
            chain.pop()
        if len(parts) == 1:
            out.append(layer)
            continue
        taken.update(parts)
        group = [steps[j] for j in parts]
        head = layer.op if is_head else Chain()
        inputs = layer.inputs if is_head else (layer.inputs[0],)
        name = "+".join(p.name for p in group)
        inner = {o for p in group for o in p.outputs} | set(inputs)
        used = tuple(dict.fromkeys(n for p in group for n in p.inputs if n and n not in inner))
        op = Fused(head, tuple(chain), tuple(group), tuple(inputs), tuple((n, constants[n]) for n in used))
        out.append(Layer(name, op, inputs, (group[-1].outputs[0],)))
    return out


def _self_contained(parts: list[int], steps, reads, outputs) -> bool:
    """Every tensor the group makes, except its last, is read only inside the group."""
    inside = set(parts)
    for j in parts[:-1]:
        t = steps[j].outputs[0]
        if t in outputs or any(r not in inside for r in reads.get(t, [])):
            return False
    return True
