"""The one loop that runs every model: float or quantized, on the CPU or a device.

A ``Schedule`` is a plan's layers as ``Step``s, each bound to the runtime that runs it (CPU float,
OpenCL float, or an integer runtime of one scheme on one backend) and to what that runtime needs
beyond the inputs (integer parameters, output shapes). Tensors live per *domain* — "float", or an
integer scheme's codes — and in the memory of the runtime that made them (host arrays, device
buffers). Before a step runs, the executor fetches each input in the step's domain and memory:

- a tensor held in another domain is converted by the schedule's ``convert`` (on the host): at a
  scheme boundary dequantized with its producer's parameters and quantized with the reader's;
- a host tensor a device step reads is uploaded, a device tensor a host step reads is downloaded;
  every copy is a ``Transfer`` of the run (``Recording.transfers``).

After each step, a consumer (``hook``) may look at the step's outputs before anything is freed;
recording (``record=True``) is such a consumer. Unrecorded runs free every tensor after its last
reader. See docs/architecture.md ("Execution").
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np

from lwnn.backends.runtime import LayerResult, NotOnDevice, Runtime, Transfer
from lwnn.errors import KernelError, LwnnError
from lwnn.graph import Layer

__all__ = ["FOLDED", "Recorder", "Recording", "Run", "Schedule", "Step", "Transfer", "execute"]

FOLDED = "folded"  # executed_by value of layers computed while planning
FLOAT = "float"


@dataclass(frozen=True)
class Step:
    """One layer bound to its runtime.

    ``host_inputs``: input positions passed as host float values as they are (shapes, axes, the
    constants a device kernel keeps itself). ``fallback``: the runtime that runs the layer when
    ``runtime`` refuses this configuration (``NotOnDevice``) or cannot take one of its inputs.
    ``members``: the source layers it executes (a merged layer executes several).
    ``requantize``: (output, scheme) of float outputs an integer layer reads: the value handed on
    is the output quantized for that reader and dequantized again, as the device would hold it.
    """

    layer: Layer
    runtime: Runtime
    binding: object = None
    host_inputs: frozenset = frozenset()
    fallback: Runtime | None = None
    members: tuple[str, ...] = ()
    requantize: tuple[tuple[str, str], ...] = ()
    domain: str = field(init=False)  # the runtime's scheme: the domain of what it reads and writes
    on_device: bool = field(init=False)

    def __post_init__(self):
        # Plain attributes, not properties: the loop reads them for every layer of every run.
        object.__setattr__(self, "domain", self.runtime.scheme)
        object.__setattr__(self, "on_device", self.runtime.backend != "cpu")


Convert = Callable[[str, np.ndarray, str, str], np.ndarray]  # (tensor, codes, from, to) -> codes


def _no_conversion(name: str, value, src: str, dst: str):
    raise LwnnError(f"Tensor {name!r} is held as {src} and read as {dst}; this schedule has no "
                    "conversions between domains (a float model).")


class Schedule:
    """A plan's steps on their runtimes, and what every run of them shares: the constants of each
    domain, the conversion between domains, and which tensors each step reads for the last time."""

    def __init__(self, plan, steps: list[Step], constants: dict[str, dict] | None = None,
                 convert: Convert | None = None):
        self.plan, self.steps = plan, steps
        self.constants = {FLOAT: plan.constants, **(constants or {})}
        self.convert = convert or _no_conversion
        self.device = next((s.runtime for s in steps if s.on_device), None)
        self.domains = tuple(dict.fromkeys([FLOAT, *self.constants, *(s.domain for s in steps)]))
        kept = set(plan.outputs).union(*self.constants.values())
        last: dict[str, int] = {}
        for i, step in enumerate(steps):
            for n in step.layer.inputs:
                if n:
                    last[n] = i
        self.free_after: list[tuple[str, ...]] = [() for _ in steps]
        by_step: dict[int, list[str]] = {}
        for n, i in last.items():
            if n not in kept:
                by_step.setdefault(i, []).append(n)
        for i, names in by_step.items():
            self.free_after[i] = tuple(names)
        self.folded = list(plan.folded)

    def is_constant(self, name: str) -> bool:
        return name in self.plan.constants or any(name in c for c in self.constants.values())


class _CannotTake(Exception):
    """A device step's input cannot move into its runtime's memory (an integer tensor for a
    float kernel): the step runs on its fallback."""


class Run:
    """The state of one execution: tensors per domain, who produced what, copies, timings. A hook
    reads outputs through ``real`` and ``codes``."""

    def __init__(self, schedule: Schedule, feeds: dict, reference: Mapping | None):
        self.schedule, self.reference = schedule, reference
        self.values: dict[str, dict] = {d: dict(schedule.constants.get(d, {})) for d in schedule.domains}
        self.values[FLOAT].update(feeds)
        self.feeds = list(feeds)
        self.holder: dict[str, str] = {}  # tensor -> domain its producer wrote it in (feeds: float)
        self.host_copies: dict[tuple[str, str], np.ndarray] = {}
        self.transfers: list[Transfer] = []
        self.executed_by = {layer.name: FOLDED for layer in schedule.folded}
        self.seconds: dict[str, float] = {}
        self.overflow: dict[str, int] = {}
        self.outputs: dict[str, np.ndarray] = {}  # filled when the run is done

    # --- moving and converting tensors --------------------------------------------------------
    def _reason(self, name: str) -> str:
        return "output" if name in self.schedule.plan.outputs else "record"

    def host(self, name: str, domain: str, layer: str = "", reason: str | None = None) -> np.ndarray:
        """Tensor ``name`` of ``domain`` as a host array (downloaded once, and recorded)."""
        value = self.values[domain][name]
        device = self.schedule.device
        if device is None or not device.holds(value):
            return value
        key = (name, domain)
        copy = self.host_copies.get(key)
        if copy is None:
            copy = self.host_copies[key] = device.download(value)
            reason = reason or self._reason(name)
            self.transfers.append(Transfer(name, "to_host", value.nbytes, layer, reason))
        return copy

    def locate(self, name: str, domain: str, layer: str):
        """Tensor ``name`` in ``domain``, converted there if it is held in another, wherever it is."""
        values = self.values[domain]
        value = values.get(name)
        if value is None:
            value = values[name] = self._convert(name, domain, layer)
        return value

    def on_host(self, name: str, domain: str, layer: str):
        value = self.locate(name, domain, layer)
        device = self.schedule.device
        if device is not None and device.holds(value):
            return self.host(name, domain, layer, "fallback")
        return value

    def _device_args(self, step: Step) -> list:
        """A device step's arguments: host tensors uploaded, after checking that all can be."""
        layer, domain, runtime = step.layer, step.domain, step.runtime
        constants = self.schedule.constants.get(domain, ())
        args, uploads = [], []
        for i, name in enumerate(layer.inputs):
            if not name:
                args.append(None)
            elif i in step.host_inputs:
                args.append(self.on_host(name, FLOAT, layer.name))
            else:
                value = self.locate(name, domain, layer.name)
                if name not in constants and not runtime.holds(value):
                    if not runtime.accepts(value):
                        raise _CannotTake
                    uploads.append((i, name))
                args.append(value)  # constants stay with the kernel, which keeps its own device copy
        values = self.values[domain]
        for i, name in uploads:
            host = args[i]
            self.host_copies[(name, domain)] = host
            args[i] = values[name] = runtime.upload(host, name)
            self.transfers.append(Transfer(name, "to_device", host.nbytes, layer.name, "input"))
        return args

    def _convert(self, name: str, domain: str, layer: str) -> np.ndarray:
        if self.reference is not None and not self.schedule.is_constant(name):
            source, value = FLOAT, self._reference(name)
        else:
            source = self.holder.get(name, FLOAT)
            if source == domain or name not in self.values[source]:
                raise LwnnError(f"It reads tensor {name!r}, which no earlier layer produced and no "
                                "feed or constant provides.")
            value = self.host(name, source, layer, "fallback")
        if source == domain:
            return value
        return self.schedule.convert(name, value, source, domain)

    def _reference(self, name: str) -> np.ndarray:
        try:
            return self.reference[name]
        except KeyError:
            raise LwnnError(f"The reference recording has no tensor {name!r}: pass the float "
                            "model's m.run(feeds, record=True) on the same feeds.") from None

    def real(self, name: str) -> np.ndarray:
        """Tensor ``name`` as a float host array (dequantized with its producer's parameters)."""
        floats = self.values[FLOAT]
        if name not in floats:
            domain = self.holder.get(name, FLOAT)
            codes = self.host(name, domain)
            floats[name] = codes if domain == FLOAT else self.schedule.convert(name, codes, domain, FLOAT)
        return self.host(name, FLOAT)

    def codes(self, name: str, domain: str) -> np.ndarray:
        """Tensor ``name`` as ``domain`` holds it (integer codes), on the host."""
        return self.host(name, domain)

    def drop(self, name: str) -> None:
        """Forget every copy of tensor ``name``, giving device memory back."""
        device = self.schedule.device
        for domain in self.schedule.domains:
            value = self.values[domain].pop(name, None)
            if value is not None and device is not None and device.holds(value):
                device.release(value)
            self.host_copies.pop((name, domain), None)

    def release_all(self) -> None:
        device = self.schedule.device
        if device is None:
            return
        for values in self.values.values():
            for value in values.values():
                if device.holds(value):
                    device.release(value)
            values.clear()
        self.host_copies.clear()

    # --- running a step -----------------------------------------------------------------------
    def run_step(self, step: Step) -> LayerResult:
        layer = step.layer
        if step.on_device:
            try:
                return step.runtime.run_layer(layer, self._device_args(step), step.binding)
            except (NotOnDevice, _CannotTake):
                if step.fallback is None:
                    raise
            args = [self.on_host(n, FLOAT, layer.name) if n else None for n in layer.inputs]
            return step.fallback.run_layer(layer, args, None)
        if self.schedule.device is None and not step.host_inputs:
            values = self.values[step.domain]  # the common case, kept short: all on the host
            try:
                args = [values[n] if n else None for n in layer.inputs]
            except KeyError:
                args = None
            if args is not None:
                return step.runtime.run_layer(layer, args, step.binding)
        args = [None if not n else
                self.on_host(n, FLOAT if i in step.host_inputs else step.domain, layer.name)
                for i, n in enumerate(layer.inputs)]
        return step.runtime.run_layer(layer, args, step.binding)

    def store(self, step: Step, result: LayerResult) -> None:
        plan = self.schedule.plan
        layer = step.layer
        fell_back = step.fallback is not None and result.ran_on != step.runtime.name
        domain = step.fallback.scheme if fell_back else step.domain
        for name, value in zip(layer.outputs, result.outputs):
            if tuple(value.shape) != plan.shapes[name]:
                raise KernelError(
                    f"On {result.ran_on} it produced {name!r} with shape {tuple(value.shape)}; "
                    f"shape inference expects {plan.shapes[name]}.")
            if name in self.holder:  # written again (not in SSA graphs): forget the old copies
                self.drop(name)
            self.values[domain][name] = value
            self.holder[name] = domain
        for name, scheme in step.requantize:
            codes = self.schedule.convert(name, self.values[FLOAT][name], FLOAT, scheme)
            self.values[scheme][name] = codes
            self.values[FLOAT][name] = self.schedule.convert(name, codes, scheme, FLOAT)
        self.transfers.extend(result.transfers)


