"""One run of a ``QuantizedModel``: cumulative (the whole integer network, as the device runs it)
or isolated (every layer fed the float reference's inputs, quantized, so its error is its own).

Integer tensors are kept per scheme: ``raws[(name, scheme)]``. A layer reading a tensor held
under another scheme (or produced in float) gets it converted at the boundary: dequantized with
the holder's parameters, quantized with the reader scheme's parameters for that tensor.
"""

from __future__ import annotations

import time
import warnings

import numpy as np

from lwnn.backends.cpu import run_cpu_kernel
from lwnn.backends.cpu_int import IntCall
from lwnn.engine import FOLDED, Recording
from lwnn.errors import LwnnError
from lwnn.numerics.params import SCHEME_BITS


class Execution:
    """Runs a plan's steps (folded chains merged as the quantized model was calibrated)."""

    def __init__(self, qm, plan, feeds: dict, record: bool, reference=None, backend: str = "cpu"):
        self.qm, self.plan, self.record, self.backend = qm, plan, record, backend
        self.reference = reference
        cached = qm._plan_cache.get(id(plan))
        if cached is None or cached[0] is not plan:  # what a plan implies, worked out once
            self.steps = qm.qgraph.steps(plan.steps)
            constants = {**qm.constants, **plan.constants}  # folded weights and biases too
            cached = qm._plan_cache[id(plan)] = (plan, self.steps, constants, self._integer_readers(),
                                                 self._last_uses())
        _, self.steps, constants, self.readers, self.last_uses = cached
        self.floats: dict[str, np.ndarray] = dict(constants)
        self.floats.update(feeds)
        self.raws: dict[tuple[str, str], np.ndarray] = dict(qm._raw_constants)
        self.holder: dict[str, str] = {}  # tensor -> scheme its producer wrote it in
        self.executed_by = {layer.name: FOLDED for layer in plan.folded}
        self.isolated_out: dict[str, np.ndarray] = {}

    def _integer_readers(self) -> dict[str, str]:
        """Tensor -> the scheme of its first integer reader (fallback edges re-quantize there)."""
        readers: dict[str, str] = {}
        for layer in self.steps:
            scheme = self.qm.layer_scheme(layer)
            if scheme is not None:
                for n in layer.inputs:
                    if n:
                        readers.setdefault(n, scheme)
        return readers

    def _last_uses(self) -> dict[int, list[str]]:
        """Step index -> activations no later step reads (never outputs or constants)."""
        last: dict[str, int] = {}
        for i, layer in enumerate(self.steps):
            for n in layer.inputs:
                if n:
                    last[n] = i
        keep = set(self.plan.outputs) | set(self.plan.constants) | set(self.qm.constants)
        out: dict[int, list[str]] = {}
        for n, i in last.items():
            if n not in keep:
                out.setdefault(i, []).append(n)
        return out

    # --- tensors ---------------------------------------------------------------------------
    def _raw(self, name: str, scheme: str) -> np.ndarray:
        key = (name, scheme)
        if key not in self.raws:
            held = self.holder.get(name)
            if held is not None and held != scheme:  # a scheme boundary: via the real value
                value = self.qm._params[held][name].dequantize(self.raws[(name, held)])
            else:
                value = self._input_float(name)
            self.raws[key] = self.qm._params[scheme][name].quantize(value)
        return self.raws[key]

    def _input_float(self, name: str) -> np.ndarray:
        if self.reference is not None and name not in self.plan.constants and name not in self.qm.constants:
            try:
                return self.reference[name]
            except KeyError:
                raise LwnnError(f"The reference recording has no tensor {name!r}: pass the float "
                                "model's m.run(feeds, record=True) on the same feeds.") from None
        return self._float(name)

    def _float(self, name: str) -> np.ndarray:
        if name not in self.floats:
            held = self.holder[name]
            self.floats[name] = self.qm._params[held][name].dequantize(self.raws[(name, held)])
        return self.floats[name]

    # --- running ---------------------------------------------------------------------------
    def run(self):
        qm = self.qm
        overflow, seconds = {}, {}
        free_after = self.last_uses if not self.record else {}
        for index, layer in enumerate(self.steps):
            kernel = qm.integer_kernel(layer)
            start = time.perf_counter()
            try:
                if kernel is not None:
                    device = qm.device_kernel(layer) if self.backend == "opencl" else None
                    overflow[layer.name] = self._run_integer(layer, device or kernel, device is not None)
                    runtime = f"{'opencl' if device and self._ran_on_device(layer) else 'cpu'}/" \
                              f"{qm.layer_scheme(layer)}"
                else:
                    self._run_float(layer)
                    runtime = "cpu/float"
            except LwnnError as err:
                raise type(err)(f"Layer {layer.name!r} ({layer.op_type}): {err}") from None
            members = qm.qgraph.members.get(layer.name, (layer.name,))
            for member in members:
                self.executed_by[member] = runtime
            seconds[members[0]] = time.perf_counter() - start
            for name in free_after.get(index, ()):  # unrecorded runs keep only live tensors
                self.floats.pop(name, None)
                for scheme in qm.schemes:
                    self.raws.pop((name, scheme), None)
        if self.reference is not None:
            return self._isolated_recording(seconds)
        self._report_overflow(overflow)
        outputs = {n: self._float(n) for n in self.plan.outputs}
        if not self.record:
            return outputs
        qm._last_raw = {k: v for k, v in self.raws.items() if k not in qm._raw_constants}
        names = [n for n in self.floats if n not in qm.constants] + [n for n, _ in self.raws]
        return Recording(self._recorded(names, self._float), self.executed_by, self.plan.outputs, seconds)

    def _recorded(self, names, value) -> dict[str, np.ndarray]:
        folded = {n for layer in self.plan.folded for n in layer.outputs}
        keep = {}
        for n in names:
            if n not in keep and (n not in self.plan.constants or n in folded) and n not in self.qm.constants:
                keep[n] = value(n)
        return keep

    def _isolated_recording(self, seconds) -> Recording:
        """Layer outputs from their isolated runs; model inputs as quantized for their reader."""
        tensors = {}
        for name in self.plan.shapes:
            if name in self.isolated_out:
                tensors[name] = self.isolated_out[name]
        for name in self.model_inputs():
            scheme = self.readers.get(name)
            ref = self.floats[name]
            tensors[name] = ref if scheme is None else \
                self.qm._params[scheme][name].dequantize(self.qm._params[scheme][name].quantize(ref))
        folded = {n for layer in self.plan.folded for n in layer.outputs}
        tensors.update({n: self.plan.constants[n] for n in folded})
        return Recording(tensors, self.executed_by, self.plan.outputs, seconds)

    def model_inputs(self) -> list[str]:
        return [n for n in self.qm.model.inputs if n in self.floats]

    def _report_overflow(self, overflow: dict[str, int]) -> None:
        overflowed = {k: v for k, v in overflow.items() if v}
        for name, count in overflowed.items():
            self.qm.overflow[name] = self.qm.overflow.get(name, 0) + count
        if overflowed:
            worst = ", ".join(f"{n!r}: {c}" for n, c in sorted(overflowed.items(), key=lambda kv: -kv[1])[:3])
            warnings.warn(
                f"int32 accumulator overflow in {len(overflowed)} layer(s) ({worst}); the device would "
                "wrap these values. See q.overflow; for q16 try q16_headroom='lwnn'.",
                stacklevel=4,
            )

    def _ran_on_device(self, layer) -> bool:
        from lwnn.backends.opencl_int import ran_on_device

        return ran_on_device(self.qm._layer_cache[(layer.name, "opencl")])

    def _run_integer(self, layer, kernel, on_device: bool = False) -> int:
        qm = self.qm
        scheme = qm.layer_scheme(layer)
        params_of = qm._params[scheme]
        roles = qm._roles[layer.name]
        inputs, params = [], []
        for name, role in zip(layer.inputs, roles):
            if not name:
                inputs.append(None)
                params.append(None)
            elif role == "raw":
                inputs.append(self.floats[name])
                params.append(None)
            else:
                inputs.append(self._raw(name, scheme))
                params.append(params_of[name])
        out_params = [params_of[o] for o in layer.outputs]
        bits = SCHEME_BITS[scheme]
        # The OpenCL kernels keep their own memo (device buffers, built programs).
        cache = qm._layer_cache.setdefault((layer.name, "opencl") if on_device else layer.name, {})
        call = IntCall(layer, inputs, params, out_params, bits, roles=list(roles), cache=cache)
        outs = kernel(call)
        outs = list(outs) if isinstance(outs, tuple | list) else [outs]
        for name, value, p in zip(layer.outputs, outs, out_params):
            if value.dtype != p.dtype:
                raise LwnnError(f"integer kernel returned {value.dtype} for {name!r}; expected {p.dtype}.")
            if self.reference is not None:
                self.isolated_out[name] = p.dequantize(value)
                continue
            self.raws[(name, scheme)] = value
            self.holder[name] = scheme
            self.floats.pop(name, None)
        return call.overflow

    def _run_float(self, layer) -> None:
        args = [(self._input_float(n) if self.reference is not None else self._float(n)) if n else None
                for n in layer.inputs]
        if hasattr(layer.op, "evaluate"):  # merged layers that exist only in quantized models
            outs = [layer.op.evaluate(*args)]
        else:
            outs = run_cpu_kernel(layer, args)
        for name, value in zip(layer.outputs, outs):
            scheme = self.readers.get(name)
            if scheme is not None and name in self.qm._params[scheme]:
                # Fallback edge: the integer layer downstream reads the re-quantized value.
                raw = self.qm._params[scheme][name].quantize(value)
                value = self.qm._params[scheme][name].dequantize(raw)
                if self.reference is None:
                    self.raws[(name, scheme)] = raw
            if self.reference is not None:
                self.isolated_out[name] = value
            else:
                self.floats[name] = value
