"""A weighted layer with its ReLU/Clip fused (``lwnn.passes.activations``), for every scheme: the
inner layer's integer kernel requantizes to the activation's output parameters, then the codes
are clamped to the activation's bounds in that format (s8: TFLite's ``CalculateActivationRange``
bounds, ReLU at the zero point; q8/q16: the bounds quantized in the output Q, ReLU at 0)."""

from __future__ import annotations

import numpy as np

from lwnn.backends.cpu_int.registry import INT_KERNELS, IntCall, family_kernel


def _clamp_codes(call: IntCall) -> tuple[int, int]:
    out, op = call.out[0], call.op
    if call.affine:  # TFLite's rounding of the bounds (float32 roundf)
        return out.activation_range(op.lo, op.hi)
    lo = out.qmin if op.lo == float("-inf") else int(out.quantize(np.float64(op.lo)))
    hi = out.qmax if op.hi == float("inf") else int(out.quantize(np.float64(op.hi)))
    return max(lo, out.qmin), min(hi, out.qmax)


def _kernel(family: str):
    def fused_activation(call: IntCall):
        inner = IntCall(call.op.inner, call.inputs, call.params, call.out, call.bits, call.roles,
                        cache=call.cache)
        y = family_kernel(family, call.op.inner)(inner)
        call.overflow += inner.overflow
        lo, hi = call.memo("activation clamp", lambda: _clamp_codes(call))
        return np.clip(y, lo, hi, out=y)

    fused_activation.supports = lambda layer: family_kernel(family, layer.op.inner) is not None
    return fused_activation


for _family in INT_KERNELS:
    INT_KERNELS[_family].setdefault("FusedActivation", _kernel(_family))