def execute(schedule: Schedule, feeds: dict[str, np.ndarray], *, record: bool = False,
            hook=None, reference: Mapping | None = None) -> Run:
    """Run ``schedule`` on ``feeds`` and return the finished ``Run``: ``outputs`` (float host
    arrays), ``executed_by``, ``seconds``, ``transfers``, ``overflow``. Device memory is given
    back before it returns.

    ``record``: keep every tensor (nothing is freed; device steps are waited for, so that
    ``seconds`` are per layer). ``hook``: a consumer with ``layer_done(step, run)``, called after
    each step before its inputs are freed (see ``Recorder``). ``reference``: isolated execution —
    every step reads the ``reference`` float tensors (converted to its domain) instead of what the
    steps before it produced; outputs reach only the hook.
    """
    run = Run(schedule, feeds, reference)
    if hook is not None:
        hook.started(run)
    isolated = reference is not None
    try:
        for i, step in enumerate(schedule.steps):
            layer = step.layer
            start = time.perf_counter()
            try:
                result = run.run_step(step)
                if record and step.on_device:
                    step.runtime.finish()
                run.store(step, result)
            except LwnnError as err:
                raise type(err)(f"Layer {layer.name!r} ({layer.op_type}): {err}") from None
            members = step.members or (layer.name,)
            run.seconds[members[0]] = time.perf_counter() - start
            for member in members:
                run.executed_by[member] = result.ran_on
            if result.overflow:
                run.overflow[layer.name] = run.overflow.get(layer.name, 0) + result.overflow
            if hook is not None:
                hook.layer_done(step, run)
            if isolated:
                for name in layer.outputs:
                    run.drop(name)
                    run.holder.pop(name, None)
            elif not record:
                for name in schedule.free_after[i]:
                    run.drop(name)
        if hook is not None:
            hook.finished(run)
        if not isolated:  # (isolated outputs went to the hook)
            run.outputs = {name: run.real(name) for name in schedule.plan.outputs}
        return run
    finally:
        run.release_all()  # device memory back to the pool; what callers read is on the host


