"""Planning: specialise a graph to concrete input shapes (a ``Plan``), and the float schedules
that run it (``lwnn.executor`` runs them).

Planning infers every tensor's shape and folds layers whose inputs are all known constants
(weights, and shape sub-graphs such as Shape -> Gather -> Concat -> Reshape once the input
shapes are fixed). See docs/architecture.md ("Execution").
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lwnn.backends.cpu import run_cpu_kernel
from lwnn.errors import LwnnError, MemoryLimitError, ShapeError, UnsupportedOpError
from lwnn.executor import FOLDED, Recorder, Recording, Schedule, Step, Transfer, execute
from lwnn.graph import Graph, Layer
from lwnn.memory import check_size

__all__ = ["FOLDED", "Plan", "Recording", "Transfer", "build_plan", "check_shape", "run_float"]


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
    schedules: dict = field(default_factory=dict, repr=False, compare=False)  # lwnn.engine._float_schedule

    def __post_init__(self):
        from lwnn.passes.convolutions import fold_into_convolutions

        self.fast_steps, extra = fold_into_convolutions(self.steps, self.constants, self.outputs)
        self.constants.update(extra)


def _in_context(layer: Layer, err: LwnnError) -> LwnnError:
    """The same error, prefixed with the layer that raised it."""
    return type(err)(f"Layer {layer.name!r} ({layer.op_type}): {err}")


def _itemsize(input_dtypes: list) -> int:
    """The bytes per element the memory guard assumes for a layer's outputs: its first input's
    when that is a float tensor, else 4 (float32, the common case; shapes are int64 inputs)."""
    first = input_dtypes[0] if input_dtypes else None
    return first.itemsize if first is not None and first.kind == "f" else 4


def build_plan(graph: Graph, input_shapes: dict[str, tuple]) -> Plan:
    """``graph`` specialised to ``input_shapes`` (one per fed input; optional inputs not fed take
    their default as a constant). Every tensor's shape is inferred, and checked against the memory
    guard (``lwnn.memory``) before a layer is folded or planned."""
    values: dict[str, np.ndarray] = dict(graph.constants)
    for name, spec in graph.inputs.items():
        if spec.optional and name not in input_shapes:
            values[name] = spec.default
    shapes: dict[str, tuple] = {n: tuple(v.shape) for n, v in values.items()}
    shapes.update({n: tuple(s) for n, s in input_shapes.items()})
    dtypes = {n: np.dtype(spec.dtype) for n, spec in graph.inputs.items()}
    steps: list[Layer] = []
    folded: list[Layer] = []
    for layer in graph.layers:
        missing = [n for n in layer.inputs if n and n not in shapes]
        if missing:
            raise LwnnError(
                f"Layer {layer.name!r} ({layer.op_type}): input {missing[0]!r} is produced by no earlier "
                "layer, fed by no graph input and held by no constant.")
        in_shapes = [shapes[n] if n else None for n in layer.inputs]
        in_values = [values.get(n) if n else None for n in layer.inputs]
        for i in layer.op.const_inputs:
            if i < len(layer.inputs) and layer.inputs[i] and in_values[i] is None:
                raise UnsupportedOpError(
                    f"Layer {layer.name!r} ({layer.op_type}): input {i} ({layer.inputs[i]!r}) must "
                    "be computable from constants and input shapes; it depends on tensor values."
                )
        known = all(v is not None for n, v in zip(layer.inputs, in_values) if n)
        size = _itemsize([values[n].dtype if n in values else dtypes.get(n) for n in layer.inputs if n])
        try:
            out_shapes = layer.op.infer(in_shapes, in_values)
            for name, s in zip(layer.outputs, out_shapes):
                check_size(layer.name, layer.op_type, name, s, size)
            if known or layer.op_type == "Shape":
                args = in_values if known else [np.empty(in_shapes[0], np.float32)]
                outs = run_cpu_kernel(layer, args)
                for name, v in zip(layer.outputs, outs):
                    values[name] = v
                    shapes[name] = tuple(v.shape)
                folded.append(layer)
                continue
        except MemoryLimitError:
            raise
        except LwnnError as err:
            raise _in_context(layer, err) from None
        for name, s in zip(layer.outputs, out_shapes):
            shapes[name] = tuple(int(d) for d in s)
        steps.append(layer)
    unwritten = [n for n in graph.outputs if n not in shapes]
    if unwritten:
        raise LwnnError(f"Graph output {unwritten[0]!r} is written by no layer and is neither an input "
                        "nor a constant.")
    constants = {n: values[n] for n in values}
    return Plan(shapes, constants, steps, folded, list(graph.outputs))


def _float_schedule(plan: Plan, runtime, record: bool) -> Schedule:
    """Recorded runs execute the layers as imported; unrecorded ones the folded fast steps (and
    on a device, with element-wise chains fused into the layer before them). Cached per plan."""
    key = (runtime.name, record)
    schedule = plan.schedules.get(key)
    if schedule is not None:
        return schedule
    if runtime.backend == "cpu":
        layers = plan.steps if record else plan.fast_steps
        steps = [Step(layer, runtime) for layer in layers]
    else:
        from lwnn.backends import get_runtime

        cpu = get_runtime("cpu")
        layers = plan.steps if record else device_layers(plan, runtime)
        steps = [Step(layer, runtime, [plan.shapes[o] for o in layer.outputs],
                      frozenset(layer.op.const_inputs), fallback=cpu) if runtime.supports(layer)
                 else Step(layer, cpu) for layer in layers]
    schedule = plan.schedules[key] = Schedule(plan, steps)
    return schedule


def device_layers(plan: Plan, runtime) -> list[Layer]:
    """The layers an unrecorded run executes on a device runtime: the plan's fast steps with
    element-wise chains fused into the kernel before them where the runtime takes an epilogue
    (``lwnn.passes.epilogues``; ``runtime.fuse = False`` turns it off)."""
    if not runtime.fuse:
        return plan.fast_steps
    from lwnn.passes.epilogues import fuse_elementwise

    return fuse_elementwise(plan.fast_steps, plan.constants, plan.shapes, plan.outputs,
                            lambda layer: runtime.takes_epilogue(layer, plan))


def run_float(plan: Plan, feeds: dict[str, np.ndarray], runtime, record: bool):
    """Run ``plan`` on a float runtime; the outputs dict, or a ``Recording`` if ``record``."""
    schedule = _float_schedule(plan, runtime, record)
    recorder = Recorder() if record else None
    run = execute(schedule, feeds, record=record, hook=recorder)
    if schedule.device is not None:
        runtime.last_transfers = run.transfers  # the copies of the last run, recorded or not
    return recorder.recording(run) if record else run.outputs


def check_shape(name: str, declared: tuple | None, received: tuple) -> None:
    if declared is None:  # the model does not declare this input's shape
        return
    if len(declared) != len(received) or any(d is not None and d != r for d, r in zip(declared, received)):
        want = "(" + ", ".join("?" if d is None else str(d) for d in declared) + ")"
        raise ShapeError(f"Input {name!r} expects shape {want}. Received shape {tuple(received)}.")
