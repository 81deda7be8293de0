"""``QuantizedModel``: a float model plus integer parameters, run the way the device runs it.

Each layer runs on its scheme's integer kernel when one exists (``lwnn.backends.cpu_int``),
else falls back to CPU float: its inputs are dequantized and its output is re-quantized when an
integer layer consumes it. Layers may be forced to float or to another integer scheme (mixed
precision): a tensor produced under one scheme and read under another is converted at the
boundary by dequantizing it with its producer's parameters and quantizing it with the consumer
scheme's parameters for that tensor. Runs return dequantized float tensors under the float
model's names; ``raw`` gives the integer tensors as the device holds them.
"""

from __future__ import annotations

import json
import warnings
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lwnn.backends import get_runtime
from lwnn.backends.cpu_int import kernel_for
from lwnn.errors import BackendUnavailable, CalibrationError, LwnnError
from lwnn.executor import Recorder, Schedule, Step, execute
from lwnn.numerics.params import SCHEMES, AffineParams, QFormat
from lwnn.numerics.roles import input_roles
from lwnn.quant.folding import QuantGraph, quant_graph

FORMAT = "lwnn.quantized/2"


@dataclass(frozen=True)
class LayerPlan:
    """How one source layer runs: its requested mode and the runtime that actually executes it.

    ``folded_into``: the merged convolution that executes it (``fold=True``), else None.
    ``converts``: inputs converted at this layer's edge, as ``"tensor: s8 -> q8"`` (``float``
    for a tensor a float layer produced).
    """

    layer: str
    op_type: str
    mode: str  # float | s8 | q8 | q16, as requested
    runtime: str  # cpu/s8, cpu/q8, cpu/q16 or cpu/float (requested float, or fallback)
    folded_into: str | None = None
    converts: tuple[str, ...] = ()

    @property
    def fallback(self) -> bool:
        return self.mode != "float" and self.runtime == "cpu/float"


