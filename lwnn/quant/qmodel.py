"""``QuantizedModel``: a float model plus integer parameters, run the way the device runs it.

Each layer runs on its scheme's integer kernel when one exists (``lwnn.backends.cpu_int``),
else falls back to CPU float: its inputs are dequantized and its output is re-quantized when an
integer layer consumes it. Runs return dequantized float tensors under the float model's names;
``raw`` gives the integer tensors as the device holds them.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lwnn.backends.cpu_int import IntCall, kernel_for
from lwnn.engine import FOLDED, Recording, run_cpu_kernel
from lwnn.errors import BackendUnavailable, CalibrationError, LwnnError
from lwnn.quant import rules
from lwnn.quant.params import AffineParams, QFormat


@dataclass(frozen=True)
class LayerPlan:
    """How one layer runs: its requested mode and the runtime that actually executes it."""

    layer: str
    op_type: str
    mode: str  # float | s8 | q8 | q16, as requested
    runtime: str  # cpu/s8, cpu/q8, cpu/q16 or cpu/float (requested float, or fallback)

    @property
    def fallback(self) -> bool:
        return self.mode != "float" and self.runtime == "cpu/float"


class QuantizedModel:
    """See the module docstring. Build with ``lwnn.quantize``; reload with ``QuantizedModel.load``."""

    def __init__(self, model, scheme: str, params: dict, layer_modes: dict[str, str], config: dict,
                 observers: dict | None = None):
        self.model, self.scheme, self.config = model, scheme, config
        self.observers = observers or {}
        self._params = params
        self._modes = layer_modes
        self._raw_constants = {n: p.quantize(model.graph.constants[n]) for n, p in params.items()
                               if n in model.graph.constants}
        self._last_raw: dict[str, np.ndarray] = {}
        self.overflow: dict[str, int] = {}  # layer name -> int32 overflows, summed over runs
        self._kernels: dict[str, object] = {}  # layer name -> integer kernel or None, decided once
        self._layer_cache: dict[str, dict] = {}  # layer name -> the kernel's memo (IntCall.cache)
        self._roles = {layer.name: rules.input_roles(layer, model.graph.constants) for layer in model.layers}

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

    def tensor_params(self, name: str):
        """``AffineParams`` (s8: ``.scale``, ``.zero_point``) or ``QFormat`` (``.frac_bits``)."""
        try:
            return self._params[name]
        except KeyError:
            raise LwnnError(f"Tensor {name!r} has no quantization parameters (it is not quantized, "
                            "or no such tensor).") from None

    def raw(self, name: str) -> np.ndarray:
        """The integer tensor as the device holds it: weights and biases always, activations
        after a recorded run."""
        if name in self._raw_constants:
            return self._raw_constants[name]
        if name in self._last_raw:
            return self._last_raw[name]
        hint = " Run q.run(feeds, record=True) first." if name in self._params else ""
        raise LwnnError(f"No raw integer tensor {name!r}.{hint}")

    def reset_overflow(self) -> None:
        """Forget the overflow counts of earlier runs."""
        self.overflow = {}

    def plan(self) -> list[LayerPlan]:
        """Per layer: requested mode and the runtime that executes it."""
        rows = []
        for layer in self.model.layers:
            mode = self._modes[layer.name]
            native = mode != "float" and self._integer_kernel(layer) is not None
            rows.append(LayerPlan(layer.name, layer.op_type, mode, f"cpu/{mode}" if native else "cpu/float"))
        return rows

    def _integer_kernel(self, layer):
        if layer.name not in self._kernels:
            self._kernels[layer.name] = self._choose_kernel(layer)
        return self._kernels[layer.name]

    def _choose_kernel(self, layer):
        if self._modes.get(layer.name, "float") == "float":
            return None
        if any(o not in self._params for o in layer.outputs):
            return None
        roles = self._roles.get(layer.name) or rules.input_roles(layer, self.model.graph.constants)
        if any(n and r != "raw" and n not in self._params for n, r in zip(layer.inputs, roles)):
            return None
        return kernel_for(self.scheme, layer)

    # --- running ---------------------------------------------------------------------------
    def run(self, feeds: dict, backend: str = "cpu", record: bool = False):
        """Run as the integer device would; outputs (or a Recording) as dequantized floats."""
        if backend != "cpu":
            raise BackendUnavailable(
                f"Quantized models run on backend='cpu' in this version. Received {backend!r}.")
        arrays = self.model.check_feeds(feeds)
        plan = self.model.plan({n: a.shape for n, a in arrays.items()})
        return _Execution(self, plan, arrays, record).run()

    # --- persistence -----------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "format": "lwnn.quantized/1",
            "model": self.model.name,
            "config": self.config,
            "layers": self._modes,
            "params": {n: _params_to_dict(p) for n, p in self._params.items()},
        }

    def save(self, path) -> None:
        """Write the plan and every tensor's parameters as JSON (reproducible without calibrating)."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=1, sort_keys=True))

    @classmethod
    def load(cls, path, model) -> QuantizedModel:
        """Rebuild a saved quantization for ``model`` (the same float model)."""
        data = json.loads(Path(path).read_text())
        if data.get("format") != "lwnn.quantized/1":
            raise CalibrationError(f"{str(path)!r} is not an lwnn quantization file.")
        names = {layer.name for layer in model.layers}
        missing = sorted(set(data["layers"]) - names)
        if missing:
            raise CalibrationError(f"{str(path)!r} names layers this model lacks: {missing[:5]}.")
        params = {n: _params_from_dict(d) for n, d in data["params"].items()}
        config = data["config"]
        return cls(model, config["scheme"], params, data["layers"], config)

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


