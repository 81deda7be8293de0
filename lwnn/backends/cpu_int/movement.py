"""Ops that only move or select values: on integer codes they are the float kernels themselves,
and their output keeps the input's quantization parameters (a max of codes is the code of the
max, because quantization is monotonic). Shared by every integer scheme."""

from __future__ import annotations

import numpy as np

from lwnn.backends.cpu import KERNELS as FLOAT_KERNELS
from lwnn.backends.cpu_int.registry import INT_KERNELS, IntCall
from lwnn.numerics.roles import MOVEMENT_OPS


def _movement(call: IntCall):
    out = FLOAT_KERNELS[call.layer.op_type](call.op, *_trim(call.inputs))
    return out


def _trim(args: list) -> list:
    while args and args[-1] is None:
        args = args[:-1]
    return args


def _pad(call: IntCall):
    x, pads, value, *axes = call.inputs + [None] * (4 - len(call.inputs))
    real = 0.0 if value is None or not np.size(value) else float(np.asarray(value).reshape(-1)[0])
    code = np.asarray(call.params[0].quantize(np.array([real], np.float32)))  # 0.0 -> zero point
    return FLOAT_KERNELS["Pad"](call.op, x, pads, code, axes[0] if axes else None)


def _resize(call: IntCall):
    return FLOAT_KERNELS["Resize"](call.op, *_trim(call.inputs))


_resize.supports = lambda layer: layer.op.mode == "nearest"  # linear interpolates: not a move

for _family in INT_KERNELS.values():
    for _op in MOVEMENT_OPS:
        _family[_op] = _pad if _op == "Pad" else _movement
    _family["Resize"] = _resize
