"""Runtimes a model can run on, by the name users pass as ``backend=``.

A runtime executes one layer at a time (``run_layer``) and says which layers it supports.
The coverage table (``lwnn.coverage``) is generated from these objects.
"""

from __future__ import annotations

from lwnn.errors import BackendUnavailable
from lwnn.graph import Layer
from lwnn.numerics.params import SCHEMES


class CpuFloat:
    """The NumPy float reference runtime."""

    name = "cpu/float"
    backend = "cpu"
    scheme = "float"

    def __init__(self):
        from lwnn.backends.cpu import KERNELS

        self.kernels = KERNELS

    def supports(self, layer: Layer) -> bool:
        return layer.op_type in self.kernels

    def run_layer(self, layer: Layer, args: list):
        from lwnn.backends.cpu import run_cpu_kernel

        return run_cpu_kernel(layer, args)


class IntegerRuntime:
    """The integer runtime of one scheme (s8, q8, q16) on one backend; quantized models run on it
    (``q.run(feeds, backend=...)``). It runs a layer when its kernel table has one."""

    def __init__(self, backend: str, scheme: str):
        self.backend, self.scheme, self.name = backend, scheme, f"{backend}/{scheme}"

    def supports(self, layer: Layer) -> bool:
        if self.backend == "opencl":
            import lwnn.backends.opencl_int  # noqa: F401  (registers the kernels)
            from lwnn.backends.opencl_int.registry import kernel_for
        else:
            from lwnn.backends.cpu_int import kernel_for
        return kernel_for(self.scheme, layer) is not None


def _opencl():
    """The OpenCL float runtime; the device opens on first use (BackendUnavailable without one)."""
    try:
        from lwnn.backends.opencl import OpenCLFloat
    except ImportError as err:  # pragma: no cover - pyopencl is a dependency
        from lwnn.backends.opencl.context import FIX

        raise BackendUnavailable(f"The OpenCL backend needs pyopencl ({err}). {FIX}") from None
    return OpenCLFloat()


_FACTORIES = {"cpu": CpuFloat, "opencl": _opencl}
_instances: dict[str, object] = {}


def runtimes() -> list:
    """Every runtime lwnn has, per backend: float, then each integer scheme (the coverage table's
    columns, in order)."""
    return [runtime for backend in _FACTORIES
            for runtime in (get_runtime(backend), *(IntegerRuntime(backend, s) for s in SCHEMES))]


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


def get_runtime(backend: str):
    """The float runtime registered as ``backend``; BackendUnavailable if there is none."""
    if backend not in _FACTORIES:
        raise BackendUnavailable(
            f"Unknown backend {backend!r}. Available backends: {', '.join(available())}.")
    if backend not in _instances:
        _instances[backend] = _FACTORIES[backend]()
    return _instances[backend]
