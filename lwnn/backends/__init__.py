"""Runtimes a model can run on, by the name users pass as ``backend=``.

A runtime executes one layer at a time (``run_layer``), says which layers it supports, and moves
tensors into and out of its memory (the protocol is ``lwnn.backends.runtime.Runtime``). The
executor (``lwnn.executor``) drives them; the coverage table (``lwnn.coverage``) is generated from
them.
"""

from __future__ import annotations

import numpy as np

from lwnn.backends.cpu import KERNELS, run_cpu_kernel
from lwnn.backends.cpu_int.registry import IntBinding, IntCall
from lwnn.backends.runtime import HostMemory, LayerResult, Runtime, Transfer
from lwnn.errors import BackendUnavailable, KernelError
from lwnn.graph import Layer
from lwnn.numerics.params import SCHEME_BITS, SCHEMES

__all__ = ["CpuFloat", "IntegerRuntime", "Runtime", "available", "get_runtime", "runtimes"]


class CpuFloat(HostMemory):
    """The NumPy float reference runtime."""

    name = "cpu/float"
    backend = "cpu"
    scheme = "float"

    def __init__(self):
        self.kernels = KERNELS

    def supports(self, layer: Layer) -> bool:
        return layer.op_type in self.kernels

    def run_layer(self, layer: Layer, args: list, binding=None) -> LayerResult:
        return LayerResult(run_cpu_kernel(layer, args), self.name)


class IntegerRuntime:
    """The integer runtime of one scheme (s8, q8, q16) on one backend; quantized models run on it
    (``q.run(feeds, backend=...)``). It runs a layer when its kernel table has one; the layer's
    parameters come as an ``IntBinding`` (``bind``), fixed for the life of the quantized model."""

    def __init__(self, backend: str, scheme: str):
        self.backend, self.scheme, self.name = backend, scheme, f"{backend}/{scheme}"
        self.bits = SCHEME_BITS[scheme]
        self._memory = HostMemory() if backend == "cpu" else None

    def kernel_for(self, layer: Layer):
        """The kernel that runs ``layer``, or None."""
        if self.backend == "opencl":
            import lwnn.backends.opencl_int  # noqa: F401  (registers the kernels)
            from lwnn.backends.opencl_int.registry import kernel_for
        else:
            from lwnn.backends.cpu_int import kernel_for
        return kernel_for(self.scheme, layer)

    def supports(self, layer: Layer) -> bool:
        return self.kernel_for(layer) is not None

    def bind(self, layer: Layer, params: list, out: list, roles: tuple) -> IntBinding:
        """What ``run_layer`` needs beyond the inputs: their parameters and roles, the outputs'
        parameters, the kernel, and the kernel's memo of derived constants."""
        return IntBinding(self.kernel_for(layer), list(params), list(out), tuple(roles), {})

    def run_layer(self, layer: Layer, args: list, binding: IntBinding) -> LayerResult:
        call = IntCall(layer, args, binding.params, binding.out, self.bits, list(binding.roles),
                       cache=binding.cache)
        outs = binding.kernel(call)
        outs = list(outs) if isinstance(outs, tuple | list) else [outs]
        for name, value, p in zip(layer.outputs, outs, binding.out):
            if np.dtype(value.dtype) != np.dtype(p.dtype):
                raise KernelError(f"The {self.name} kernel returned {np.dtype(value.dtype)} for "
                                  f"{name!r}; its parameters say {np.dtype(p.dtype)}.")
        if self.backend == "cpu":
            return LayerResult(outs, self.name, call.overflow)
        from lwnn.backends.opencl_int import ran_on_device

        if ran_on_device(call):
            return LayerResult(outs, self.name, call.overflow)
        # The device kernel handed this configuration to the CPU integer kernel: it downloaded
        # its device inputs.
        memory = self.memory
        copies = tuple(Transfer(n, "to_host", v.nbytes, layer.name, "fallback")
                       for n, v in zip(layer.inputs, args) if n and memory.holds(v))
        return LayerResult(outs, f"cpu/{self.scheme}", call.overflow, copies)

    @property
    def memory(self):
        """Where this runtime's tensors live: the host, or the OpenCL float runtime's device."""
        if self._memory is None:
            self._memory = get_runtime(self.backend)
        return self._memory

    def accepts(self, array: np.ndarray) -> bool:
        return np.dtype(array.dtype) in _INTEGER_CODES

    def holds(self, value) -> bool:
        return self.memory.holds(value)

    def upload(self, array: np.ndarray, name: str):
        return self.memory.upload(array, name)

    def download(self, value) -> np.ndarray:
        return self.memory.download(value)

    def release(self, value) -> None:
        self.memory.release(value)

    def finish(self) -> None:
        self.memory.finish()


_INTEGER_CODES = (np.dtype(np.int8), np.dtype(np.int16), np.dtype(np.int32))


def _opencl():
    """The OpenCL float runtime; the device opens on first use (BackendUnavailable without one)."""
    try:
        from lwnn.backends.opencl import OpenCLFloat
    except ImportError as err:  # pragma: no cover - pyopencl is a dependency
        from lwnn.backends.opencl.context import FIX

        raise BackendUnavailable(f"The OpenCL backend needs pyopencl ({err}). {FIX}") from None
    return OpenCLFloat()


_FACTORIES = {"cpu": CpuFloat, "opencl": _opencl}
_instances: dict[tuple[str, str], object] = {}  # (backend, scheme) -> runtime


def runtimes() -> list:
    """Every runtime lwnn has, per backend: float, then each integer scheme (the coverage table's
    columns, in order)."""
    return [get_runtime(backend, scheme) for backend in _FACTORIES for scheme in ("float", *SCHEMES)]


# Columns of the coverage table, "<backend> <scheme>", generated from the runtimes above.
RUNTIME_COLUMNS = tuple(f"{backend} {scheme}" for backend in _FACTORIES for scheme in ("float", *SCHEMES))


def runtime_for_column(column: str):
    """The runtime behind a coverage column (``RUNTIME_COLUMNS``)."""
    for runtime in runtimes():
        if f"{runtime.backend} {runtime.scheme}" == column:
            return runtime
    raise KeyError(f"No runtime for coverage column {column!r}. Columns: {', '.join(RUNTIME_COLUMNS)}.")


def available() -> list[str]:
    return sorted(_FACTORIES)


def get_runtime(backend: str, scheme: str = "float"):
    """The runtime of ``scheme`` ("float", "s8", "q8", "q16") registered on ``backend``;
    BackendUnavailable if there is none."""
    if backend not in _FACTORIES:
        raise BackendUnavailable(
            f"Unknown backend {backend!r}. Available backends: {', '.join(available())}.")
    key = (backend, scheme)
    if key not in _instances:
        if scheme == "float":
            _instances[key] = _FACTORIES[backend]()
        elif scheme in SCHEMES:
            _instances[key] = IntegerRuntime(backend, scheme)
        else:
            raise BackendUnavailable(
                f"Unknown scheme {scheme!r}. Expected float or one of {', '.join(SCHEMES)}.")
    return _instances[key]
