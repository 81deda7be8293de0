"""The OpenCL float runtime (pyopencl): every layer with a kernel in ``layers.LAYERS`` runs on the
device and its tensors stay there between layers; the executor runs the others on the CPU and
records the copies (``lwnn.executor``; docs/architecture.md, "Execution").
"""

from __future__ import annotations

import numpy as np

from lwnn.backends.opencl.context import (
    CLContext,
    CLTensor,
    DeviceMemoryError,
    choose_device,
    default_context,
    describe_devices,
)
from lwnn.backends.opencl.layers import BINARY, LAYERS, NotOnDevice
from lwnn.backends.runtime import LayerResult
from lwnn.graph import Layer

__all__ = ["OpenCLFloat", "CLTensor", "DeviceMemoryError", "NotOnDevice", "describe_devices", "choose_device"]


class OpenCLFloat:
    """Float layers on one OpenCL device. The device is opened on first use, so asking for the
    runtime (or printing the coverage table) needs no OpenCL driver."""

    name = "opencl/float"
    backend = "opencl"
    scheme = "float"

    def __init__(self, device=None):
        self._device = device
        self._ctx: CLContext | None = None
        self._tables: dict = {}
        self.last_transfers: list = []
        self.fuse = True  # element-wise epilogues in unrecorded runs (lwnn.passes.epilogues)

    @property
    def ctx(self) -> CLContext:
        if self._ctx is None:
            self._ctx = default_context() if self._device is None else CLContext(self._device)
        return self._ctx

    @property
    def device_name(self) -> str:
        return self.ctx.name

    def supports(self, layer: Layer) -> bool:
        return layer.op_type in LAYERS

    def takes_epilogue(self, layer: Layer, plan) -> bool:
        """Whether ``layer`` can run with element-wise stages fused after it on the device
        (``lwnn.passes.epilogues``): a two-input binary op, or a 1-D/2-D Conv with constant
        float32 weights and bias."""
        if layer.op_type in BINARY and layer.op_type != "PRelu":
            return len(layer.inputs) == 2
        if layer.op_type != "Conv" or len(plan.shapes[layer.inputs[0]]) not in (3, 4):
            return False
        params = [n for n in layer.inputs[1:] if n]
        return all(n in plan.constants and plan.constants[n].dtype == np.float32 for n in params)

    def run_device(self, layer: Layer, args: list, out_shapes: list[tuple]) -> list[CLTensor]:
        """Enqueue ``layer``; raises ``NotOnDevice`` (before enqueuing) when it has no kernel for
        this configuration."""
        while args and args[-1] is None:
            args = args[:-1]
        return LAYERS[layer.op_type](self, layer, args, out_shapes)

    def run_layer(self, layer: Layer, args: list, binding: list[tuple]) -> LayerResult:
        """``run_device`` for the executor; ``binding``: the output shapes."""
        return LayerResult(self.run_device(layer, args, binding), self.name)

    def accepts(self, array: np.ndarray) -> bool:
        return array.dtype == np.float32  # integer and bool tensors stay on the CPU

    def holds(self, value) -> bool:
        return isinstance(value, CLTensor)

    def upload(self, array: np.ndarray, name: str) -> CLTensor:
        return self.ctx.upload(array, name)

    def download(self, tensor: CLTensor) -> np.ndarray:
        return self.ctx.download(tensor)

    def release(self, tensor: CLTensor) -> None:
        tensor.release()

    def tables(self, key, make) -> CLTensor:
        """A small constant table (Resize indices...) computed once per key and kept on the device."""
        t = self._tables.get(key)
        if t is None:
            t = self.ctx.resident(make(), str(key[0]))
            self._tables[key] = t
        return t

    def finish(self) -> None:
        self.ctx.finish()
