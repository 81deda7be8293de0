"""The CPU float backend's dispatch: one layer through its NumPy kernel.

Everything that computes a layer in float on the host goes through here: the engine, constant
folding at import and planning, the float fallbacks and fused pseudo-layers of quantized models.
"""

from __future__ import annotations

import numpy as np

from lwnn.backends.cpu.registry import KERNELS
from lwnn.errors import UnsupportedOpError
from lwnn.graph import Layer


def run_cpu_kernel(layer: Layer, args: list) -> list[np.ndarray]:
    """Run one layer with the CPU float kernels; returns its outputs as a list. A merged layer
    (``lwnn.ops.base.MergedOp``, made by ``lwnn.passes``) is computed by its op's ``evaluate``,
    from its members' kernels."""
    fn = KERNELS.get(layer.op_type)
    while args and args[-1] is None:
        args = args[:-1]  # trailing omitted optional inputs
    if fn is None:
        evaluate = getattr(layer.op, "evaluate", None)
        if evaluate is None:
            raise UnsupportedOpError(f"Layer {layer.name!r}: op {layer.op_type} has no CPU float kernel.")
        return [evaluate(*args)]
    out = fn(layer.op, *args)
    return list(out) if isinstance(out, tuple | list) else [out]