class QuantizedModel:
    """See the module docstring. Build with ``lwnn.quantize``; reload with ``QuantizedModel.load``."""

    def __init__(self, model, scheme: str, params: dict[str, dict], layer_modes: dict[str, str],
                 config: dict, observers: dict | None = None, qgraph: QuantGraph | None = None):
        self.model, self.scheme, self.config = model, scheme, config
        self.observers = observers or {}
        self._params = params  # scheme -> tensor name -> parameters
        self._modes = layer_modes  # source layer name -> mode
        self.qgraph = qgraph or quant_graph(model, layer_modes, config.get("fold", False))
        self.constants = self.qgraph.constants
        # Mode of each executed layer (a merged convolution runs in its members' common mode).
        self._qmodes = {layer.name: layer_modes[self.qgraph.members.get(layer.name, (layer.name,))[0]]
                        for layer in self.qgraph.layers}
        self._kernels: dict[str, object] = {}  # executed layer name -> CPU integer kernel or None
        # (executed layer name, runtime name) -> IntBinding: parameters and the kernel's memo
        self._bindings: dict[tuple[str, str], object] = {}
        self._roles = {layer.name: input_roles(layer, self.constants) for layer in self.qgraph.layers}
        self._holders = self._tensor_holders()
        self._raw_constants = self._quantize_constants()
        self._last_raw: dict[tuple[str, str], np.ndarray] = {}
        self.overflow: dict[str, int] = {}  # layer name -> int32 overflows, summed over runs
        self._schedules: dict[tuple[int, str], tuple] = {}  # (id(plan), backend) -> (weakref, Schedule)

    # --- inspection ------------------------------------------------------------------------
    @property
    def inputs(self):
        return self.model.inputs

    @property
    def outputs(self):
        return self.model.outputs

    @property
    def layers(self):
        return self.model.layers

    @property
    def schemes(self) -> tuple[str, ...]:
        """The integer schemes this model's layers run under (the main scheme first)."""
        return tuple(self._params)

    def tensor_params(self, name: str, scheme: str | None = None):
        """``AffineParams`` (s8: ``.scale``, ``.zero_point``) or ``QFormat`` (``.frac_bits``) of
        the scheme that holds the tensor (its producer's; for a float tensor, its first integer
        consumer's), or of ``scheme``."""
        self.qgraph.check_exists(name)
        scheme = self._scheme_of(name, scheme)
        try:
            return self._params[scheme][name]
        except KeyError:
            raise LwnnError(f"Tensor {name!r} has no {scheme} quantization parameters (it is not "
                            "quantized, or no such tensor).") from None

    def params(self, scheme: str | None = None) -> dict:
        """{tensor: parameters} of one scheme (the main scheme by default), activations and
        constants alike."""
        if scheme is not None and scheme not in self._params:
            raise LwnnError(f"This model has no {scheme!r} parameters. Expected one of {list(self._params)}.")
        return dict(self._params[scheme or self.scheme])

    def raw(self, name: str, scheme: str | None = None) -> np.ndarray:
        """The integer tensor as the device holds it: weights and biases always, activations
        after a recorded run. ``scheme``: the copy a layer of that scheme reads (mixed precision)."""
        self.qgraph.check_exists(name)
        scheme = self._scheme_of(name, scheme)
        key = (name, scheme)
        if key in self._raw_constants:
            return self._raw_constants[key]
        if key in self._last_raw:
            return self._last_raw[key]
        hint = " Run q.run(feeds, record=True) first." if name in self._params.get(scheme, {}) else ""
        raise LwnnError(f"No raw {scheme} integer tensor {name!r}.{hint}")

    def _scheme_of(self, name: str, scheme: str | None) -> str:
        if scheme is None:
            return self._holders.get(name, self.scheme)
        if scheme not in self._params:
            raise LwnnError(f"Tensor {name!r}: this model has no {scheme!r} parameters. Expected one of "
                            f"{list(self._params)}.")
        return scheme

    def reset_overflow(self) -> None:
        """Forget the overflow counts of earlier runs."""
        self.overflow = {}

    def plan(self) -> list[LayerPlan]:
        """Per source layer: requested mode, the runtime that executes it, the merged convolution
        it was folded into, and the inputs converted between schemes at its edge."""
        executed = {}
        for layer in self.qgraph.layers:
            mode = self._qmodes[layer.name]
            runtime = f"cpu/{mode}" if self.integer_kernel(layer) is not None else "cpu/float"
            converts = tuple(f"{n}: {self.holder(n)} -> {mode}" for n in self._converted_inputs(layer))
            executed[layer.name] = (runtime, converts)
        rows = []
        for layer in self.model.layers:
            merged = self.qgraph.merged_into(layer.name)
            runtime, converts = executed.get(merged or layer.name, ("cpu/float", ()))
            if merged is not None and self.qgraph.members[merged][0] != layer.name:
                converts = ()
            mode = self._modes[layer.name]
            rows.append(LayerPlan(layer.name, layer.op_type, mode, runtime, merged, converts))
        return rows

    def holder(self, name: str) -> str:
        """Scheme holding tensor ``name`` as produced (``float`` for float-layer outputs, inputs)."""
        return self._producer_scheme.get(name, "float")

    def _converted_inputs(self, layer) -> list[str]:
        if self.integer_kernel(layer) is None:
            return []
        mode = self._qmodes[layer.name]
        return [n for n, r in zip(layer.inputs, self._roles[layer.name])
                if n and r == "act" and n in self._producer and self.holder(n) != mode]

    def integer_kernel(self, layer):
        """The integer kernel that runs executed layer ``layer``, or None (float)."""
        if layer.name not in self._kernels:
            self._kernels[layer.name] = self._choose_kernel(layer)
        return self._kernels[layer.name]

    def _choose_kernel(self, layer):
        mode = self._qmodes.get(layer.name, "float")
        if mode == "float":
            return None
        params = self._params[mode]
        if any(o not in params for o in layer.outputs):
            return None
        roles = self._roles.get(layer.name) or input_roles(layer, self.constants)
        if any(n and r != "raw" and n not in params for n, r in zip(layer.inputs, roles)):
            return None
        return kernel_for(mode, layer)

    def layer_scheme(self, layer) -> str | None:
        """Integer scheme executed layer ``layer`` runs under, or None when it runs in float."""
        return self._qmodes[layer.name] if self.integer_kernel(layer) is not None else None

    def _tensor_holders(self) -> dict[str, str]:
        """Tensor -> the scheme whose parameters ``tensor_params``/``raw`` report by default."""
        self._producer = {o: layer for layer in self.qgraph.layers for o in layer.outputs}
        self._producer_scheme = {}
        holders: dict[str, str] = {}
        for layer in self.qgraph.layers:
            scheme = self.layer_scheme(layer)
            if scheme is None:
                continue
            for o in layer.outputs:
                self._producer_scheme[o] = holders[o] = scheme
            for n, r in zip(layer.inputs, self._roles[layer.name]):
                if n and (r in ("weight", "bias") or n not in self._producer):
                    holders.setdefault(n, scheme)
        self._first_reader: dict[str, str] = {}  # tensor -> scheme of its first integer reader
        for layer in self.qgraph.layers:
            scheme = self.layer_scheme(layer)
            if scheme is not None:
                for n in layer.inputs:
                    if n:
                        self._first_reader.setdefault(n, scheme)
        for n, scheme in self._first_reader.items():  # float outputs: their first integer reader's
            holders.setdefault(n, scheme)
        return holders

    def _quantize_constants(self) -> dict[tuple[str, str], np.ndarray]:
        """Every quantized constant, as each scheme that has parameters for it holds it."""
        return {(n, s): p.quantize(self.constants[n]) for s, params in self._params.items()
                for n, p in params.items() if n in self.constants}

    # --- running ---------------------------------------------------------------------------
    def run(self, feeds: dict, backend: str = "cpu", record: bool = False):
        """Run as the integer device would; outputs (or a Recording) as dequantized floats.

        ``backend="opencl"``: integer layers run on the OpenCL integer kernels where the device
        has them (bit-exact with the CPU ones; ``executed_by`` says ``opencl/<scheme>``), others on
        the CPU integer or float kernels. Integer tensors stay on the device between device
        layers; ``Recording.transfers`` lists every copy."""
        arrays, plan = self._plan_for(feeds, backend)
        recorder = Recorder() if record else None
        run = execute(self._schedule(plan, backend), arrays, record=record, hook=recorder)
        self._report_overflow(run.overflow)
        if not record:
            return run.outputs
        self._last_raw = recorder.codes
        return recorder.recording(run)

    def run_isolated(self, reference=None, feeds: dict | None = None, backend: str = "cpu"):
        """Every layer on its own inputs: each executed layer reads the float ``reference``
        tensors (``m.run(feeds, record=True)`` of the float model on the same feeds), quantized
        with the parameters its scheme gives them, so its output error is its own rather than
        inherited from the layers before it. Returns a Recording of dequantized float tensors
        under the source names, with ``executed_by``; overflow counts are not added to
        ``q.overflow`` and ``raw`` keeps the last cumulative run. Pass ``feeds`` alone to record
        the float reference here."""
        if reference is None:
            if feeds is None:
                raise LwnnError("run_isolated needs a float Recording (m.run(feeds, record=True)) or "
                                "feeds. Received neither.")
            reference = self.model.run(feeds, record=True)
        if not hasattr(reference, "executed_by"):
            raise LwnnError("run_isolated expects the float model's Recording (m.run(feeds, record=True)) "
                            f"as reference. Received {type(reference).__name__}.")
        if feeds is None:
            feeds = {n: reference[n] for n in self.model.inputs if n in reference}
        arrays, plan = self._plan_for(feeds, backend)
        schedule = self._schedule(plan, backend)
        recorder = Recorder()
        run = execute(schedule, arrays, record=True, hook=recorder, reference=reference)
        for name in self.model.inputs:  # as its first integer reader quantizes it
            scheme = self._first_reader.get(name)
            if name in arrays and scheme is not None:
                codes = self._convert(name, arrays[name], "float", scheme)
                recorder.tensors[name] = self._convert(name, codes, scheme, "float")
        return recorder.recording(run)

    def _plan_for(self, feeds: dict, backend: str):
        if backend not in ("cpu", "opencl"):
            raise BackendUnavailable(
                f"Quantized models run on backend='cpu' or 'opencl'. Received {backend!r}.")
        if backend == "opencl":
            get_runtime("opencl")  # BackendUnavailable, saying why, without a device
        arrays = self.model.check_feeds(feeds)
        return arrays, self.model.plan({n: a.shape for n, a in arrays.items()})

    def _schedule(self, plan, backend: str) -> Schedule:
        """The plan's executed layers (merged as calibrated) on their runtimes: integer layers on
        their scheme's runtime (on ``backend`` where it has the kernel, else the CPU's), the others
        on CPU float, converting tensors at scheme boundaries (``_convert``). Cached per plan."""
        key = (id(plan), backend)
        hit = self._schedules.get(key)
        if hit is not None and hit[0]() is plan:
            return hit[1]
        cpu = get_runtime("cpu")
        layers = self.qgraph.steps(plan.steps)
        steps = []
        for layer in layers:
            members = self.qgraph.members.get(layer.name, (layer.name,))
            scheme = self.layer_scheme(layer)
            if scheme is None:  # float; an integer reader takes its outputs re-quantized
                requantize = tuple((o, self._first_reader[o]) for o in layer.outputs
                                   if o in self._first_reader and o in self._params[self._first_reader[o]])
                steps.append(Step(layer, cpu, members=members, requantize=requantize))
                continue
            runtime = get_runtime(backend, scheme)
            if not runtime.supports(layer):
                runtime = get_runtime("cpu", scheme)
            roles = self._roles[layer.name]
            steps.append(Step(layer, runtime, self._binding(layer, runtime), members=members,
                              host_inputs=frozenset(i for i, r in enumerate(roles) if r == "raw")))
        constants: dict[str, dict] = {"float": {**self.constants, **plan.constants}}
        for (name, scheme), codes in self._raw_constants.items():
            constants.setdefault(scheme, {})[name] = codes
        schedule = Schedule(plan, steps, constants, self._convert)
        self._schedules[key] = (weakref.ref(plan), schedule)
        return schedule

    def _binding(self, layer, runtime):
        key = (layer.name, runtime.name)
        binding = self._bindings.get(key)
        if binding is None:
            params = self._params[runtime.scheme]
            roles = self._roles[layer.name]
            ins = [params[n] if n and r != "raw" else None for n, r in zip(layer.inputs, roles)]
            out = [params[o] for o in layer.outputs]
            binding = self._bindings[key] = runtime.bind(layer, ins, out, roles)
        return binding

    def _convert(self, name: str, value: np.ndarray, src: str, dst: str) -> np.ndarray:
        """Tensor ``name`` from domain ``src`` to ``dst`` ("float" or a scheme): dequantized with
        ``src``'s parameters, quantized with ``dst``'s."""
        if src != "float":
            value = self._params[src][name].dequantize(value)
        if dst != "float":
            value = self._params[dst][name].quantize(value)
        return value

    def _report_overflow(self, overflow: dict[str, int]) -> None:
        for name, count in overflow.items():
            self.overflow[name] = self.overflow.get(name, 0) + count
        if overflow:
            worst = ", ".join(f"{n!r}: {c}" for n, c in sorted(overflow.items(), key=lambda kv: -kv[1])[:3])
            warnings.warn(
                f"int32 accumulator overflow in {len(overflow)} layer(s) ({worst}); the device would "
                "wrap these values. See q.overflow; for q16 try q16_headroom='lwnn'.",
                stacklevel=3,
            )

    # --- persistence -----------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "model": self.model.name,
            "config": self.config,
            "layers": self._modes,
            "params": {s: {n: _params_to_dict(p) for n, p in ps.items()} for s, ps in self._params.items()},
        }

    def save(self, path) -> None:
        """Write the plan and every tensor's parameters as JSON (reproducible without calibrating)."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=1, sort_keys=True))

    @classmethod
    def load(cls, path, model) -> QuantizedModel:
        """Rebuild a saved quantization for ``model`` (the same float model)."""
        data = json.loads(Path(path).read_text())
        if data.get("format") not in (FORMAT, "lwnn.quantized/1"):
            raise CalibrationError(f"{str(path)!r} is not an lwnn quantization file.")
        names = {layer.name for layer in model.layers}
        missing = sorted(set(data["layers"]) - names)
        if missing:
            raise CalibrationError(f"{str(path)!r} names layers this model lacks: {missing[:5]}.")
        config = data["config"]
        saved = data["params"]
        if data["format"] == "lwnn.quantized/1":  # one scheme, unfolded
            saved = {config["scheme"]: saved}
            config = {**config, "fold": False}
        # Schemes in the saved order: the main scheme first.
        params = {s: {n: _params_from_dict(d) for n, d in saved[s].items()} for s in
                  sorted(saved, key=lambda s: (s != config["scheme"], SCHEMES.index(s)))}
        modes = {layer.name: data["layers"].get(layer.name, config["scheme"]) for layer in model.layers}
        return cls(model, config["scheme"], params, modes, config)

    def __repr__(self) -> str:
        plan = self.plan()
        native = sum(1 for p in plan if p.runtime != "cpu/float")
        return (f"<lwnn.QuantizedModel {self.model.name!r} {self.scheme}/{self.config.get('method')}: "
                f"{native}/{len(plan)} layers integer>")


def _params_to_dict(p) -> dict:
    kind = "affine" if isinstance(p, AffineParams) else "qformat"
    return {"kind": kind, **p.to_dict()}


def _params_from_dict(d: dict):
    d = dict(d)
    kind = d.pop("kind")
    return AffineParams.from_dict(d) if kind == "affine" else QFormat.from_dict(d)
