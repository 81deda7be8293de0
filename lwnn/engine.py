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

from lwnn.backends.cpu import run_cpu_kernel
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


@dataclass(frozen=True)
class Transfer:
    """One copy between host and device during a run: ``direction`` is "to_device" or
    "to_host"; ``reason`` is "input" (a host tensor a device layer needs), "fallback" (a device
    tensor a CPU layer needs), "record" or "output"."""

    tensor: str
    direction: str
    nbytes: int
    layer: str
    reason: str


class Recording(Mapping):
    """Every tensor of one run by name (inputs, layer outputs, folded shape tensors), with the
    runtime that executed each layer in ``executed_by`` (layer name -> runtime name), its
    wall time in ``seconds`` (layer name -> seconds) and, for device runtimes, every copy between
    host and device in ``transfers``."""

    def __init__(
        self,
        tensors: dict[str, np.ndarray],
        executed_by: dict[str, str],
        outputs: list[str],
        seconds: dict[str, float] | None = None,
        transfers: list[Transfer] | None = None,
    ):
        self._tensors = tensors
        self.executed_by = executed_by
        self.output_names = list(outputs)
        self.seconds = seconds or {}
        self.transfers = transfers or []

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
    if getattr(runtime, "device_resident", False):
        return execute_on_device(plan, feeds, runtime, record)
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


def _check_outputs(layer: Layer, outs, plan: Plan, runtime_name: str) -> None:
    for name, v in zip(layer.outputs, outs):
        if tuple(v.shape) != plan.shapes[name]:
            raise KernelError(
                f"Layer {layer.name!r} ({layer.op_type}) on {runtime_name} produced {name!r} "
                f"with shape {tuple(v.shape)}; shape inference expects {plan.shapes[name]}."
            )


def execute_on_device(plan: Plan, feeds: dict[str, np.ndarray], runtime, record: bool):
    """Run ``plan`` on a device runtime (OpenCL). Tensors stay on the device between layers; a
    layer the device cannot run executes on the CPU float runtime. Every copy between host and
    device is recorded (``Recording.transfers``, or ``runtime.last_transfers`` when not recording):
    host tensors a device layer needs, device tensors a CPU layer needs, recorded tensors and outputs.
    """
    from lwnn.backends import get_runtime
    from lwnn.backends.opencl import CLTensor, NotOnDevice

    cpu = get_runtime("cpu")
    steps = plan.steps if record else runtime.device_steps(plan)
    last_use = {}
    for i, layer in enumerate(steps):
        for name in layer.inputs:
            last_use[name] = i
    for name in plan.outputs:
        last_use[name] = len(steps)
    env: dict[str, object] = dict(feeds)  # run-time tensors: host arrays or device tensors
    host_copies: dict[str, np.ndarray] = {}
    transfers: list[Transfer] = []
    executed_by = {layer.name: FOLDED for layer in plan.folded}
    seconds: dict[str, float] = {}

    def to_host(name: str, layer: str, reason: str) -> np.ndarray:
        value = env[name]
        if not isinstance(value, CLTensor):
            return value
        if name not in host_copies:
            host_copies[name] = runtime.download(value)
            transfers.append(Transfer(name, "to_host", value.nbytes, layer, reason))
        return host_copies[name]

    def release(name: str) -> None:
        value = env.pop(name, None)
        if isinstance(value, CLTensor):
            value.release()

    try:
        for i, layer in enumerate(steps):
            start = time.perf_counter()
            try:
                outs = None
                if runtime.supports(layer):
                    outs = _try_device(plan, layer, env, runtime, transfers, CLTensor, NotOnDevice)
                if outs is None:
                    args = [None if not n else plan.constants[n] if n in plan.constants else
                            to_host(n, layer.name, "fallback") for n in layer.inputs]
                    outs = _run_on_cpu(cpu, layer, args, plan.constants)
                    who = cpu.name
                else:
                    who = runtime.name
                if record:
                    runtime.finish()
            except LwnnError as err:
                raise _in_context(layer, err) from None
            seconds[layer.name] = time.perf_counter() - start
            _check_outputs(layer, outs, plan, who)
            for name, v in zip(layer.outputs, outs):
                release(name)
                env[name] = v
            executed_by[layer.name] = who
            if not record:
                for name in layer.inputs:
                    if name and last_use.get(name) == i and name not in plan.constants:
                        release(name)
        if record:
            folded = {name for layer in plan.folded for name in layer.outputs}
            keep = {n: v for n, v in plan.constants.items() if n in folded}
            for name in list(env):
                keep[name] = to_host(name, "", "output" if name in plan.outputs else "record")
            return Recording(keep, executed_by, plan.outputs, seconds, transfers)
        return {name: to_host(name, "", "output") if name in env else plan.constants[name]
                for name in plan.outputs}
    finally:
        for name in list(env):
            release(name)
        runtime.last_transfers = transfers


def _run_on_cpu(cpu, layer: Layer, args: list, constants: dict) -> list:
    """A layer on the CPU float runtime; a fused device layer runs as its original parts."""
    parts = getattr(layer.op, "parts", None)
    if not parts:
        return cpu.run_layer(layer, args)
    local = dict(zip(layer.inputs, args))
    for part in parts:
        outs = cpu.run_layer(part, [local[n] if n in local else constants.get(n) if n else None
                                    for n in part.inputs])
        local.update(zip(part.outputs, outs))
    return [local[layer.outputs[0]]]


def _try_device(plan: Plan, layer: Layer, env: dict, runtime, transfers: list, CLTensor, NotOnDevice):
    """Run ``layer`` on the device, uploading the host tensors it reads; None if it cannot."""
    args = []
    uploads = []
    for j, name in enumerate(layer.inputs):
        if not name:
            args.append(None)
        elif name in plan.constants:
            args.append(plan.constants[name])
        else:
            value = env[name]
            if isinstance(value, CLTensor) or j in layer.op.const_inputs:
                args.append(value)
            elif value.dtype == np.float32:
                uploads.append((j, name, value))
                args.append(value)
            else:
                return None  # integer/bool run-time tensors stay on the CPU
    for j, name, value in uploads:
        t = runtime.upload(value, name)
        env[name] = t
        args[j] = t
        transfers.append(Transfer(name, "to_device", value.nbytes, layer.name, "input"))
    try:
        return runtime.run_device(layer, args, [plan.shapes[n] for n in layer.outputs])
    except NotOnDevice:
        return None


def check_shape(name: str, declared: tuple | None, received: tuple) -> None:
    if declared is None:  # the model does not declare this input's shape
        return
    if len(declared) != len(received) or any(d is not None and d != r for d, r in zip(declared, received)):
        want = "(" + ", ".join("?" if d is None else str(d) for d in declared) + ")"
        raise ShapeError(f"Input {name!r} expects shape {want}. Received shape {tuple(received)}.")