class Recorder:
    """The consumer behind ``record=True``: the feeds, the plan's folded tensors, every layer
    output as a float host array (dequantized for integer layers) and the integer codes of every
    tensor an integer domain held (``codes``). A recorded run frees nothing, so the copies from a
    device are made when the run is done: a device tensor a CPU layer read shows in ``transfers``
    as that layer's fallback copy, as in an unrecorded run. Isolated runs drop each output after
    its layer, so it is taken then."""

    def __init__(self):
        self.tensors: dict[str, np.ndarray] = {}
        self.codes: dict[tuple[str, str], np.ndarray] = {}
        self._produced: list[str] = []

    def started(self, run: Run) -> None:
        plan = run.schedule.plan
        for layer in run.schedule.folded:
            for name in layer.outputs:
                self.tensors[name] = plan.constants[name]
        for name in run.feeds:
            self.tensors[name] = run.real(name)

    def layer_done(self, step: Step, run: Run) -> None:
        if run.reference is not None:
            for name in step.layer.outputs:
                self.tensors[name] = run.real(name)
        else:
            self._produced.extend(step.layer.outputs)

    def finished(self, run: Run) -> None:
        for name in self._produced:
            self.tensors[name] = run.real(name)
        for domain, values in run.values.items():
            if domain == FLOAT:
                continue
            constants = run.schedule.constants.get(domain, {})
            for name in values:
                if name not in constants:
                    self.codes[(name, domain)] = run.codes(name, domain)

    def recording(self, run: Run) -> Recording:
        return Recording(self.tensors, run.executed_by, run.schedule.plan.outputs, run.seconds,
                         run.transfers)


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