class _Execution:
    """One run of a quantized model over a plan's steps (the unfused layers)."""

    def __init__(self, qm: QuantizedModel, plan, feeds: dict, record: bool):
        self.qm, self.plan, self.record = qm, plan, record
        self.floats: dict[str, np.ndarray] = dict(plan.constants)
        self.floats.update(feeds)
        self.raws: dict[str, np.ndarray] = dict(qm._raw_constants)
        self.executed_by = {layer.name: FOLDED for layer in plan.folded}
        self.consumers_integer = self._integer_consumers()

    def _integer_consumers(self) -> set[str]:
        names = set()
        for layer in self.plan.steps:
            if self.qm._integer_kernel(layer) is not None:
                names.update(n for n in layer.inputs if n)
        return names

    def _raw(self, name: str) -> np.ndarray:
        if name not in self.raws:  # a float tensor entering an integer layer: quantize it
            self.raws[name] = self.qm._params[name].quantize(self.floats[name])
        return self.raws[name]

    def _float(self, name: str) -> np.ndarray:
        if name not in self.floats:
            self.floats[name] = self.qm._params[name].dequantize(self.raws[name])
        return self.floats[name]

    def run(self):
        qm = self.qm
        overflow, seconds = {}, {}
        for layer in self.plan.steps:
            kernel = qm._integer_kernel(layer)
            start = time.perf_counter()
            try:
                if kernel is not None:
                    overflow[layer.name] = self._run_integer(layer, kernel)
                    self.executed_by[layer.name] = f"cpu/{qm.scheme}"
                else:
                    self._run_float(layer)
                    self.executed_by[layer.name] = "cpu/float"
            except LwnnError as err:
                raise type(err)(f"Layer {layer.name!r} ({layer.op_type}): {err}") from None
            seconds[layer.name] = time.perf_counter() - start
        overflowed = {k: v for k, v in overflow.items() if v}
        for name, count in overflowed.items():
            qm.overflow[name] = qm.overflow.get(name, 0) + count
        if overflowed:
            worst = ", ".join(f"{n!r}: {c}" for n, c in sorted(overflowed.items(), key=lambda kv: -kv[1])[:3])
            warnings.warn(
                f"int32 accumulator overflow in {len(overflowed)} layer(s) ({worst}); the device would "
                "wrap these values. See q.overflow; for q16 try q16_headroom='lwnn'.",
                stacklevel=3,
            )
        outputs = {n: self._float(n) for n in self.plan.outputs}
        if not self.record:
            return outputs
        qm._last_raw = {n: v for n, v in self.raws.items() if n not in qm._raw_constants}
        folded = {n for layer in self.plan.folded for n in layer.outputs}
        tensors = {n: self._float(n) for n in list(self.floats) + list(self.raws)
                   if n not in self.plan.constants or n in folded}
        return Recording(tensors, self.executed_by, self.plan.outputs, seconds)

    def _run_integer(self, layer, kernel) -> int:
        roles = self.qm._roles.get(layer.name) or rules.input_roles(layer, self.qm.model.graph.constants)
        inputs, params = [], []
        for name, role in zip(layer.inputs, roles):
            if not name:
                inputs.append(None)
                params.append(None)
            elif role == "raw":
                inputs.append(self.floats[name])
                params.append(None)
            else:
                inputs.append(self._raw(name))
                params.append(self.qm._params[name])
        out_params = [self.qm._params[o] for o in layer.outputs]
        bits = 16 if self.qm.scheme == "q16" else 8
        cache = self.qm._layer_cache.setdefault(layer.name, {})
        call = IntCall(layer, inputs, params, out_params, bits, roles=list(roles), cache=cache)
        outs = kernel(call)
        outs = list(outs) if isinstance(outs, tuple | list) else [outs]
        for name, value, p in zip(layer.outputs, outs, out_params):
            if value.dtype != p.dtype:
                raise LwnnError(f"integer kernel returned {value.dtype} for {name!r}; expected {p.dtype}.")
            self.raws[name] = value
            self.floats.pop(name, None)
        return call.overflow

    def _run_float(self, layer) -> None:
        args = [self._float(n) if n else None for n in layer.inputs]
        outs = run_cpu_kernel(layer, args)
        for name, value in zip(layer.outputs, outs):
            if name in self.consumers_integer and name in self.qm._params:
                # Fallback edge: the integer layer downstream reads the re-quantized value.
                self.raws[name] = self.qm._params[name].quantize(value)
                self.floats[name] = self.qm._params[name].dequantize(self.raws[name])
            else:
                self.floats[name] = value
