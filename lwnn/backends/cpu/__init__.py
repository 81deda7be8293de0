"""NumPy CPU float backend: the reference semantics of every op (NCHW, as ONNX)."""

from lwnn.backends.cpu import conv, elementwise, pool, shape  # noqa: F401  (fill KERNELS)
from lwnn.backends.cpu.registry import KERNELS

__all__ = ["KERNELS"]
