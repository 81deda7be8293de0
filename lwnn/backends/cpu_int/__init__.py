"""Integer CPU runtimes: s8 (TFLite int8) and q8/q16 (CMSIS-NN legacy Q-format) kernels.

Kernels take raw integer tensors and their quantization parameters and return raw integer
tensors, exactly what the device holds. Integer products are summed in float64 through the
float kernels where that is exact (any int8/int16 layer fits far below 2^53).
"""

from lwnn.backends.cpu_int import movement, qformat, s8  # noqa: F401  (fill INT_KERNELS)
from lwnn.backends.cpu_int.registry import INT_KERNELS, IntCall, kernel_for

__all__ = ["INT_KERNELS", "IntCall", "kernel_for"]
