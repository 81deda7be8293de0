"""What the executor (``lwnn.executor``) asks of a runtime, and what a runtime reports back.

A runtime runs one layer at a time on one backend ("cpu", "opencl") in one number domain
("float", or an integer scheme "s8"/"q8"/"q16"). It holds its tensors in its own memory: host
NumPy arrays for the CPU runtimes, device buffers for the OpenCL ones. The executor moves tensors
between memories with ``upload``/``download`` and records each copy as a ``Transfer``; the runtime
never copies on its own, except inside a layer it hands to the CPU (a device kernel without this
configuration), and then it says so in ``LayerResult.transfers``.

See docs/architecture.md ("Execution").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from lwnn.graph import Layer


class NotOnDevice(Exception):
    """Raised by a device runtime, before it enqueues anything, when it has no kernel for this
    configuration of a layer; the executor then runs the layer on the CPU float runtime."""


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


@dataclass
class LayerResult:
    """What running one layer produced: its outputs (in the runtime's memory), the runtime that
    actually executed it, the int32 accumulator overflows its integer kernel counted, and copies
    the runtime made itself (a device layer that handed its configuration to the CPU)."""

    outputs: list
    ran_on: str
    overflow: int = 0
    transfers: tuple[Transfer, ...] = ()


class Runtime(Protocol):
    """The executor's view of a runtime (CPU float, OpenCL float, and the integer runtimes)."""

    name: str  # "<backend>/<scheme>", as ``Recording.executed_by`` reports it
    backend: str  # "cpu" (host memory) or a device backend
    scheme: str  # "float" or an integer scheme: the domain of the tensors it reads and writes

    def supports(self, layer: Layer) -> bool:
        """Whether this runtime has a kernel for ``layer`` (the coverage table's marks)."""

    def run_layer(self, layer: Layer, args: list, binding=None) -> LayerResult:
        """Run ``layer`` on ``args`` (in this runtime's memory; None for omitted inputs).
        ``binding``: what the layer needs beyond its inputs, fixed once per plan (integer
        parameters; a device runtime's output shapes)."""

    def accepts(self, array: np.ndarray) -> bool:
        """Whether a host tensor of this dtype can be moved into this runtime's memory."""

    def holds(self, value) -> bool:
        """Whether ``value`` lives in this runtime's (device) memory."""

    def upload(self, array: np.ndarray, name: str):
        """A device copy of host ``array`` (the identity for host runtimes)."""

    def download(self, value) -> np.ndarray:
        """A host copy of ``value``."""

    def release(self, value) -> None:
        """Give ``value``'s memory back (device buffers)."""

    def finish(self) -> None:
        """Wait until everything enqueued has run (device runtimes; for per-layer timings)."""


class HostMemory:
    """The memory half of the protocol for runtimes that compute on host arrays."""

    def accepts(self, array: np.ndarray) -> bool:
        return True

    def holds(self, value) -> bool:
        return False

    def upload(self, array: np.ndarray, name: str) -> np.ndarray:
        return array

    def download(self, value) -> np.ndarray:
        return value

    def release(self, value) -> None:
        pass

    def finish(self) -> None:
        pass
