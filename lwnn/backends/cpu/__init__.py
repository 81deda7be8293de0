"""NumPy CPU float backend: the reference semantics of every op (NCHW, as ONNX)."""

from lwnn.backends.cpu import (  # noqa: F401  (fill KERNELS)
    audio,
    conv,
    detection,
    elementwise,
    pool,
    recurrent,
    shape,
)
from lwnn.backends.cpu.dispatch import run_cpu_kernel
from lwnn.backends.cpu.registry import KERNELS

__all__ = ["KERNELS", "run_cpu_kernel"]
