"""A weighted layer with its ReLU/Clip fused (``lwnn.quant.activations``), for every scheme: the
inner layer's integer kernel requantizes to the activation's output parameters, then the codes
are clamped to the activation's bounds in that format (s8: TFLite's ``CalculateActivationRange``
bounds, ReLU at the zero point; q8/q16: the bounds quantized in the output Q, ReLU at 0)."""

from __future__ import annotations

import numpy as np

from lwnn.backends.cpu_int.registry import FAMILIES, INT_KERNELS, IntCall, kernel_for
from lwnn.numerics.params import AffineParams


def _clamp_codes(call: IntCall) -> tuple[int, int]:
    out, op = call.out[0], call.op
    if isinstance(out, AffineParams):  # TFLite's rounding of the bounds (float32 roundf)
        return out.activation_range(op.lo, op.hi)
    lo = out.qmin if op.lo == float("-inf") else int(out.quantize(np.float64(op.lo)))
    hi = out.qmax if op.hi == float("inf") else int(out.quantize(np.float64(op.hi)))
    return max(lo, out.qmin), min(hi, out.qmax)


def _kernel(scheme: str):
    def fused_activation(call: IntCall):
        inner = IntCall(call.op.inner, call.inputs, call.params, call.out, call.bits, call.roles,
                        cache=call.cache)
        y = kernel_for(scheme, call.op.inner)(inner)
        call.overflow += inner.overflow
        lo, hi = call.memo("activation clamp", lambda: _clamp_codes(call))
        return np.clip(y, lo, hi, out=y)

    fused_activation.supports = lambda layer: kernel_for(scheme, layer.op.inner) is not None
    return fused_activation


# kernel_for looks kernels up by scheme family: s8, or qformat for q8 and q16.
for _scheme, _family in FAMILIES.items():
    INT_KERNELS[_family].setdefault("FusedActivation", _kernel(_scheme))
