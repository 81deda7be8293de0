"""Execution: specialise a graph to concrete input shapes (a ``Plan``), then run it.

Planning infers every tensor's shape and folds layers whose inputs are all known constants
(weights, and shape sub-graphs such as Shape -> Gather -> Concat -> Reshape once the input
shapes are fixed). Running walks the remaining layers in order on a runtime, optionally
recording every tensor and which runtime executed each layer.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np

from lwnn.backends.cpu import KERNELS as CPU_KERNELS
from lwnn.errors import KernelError, LwnnError, ShapeError, UnsupportedOpError
from lwnn.graph import Graph, Layer

FOLDED = "folded"  # executed_by value of layers computed while planning


@dataclass
class Plan:
    """A graph specialised to fixed input shapes: what remains to execute, and every shape.

    ``steps`` are the layers as imported (recorded runs); ``fast_steps`` the same computation
    with BatchNorms and per-channel constants folded into convolutions (runs that return
    only the outputs).
    """

    shapes: dict[str, tuple]
    constants: dict[str, np.ndarray]
    steps: list[Layer]
    folded: list[Layer]
    outputs: list[str]
    fast_steps: list[Layer] = field(default_factory=list)
    last_use: dict[str, int] = field(default_factory=dict)  # index in fast_steps

    def __post_init__(self):
        from lwnn.fusion import fold_into_convolutions

        self.fast_steps, extra = fold_into_convolutions(self.steps, self.constants, self.outputs)
        self.constants.update(extra)
        for i, layer in enumerate(self.fast_steps):
            for name in layer.inputs:
                self.last_use[name] = i
        for name in self.outputs:
            self.last_use[name] = len(self.fast_steps)


def run_cpu_kernel(layer: Layer, args: list) -> list[np.ndarray]:
    """Run one layer with the CPU float kernels (also used to fold constants)."""
    try:
        fn = CPU_KERNELS[layer.op_type]
    except KeyError:
        raise UnsupportedOpError(
            f"Layer {layer.name!r}: op {layer.op_type} has no CPU float kernel."
        ) from None
    while args and args[-1] is None:
        args = args[:-1]  # trailing omitted optional inputs
    out = fn(layer.op, *args)
    return list(out) if isinstance(out, tuple | list) else [out]


def _in_context(layer: Layer, err: LwnnError) -> LwnnError:
    """The same error, prefixed with the layer that raised it."""
    return type(err)(f"Layer {layer.name!r} ({layer.op_type}): {err}")


def build_plan(graph: Graph, input_shapes: dict[str, tuple]) -> Plan:
    values: dict[str, np.ndarray] = dict(graph.constants)
    shapes: dict[str, tuple] = {n: tuple(v.shape) for n, v in values.items()}
    shapes.update({n: tuple(s) for n, s in input_shapes.items()})
    steps: list[Layer] = []
    folded: list[Layer] = []
    for layer in graph.layers:
        in_shapes = [shapes[n] if n else None for n in layer.inputs]
        in_values = [values.get(n) if n else None for n in layer.inputs]
        for i in layer.op.const_inputs:
            if i < len(layer.inputs) and layer.inputs[i] and in_values[i] is None:
                raise UnsupportedOpError(
                    f"Layer {layer.name!r} ({layer.op_type}): input {i} ({layer.inputs[i]!r}) must "
                    "be computable from constants and input shapes; it depends on tensor values."
                )
        known = all(v is not None for n, v in zip(layer.inputs, in_values) if n)
        try:
            if known or layer.op_type == "Shape":
                args = in_values if known else [np.empty(in_shapes[0], np.float32)]
                outs = run_cpu_kernel(layer, args)
                for name, v in zip(layer.outputs, outs):
                    values[name] = v
                    shapes[name] = tuple(v.shape)
                folded.append(layer)
                continue
            out_shapes = layer.op.infer(in_shapes, in_values)
        except LwnnError as err:
            raise _in_context(layer, err) from None
        for name, s in zip(layer.outputs, out_shapes):
            shapes[name] = tuple(int(d) for d in s)
        steps.append(layer)
    constants = {n: values[n] for n in values}
    return Plan(shapes, constants, steps, folded, list(graph.outputs))


class Recording(Mapping):
    """Every tensor of one run by name (inputs, layer outputs, folded shape tensors), with the
    runtime that executed each layer in ``executed_by`` (layer name -> runtime name) and its
    wall time in ``seconds`` (layer name -> seconds)."""

    def __init__(
        self,
        tensors: dict[str, np.ndarray],
        executed_by: dict[str, str],
        outputs: list[str],
        seconds: dict[str, float] | None = None,
    ):
        self._tensors = tensors
        self.executed_by = executed_by
        self.output_names = list(outputs)
        self.seconds = seconds or {}

    @property
    def outputs(self) -> dict[str, np.ndarray]:
        return {n: self._tensors[n] for n in self.output_names}

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self._tensors[name]
        except KeyError:
            from lwnn.graph import _preview

            raise KeyError(
                f"No tensor {name!r} in this recording. Recorded: {_preview(list(self._tensors))}"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._tensors)

    def __len__(self) -> int:
        return len(self._tensors)

    def __repr__(self) -> str:
        return f"Recording({len(self)} tensors, {len(self.executed_by)} layers)"


def execute(plan: Plan, feeds: dict[str, np.ndarray], runtime, record: bool):
    """Run ``plan`` on ``runtime``; return the outputs dict, or a ``Recording`` if ``record``."""
    env: dict[str, np.ndarray] = dict(plan.constants)
    env.update(feeds)
    executed_by = {layer.name: FOLDED for layer in plan.folded}
    seconds: dict[str, float] = {}
    for i, layer in enumerate(plan.steps if record else plan.fast_steps):
        args = [env[n] if n else None for n in layer.inputs]
        start = time.perf_counter()
        try:
            outs = runtime.run_layer(layer, args)
        except LwnnError as err:
            raise _in_context(layer, err) from None
        seconds[layer.name] = time.perf_counter() - start
        for name, v in zip(layer.outputs, outs):
            if tuple(v.shape) != plan.shapes[name]:
                raise KernelError(
                    f"Layer {layer.name!r} ({layer.op_type}) on {runtime.name} produced {name!r} "
                    f"with shape {tuple(v.shape)}; shape inference expects {plan.shapes[name]}."
                )
            env[name] = v
        executed_by[layer.name] = runtime.name
        if not record:
            for name in layer.inputs:
                if name and plan.last_use.get(name) == i and name not in plan.constants:
                    del env[name]
    if record:
        folded = {name for layer in plan.folded for name in layer.outputs}
        keep = {n: v for n, v in env.items() if n not in plan.constants or n in folded}
        return Recording(keep, executed_by, plan.outputs, seconds)
    return {name: env[name] for name in plan.outputs}


def check_shape(name: str, declared: tuple | None, received: tuple) -> None:
    if declared is None:  # the model does not declare this input's shape
        return
    if len(declared) != len(received) or any(d is not None and d != r for d, r in zip(declared, received)):
        want = "(" + ", ".join("?" if d is None else str(d) for d in declared) + ")"
        raise ShapeError(f"Input {name!r} expects shape {want}. Received shape {tuple(received)}.")
