"""s8 kernels: TFLite int8 semantics (DESIGN.md section 5).

Accumulations run through the float kernels in float64 on ``q - zero_point`` (exact: int8
products summed in float64 are exact far beyond any layer's size; zero padding of the shifted
codes is padding with the zero point, as TFLite does), then requantize with an integer Q31
multiplier and shift (``fixedpoint.requantize_s8``).
"""

from __future__ import annotations

import numpy as np

from lwnn.backends.cpu import KERNELS as FLOAT_KERNELS
from lwnn.backends.cpu_int.registry import IntCall, int_kernel
from lwnn.quant import fixedpoint as fp

LUT_OPS = ("Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "LeakyRelu", "Elu", "Exp", "Sqrt", "Erf")


def _centered(q: np.ndarray, params) -> np.ndarray:
    """``q - zero_point`` as float64 (exact), broadcast per channel if needed."""
    zp = params.zero_point.astype(np.float64)
    if params.per_channel:
        zp = fp.along_axis(zp, params.axis, q.ndim)
    return q.astype(np.float64) - zp


def _requantize(call: IntCall, acc: np.ndarray, real_multiplier, channel_axis: int | None) -> np.ndarray:
    """int64 accumulators -> int8 codes of the output, counting int32 overflows."""
    call.overflow += fp.int32_overflow(acc)
    multiplier, shift = fp.quantize_multiplier(np.asarray(real_multiplier, np.float64))
    if channel_axis is not None and np.ndim(multiplier):
        multiplier = fp.along_axis(multiplier, channel_axis, acc.ndim)
        shift = fp.along_axis(shift, channel_axis, acc.ndim)
    out = call.out[0]
    return fp.requantize_s8(fp.wrap_int32(acc), multiplier, shift, int(out.zero_point), out.qmin, out.qmax)


def _integral(values: np.ndarray) -> np.ndarray:
    return np.rint(values).astype(np.int64)


def _round_half_away(v: np.ndarray) -> np.ndarray:
    return (np.sign(v) * np.floor(np.abs(v) + 0.5)).astype(np.int64)


def _weighted(call: IntCall, float_op_type: str, channel_axis: int):
    """Conv/ConvTranspose/Dense/MatMul: integer accumulate, add int32 bias, requantize."""
    x, w, *rest = call.inputs
    px, pw = call.params[0], call.params[1]
    acc_f = FLOAT_KERNELS[float_op_type](call.op, _centered(x, px), w.astype(np.float64))
    acc = _integral(acc_f)
    if rest and rest[0] is not None:
        acc += fp.along_axis(rest[0].astype(np.int64), channel_axis % acc.ndim, acc.ndim)
    real = px.scale.astype(np.float64) * pw.scale.astype(np.float64) / float(call.out[0].scale)
    return _requantize(call, acc, real, channel_axis % acc.ndim if np.ndim(real) else None)


@int_kernel("s8", "Conv", "ConvTranspose")
def conv(call: IntCall):
    return _weighted(call, call.layer.op_type, 1)


@int_kernel("s8", "Dense")
def dense(call: IntCall):
    return _weighted(call, "Dense", -1)


dense.supports = lambda layer: layer.op.alpha == 1.0 and layer.op.beta == 1.0 and not layer.op.trans_a


@int_kernel("s8", "MatMul")
def matmul(call: IntCall):
    return _weighted(call, "MatMul", -1)


@int_kernel("s8", "Add", "Sub")
def add(call: IntCall):
    """TFLite int8 add: inputs rescaled to a common scale with 20 bits of headroom."""
    (a, b), (pa, pb), out = call.inputs, call.params, call.out[0]
    left_shift = 20
    twice_max = 2 * max(float(pa.scale), float(pb.scale))
    ma, sa = fp.quantize_multiplier(float(pa.scale) / twice_max)
    mb, sb = fp.quantize_multiplier(float(pb.scale) / twice_max)
    mo, so = fp.quantize_multiplier(twice_max / ((1 << left_shift) * float(out.scale)))
    xa = fp.multiply_by_quantized_multiplier((a.astype(np.int64) - int(pa.zero_point)) << left_shift, ma, sa)
    xb = fp.multiply_by_quantized_multiplier((b.astype(np.int64) - int(pb.zero_point)) << left_shift, mb, sb)
    total = xa + xb if call.layer.op_type == "Add" else xa - xb
    y = fp.multiply_by_quantized_multiplier(total, mo, so) + int(out.zero_point)
    return np.clip(y, out.qmin, out.qmax).astype(np.int8)


add.supports = lambda layer: len(layer.inputs) == 2


@int_kernel("s8", "Mul")
def mul(call: IntCall):
    """TFLite int8 mul: product of centred codes, requantized by ``s_a * s_b / s_out``."""
    (a, b), (pa, pb) = call.inputs, call.params
    acc = (a.astype(np.int64) - int(pa.zero_point)) * (b.astype(np.int64) - int(pb.zero_point))
    real = float(pa.scale) * float(pb.scale) / float(call.out[0].scale)
    return _requantize(call, acc, real, None)


mul.supports = lambda layer: len(layer.inputs) == 2


@int_kernel("s8", "Relu", "Clip")
def clamp(call: IntCall):
    """TFLite int8 ReLU/ReLU6: requantize to the output scale, clamp at the activation bounds."""
    x, px, out = call.inputs[0], call.params[0], call.out[0]
    lo, hi = (0.0, None) if call.layer.op_type == "Relu" else (call.op.min, call.op.max)
    lo = None if lo is None or lo == float("-inf") else lo
    hi = None if hi is None or hi == float("inf") else hi
    act_min, act_max = out.activation_range(lo, hi)
    m, s = fp.quantize_multiplier(float(px.scale) / float(out.scale))
    centred = x.astype(np.int64) - int(px.zero_point)
    y = fp.multiply_by_quantized_multiplier(centred, m, s) + int(out.zero_point)
    return np.clip(y, act_min, act_max).astype(np.int8)


@int_kernel("s8", *LUT_OPS)
def lookup(call: IntCall):
    """Element-wise functions as a 256-entry table, as TFLite's int8 LUT kernels:
    ``table[q] = quantize_out(f(dequantize_in(q)))`` (the float function evaluated once per code)."""
    px, out = call.params[0], call.out[0]
    codes = np.arange(px.qmin, px.qmax + 1, dtype=np.int64)
    real = px.dequantize(codes.astype(px.dtype))
    table = out.quantize(FLOAT_KERNELS[call.layer.op_type](call.op, real))
    return table[call.inputs[0].astype(np.int64) - px.qmin]


@int_kernel("s8", "AveragePool", "GlobalAveragePool")
def average_pool(call: IntCall):
    """TFLite int8 average pool: sum of codes, divided by the tap count rounding half away from
    zero; input and output share parameters (see lwnn.quant.rules)."""
    x = call.inputs[0]
    if call.layer.op_type == "GlobalAveragePool":
        total = x.astype(np.int64).sum(axis=tuple(range(2, x.ndim)), keepdims=True)
        count = np.int64(np.prod(x.shape[2:]))
    else:
        from lwnn.backends.cpu.pool import _divisors

        count = _integral(_divisors(call.op, x.shape[2:], "float64"))
        total = _integral(FLOAT_KERNELS["AveragePool"](call.op, x.astype(np.float64)) * count)
    half = count // 2
    y = np.where(total >= 0, (total + half) // count, -((-total + half) // count))
    return np.clip(y, -128, 127).astype(np.int8)


@int_kernel("s8", "Concat")
def concat(call: IntCall):
    """TFLite int8 concatenation: inputs with other parameters are rescaled in float and
    rounded (``round(q * s_in / s_out + (zp_out - zp_in * s_in / s_out))``)."""
    out = call.out[0]
    parts = []
    for q, p in zip(call.inputs, call.params):
        if p == out:
            parts.append(q)
            continue
        scale = np.float32(p.scale) / np.float32(out.scale)
        bias = -np.float32(int(p.zero_point)) * scale
        v = _round_half_away(q.astype(np.float32) * scale + bias)  # std::round in float, as TFLite
        parts.append(np.clip(v + int(out.zero_point), out.qmin, out.qmax).astype(np.int8))
    return np.concatenate(parts, axis=call.op.axis)


@int_kernel("s8", "BatchNorm")
def batch_norm(call: IntCall):
    """Inference BatchNorm as the per-channel 1x1 depthwise convolution it folds into:
    int8 per-channel weights ``k = gamma / sqrt(var + eps)``, int32 bias, requantize."""
    x, gamma, beta, mean, var = call.inputs
    px = call.params[0]
    k = gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + call.op.epsilon)
    shift = beta.astype(np.float64) - mean.astype(np.float64) * k
    w_scale = np.where(np.abs(k) > 0, np.abs(k) / 127.0, 1.0)
    w_q = np.clip(_round_half_away(k / w_scale), -127, 127)
    bias_scale = float(px.scale) * w_scale
    bias = _round_half_away(shift / bias_scale)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    acc = _integral(_centered(x, px) * w_q.reshape(shape)) + bias.astype(np.int64).reshape(shape)
    return _requantize(call, acc, bias_scale / float(call.out[0].scale), 1)
