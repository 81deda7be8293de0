"""Folded element-wise chains (``lwnn.passes.chains``) as one lookup table, for every scheme:
``table[q] = out.quantize(f(in.dequantize(q)))`` over all ``2**bits`` input codes, ``f`` the
chain's float function evaluated in float64 once per layer (NaN becomes 0, infinities saturate,
as the q-format tables)."""

from __future__ import annotations

import numpy as np

from lwnn.backends.cpu_int.registry import INT_KERNELS, IntCall


def _table(call: IntCall) -> np.ndarray:
    px, out = call.params[0], call.out[0]
    codes = np.arange(px.qmin, px.qmax + 1, dtype=np.int64).astype(px.dtype)
    real = px.dequantize(codes).astype(np.float64)
    with np.errstate(all="ignore"):
        values = np.asarray(call.op.evaluate(real), np.float64)
    values = np.nan_to_num(values, nan=0.0, posinf=2.0**60, neginf=-(2.0**60))
    return out.quantize(values)


def chain_lookup(call: IntCall):
    table = call.memo("chain table", lambda: _table(call))
    return table[call.inputs[0].astype(np.int64) - call.params[0].qmin]


for _family in INT_KERNELS.values():
    _family["ElementwiseChain"] = chain_lookup
