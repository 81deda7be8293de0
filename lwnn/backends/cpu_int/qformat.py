"""q8/q16 kernels: CMSIS-NN legacy q7/q15 semantics with power-of-two Q formats
(docs/architecture.md, "Quantization schemes"). Data-movement ops are shared with s8 (``movement``).

Every tensor holds codes ``q`` with ``real = q * 2**-Q``. One rounding rule, half up
(CMSIS ``NN_ROUND``), wherever bits are dropped by a shift; ``SSAT`` saturation to the output's
8 or 16 bits. What each kernel computes, exactly:

* **Conv** (1-D/2-D/3-D, grouped, depthwise, dilated), **ConvTranspose**, **Dense** (Gemm with
  ``alpha = beta = 1``, ``trans_a = 0``), **MatMul**: ``acc = (bias << (Qx+Qw-Qb)) +
  NN_ROUND(s) + sum(x*w)``, ``y = SSAT(acc >> s)`` with ``s = Qx+Qw-Qy``. The accumulator is a
  32-bit register: values outside int32 are counted in ``call.overflow`` and wrapped (two's
  complement) before the shift, as the device would. A negative ``bias_shift`` rounds the bias
  half up; a negative ``s`` is an exact left shift then SSAT; ``s >= 32`` (undefined in C) is
  the exact rounding shift of the 32-bit register, which is 0. Products are summed through the
  float kernels in float32 when ``K * max|x| * max|w|`` (plus bias and rounding) is at most
  2**24, else in float64 (up to 2**53): every partial sum is then an integer the type holds
  exactly, whatever order BLAS adds in. Zero padding is padding with code 0 = real 0.
* **Add/Sub/Max/Min/Concat/Relu/Clip/PRelu(positive side)**: each input moved to the output Q
  (``x << d`` exactly, or ``(x + NN_ROUND(-d)) >> -d``), combined exactly, then SSAT. Clip
  clamps at its bounds quantized in the output Q (half up, saturated).
* **Mul**, **PRelu** (negative side): product in Q ``Qa+Qb``, then ``SSAT((p + NN_ROUND(s)) >> s)``
  with ``s = Qa+Qb-Qy`` on a 32-bit register, like the conv accumulator.
* **AveragePool/GlobalAveragePool**: CMSIS ``arm_avepool_q7_HWC`` reference (non-DSP) path:
  int32 sum of the window, ``sum / count`` with C division (truncates toward zero), ``count`` =
  the taps inside the input (plus the pads when ``count_include_pad``, as ONNX says). The DSP
  path of CMSIS divides twice (rows, then columns) and differs; we follow the reference path.
* **BatchNorm**: the depthwise 1x1 convolution it folds into, with the conv formula above:
  ``k = gamma/sqrt(var+eps)`` and ``b = beta - mean*k`` (float64) quantized per tensor with the
  weight/bias rule ``Q = (bits-1) - ceil(log2 max|.|)``, half up.
* **Softmax**: CMSIS legacy ``arm_softmax_q7`` (V1.0.1, reference path) and ``arm_softmax_q15``,
  transliterated along the softmax axis. Their base-2 softmax reads the input *codes* as base-2
  exponents, ``y ~ 2**q / sum(2**q)``, whatever the input Q (so it is sharper than ``exp`` when
  Q > 0; the arg-max is kept). q7: ``base = max - 8``; ``sum = sum(1 << USAT(q - base, 3))``
  (so the two top codes weigh 2**7 each); ``y = SSAT(((1 << 20) / sum) >> USAT(13 + base - q, 5))``.
  q15: ``base = max - 16``; codes ``<= base`` give 0 and are left out of the sum;
  ``sum = sum(1 << (q - base))``; ``y = SSAT((2**32 / sum) >> (17 + base - q))``. Divisions
  truncate. Output Q7/Q15.
* **Sigmoid/Tanh**: CMSIS ``arm_nn_activations_direct_q7/q15``. The input is first moved (half
  up, saturating) to the table's format ``Qt = clamp(Qx, bits-4, bits-1)``, i.e. CMSIS's
  ``int_width = bits-1-Qt`` in [0, 3]. The 256-entry table holds ``SSAT(round_half_up(f(k/16) *
  2**(bits-1)))`` at index ``uint8(k)`` for ``k`` in [-128, 127] (sample points of CMSIS's tables;
  built from the float function, which reproduces CMSIS's table data). q7: ``y =
  table[uint8(x >> (Qt-4))]``. q15: ``k = x >> (Qt-4)``, ``frac = x & (2**(Qt-4) - 1)``,
  ``y = ((2**(Qt-4) - frac) * table[uint8(k)] + frac * table[uint8(k+1)]) >> (Qt-4)``, except
  ``k = 127`` (no right neighbour): ``y = table[127]``. Output Q7/Q15.
* **Other element-wise functions** (HardSigmoid, HardSwish, LeakyRelu, Elu, ...): a table over
  all ``2**bits`` input codes, ``table[q] = out.quantize(f(q * 2**-Qx))`` (f in float64; NaN
  results, e.g. Sqrt of a negative code, become 0; infinities saturate).

Left shifts are exact in int64 and capped at 40 bits: a non-zero code moved left further
saturates (and a 32-bit register wraps it to 0) just the same.
"""

from __future__ import annotations

import functools

import numpy as np

from lwnn.backends.cpu import KERNELS as FLOAT_KERNELS
from lwnn.backends.cpu.pool import _divisors, _padded, _tap_views
from lwnn.backends.cpu_int.bounds import FLOAT32_EXACT, weight_abs_sum
from lwnn.backends.cpu_int.bounds import exact_float as _exact_float
from lwnn.backends.cpu_int.pairs import pair_lookup
from lwnn.backends.cpu_int.registry import IntCall, int_kernel
from lwnn.numerics import fixedpoint as fp
from lwnn.numerics.params import QFormat, qformat_from_absmax
from lwnn.numerics.rounding import integral

LUT_OPS = ("HardSigmoid", "HardSwish", "LeakyRelu", "Elu", "Exp", "Log", "Sqrt", "Erf", "Reciprocal",
           "Abs", "Neg")


# --- shared arithmetic ------------------------------------------------------------------------


def _to(x, q_from: int, out: QFormat) -> np.ndarray:
    """Codes in Q ``q_from`` as codes of ``out``: shift (half up), then SSAT."""
    x = np.asarray(x)
    if q_from == out.frac_bits and x.dtype == out.dtype:
        return x
    return fp.saturate(fp.q_shift(x, out.frac_bits - q_from), out.bits)


def _absmax(x) -> int:
    """max |x| of integer codes as a Python int (no temporary array, no int8 abs overflow)."""
    x = np.asarray(x)
    return max(-int(x.min()), int(x.max()), 0) if x.size else 0


def _requantize(call: IntCall, acc: np.ndarray, shift: int, bound: int | None = None) -> np.ndarray:
    """Exact accumulators (without the rounding constant) -> ``SSAT((acc + NN_ROUND) >> shift)``
    on a 32-bit register, counting the values that leave int32.

    ``acc`` is int64, or a float array of exact integers; ``bound`` (>= max|acc|, when known) lets
    a float accumulator that cannot reach int32's limits skip the overflow count and requantize
    in its own type (the caller picks a type where ``bound + NN_ROUND`` is exact).
    """
    out = call.out[0]
    if shift > 31:  # C: undefined. The exact rounding shift of any int32 by >= 32 bits is 0.
        call.overflow += fp.int32_overflow(acc)
        return np.zeros(np.shape(acc), out.dtype)
    rounding = int(fp.nn_round(shift))
    in_range = bound is not None and bound + rounding <= fp.INT32_MAX
    if acc.dtype.kind == "f" and shift >= 0 and not in_range and acc.dtype == np.float64:
        # The bound allows int32 overflow: count it on the exact float64 sums; with none, the
        # float path below is exact as well.
        lo, hi = float(acc.min(initial=0)) + rounding, float(acc.max(initial=0)) + rounding
        in_range = fp.INT32_MIN <= lo and hi <= fp.INT32_MAX
    if acc.dtype.kind == "f" and shift >= 0 and in_range:
        y = acc + rounding  # floor((acc + NN_ROUND) / 2**shift) is the arithmetic shift
        y *= 2.0**-shift
        np.floor(y, out=y)
        return np.clip(y, out.qmin, out.qmax, out=y).astype(out.dtype)
    if acc.dtype.kind == "f":
        acc = integral(acc)
    call.overflow += fp.int32_overflow(acc + rounding)
    return fp.shift_and_saturate(acc, max(shift, -63), out.bits)


# --- convolutions and matrix products ---------------------------------------------------------


def _reduction_size(call: IntCall, x: np.ndarray, w: np.ndarray) -> int:
    """Products summed into one accumulator (at most)."""
    op_type = call.layer.op_type
    if op_type == "Conv":
        return int(np.prod(w.shape[1:]))
    if op_type == "ConvTranspose":
        return w.shape[0] // call.op.group * int(np.prod(w.shape[2:]))
    return x.shape[-1]  # Dense (trans_a = 0) and MatMul


def _weighted(call: IntCall, float_op_type: str, channel_axis: int | None):
    """Sum of products through the float kernel in a type where it is exact, plus the bias."""
    x, w, *rest = call.inputs
    constant = call.role(1) == "weight" and (len(rest) == 0 or rest[0] is None or call.role(2) == "bias")
    prep = call.memo(("weighted", x.ndim), lambda: _prepare_weighted(call, x.ndim, channel_axis)) \
        if constant else _prepare_weighted(call, x.ndim, channel_axis)
    shift, bias = prep["shift"], prep["bias"]
    # A bound on every partial sum (bounds.py): from the code range, or from this x when that is
    # too wide for float32.
    bound = (1 << (call.params[0].bits - 1)) * prep["w_sum"] + prep["bias_bound"]
    if bound + prep["rounding"] > FLOAT32_EXACT:
        bound = _absmax(x) * prep["w_sum"] + prep["bias_bound"]
    dtype = _exact_float(bound + prep["rounding"]) or np.float64
    wc = prep["weights"].get(dtype)
    if wc is None:
        wc = prep["weights"][dtype] = w.astype(dtype)
    acc = FLOAT_KERNELS[float_op_type](call.op, x.astype(dtype), wc)
    if bias is not None:
        if _exact_float(bound):
            b = prep["weights"].get(("bias", dtype))
            if b is None:
                b = prep["weights"][("bias", dtype)] = bias.astype(dtype)
            acc = np.add(acc, b, out=acc if np.broadcast_shapes(acc.shape, b.shape) == acc.shape else None)
        else:
            acc = integral(acc) + bias
    return _requantize(call, acc, shift, bound)


def _prepare_weighted(call: IntCall, ndim: int, channel_axis: int | None) -> dict:
    """Shifts, the bias in accumulator Q, the bound on sum |w| per output channel and the weights
    per float type of a weighted layer (memoised when its operands are constants)."""
    x, w, *rest = call.inputs
    qx, qw = call.params[0].frac_bits, call.params[1].frac_bits
    shift = fp.out_shift(qx, qw, call.out[0].frac_bits)
    bias = None
    if rest and rest[0] is not None:
        bias = fp.q_shift(rest[0], fp.bias_shift(qx, qw, call.params[2].frac_bits))
        if channel_axis is not None:
            bias = fp.along_axis(bias, channel_axis, ndim)
    if call.role(1) == "weight":
        w_sum = weight_abs_sum(call.layer.op_type, call.op, w)
    else:
        w_sum = _reduction_size(call, x, w) * _absmax(w)
    return {"shift": shift, "bias": bias, "bias_bound": _absmax(bias) if bias is not None else 0,
            "w_sum": w_sum, "rounding": int(fp.nn_round(min(shift, 31))), "weights": {}}


@int_kernel("qformat", "Conv", "ConvTranspose")
def conv(call: IntCall):
    return _weighted(call, call.layer.op_type, 1)


@int_kernel("qformat", "Dense")
def dense(call: IntCall):
    return _weighted(call, "Dense", None)  # Gemm's C broadcasts as NumPy does


dense.supports = lambda layer: layer.op.alpha == 1.0 and layer.op.beta == 1.0 and not layer.op.trans_a


@int_kernel("qformat", "MatMul")
def matmul(call: IntCall):
    return _weighted(call, "MatMul", None)


@int_kernel("qformat", "BatchNorm")
def batch_norm(call: IntCall):
    """Per-channel ``k * x + b`` as a depthwise 1x1 convolution (see the module docstring)."""
    x, gamma, beta, mean, var = call.inputs
    k = np.asarray(gamma, np.float64) / np.sqrt(np.asarray(var, np.float64) + call.op.epsilon)
    b = np.asarray(beta, np.float64) - np.asarray(mean, np.float64) * k
    pk = qformat_from_absmax(float(np.abs(k).max()), call.bits)
    pb = qformat_from_absmax(float(np.abs(b).max()), call.bits)
    qx = call.params[0].frac_bits
    shift = fp.out_shift(qx, pk.frac_bits, call.out[0].frac_bits)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    k_q = pk.quantize(k).reshape(shape)
    b_q = fp.q_shift(pb.quantize(b), fp.bias_shift(qx, pk.frac_bits, pb.frac_bits)).reshape(shape)
    bound = _absmax(x) * _absmax(k_q) + _absmax(b_q)
    dtype = _exact_float(bound + int(fp.nn_round(min(shift, 31))))
    if dtype is None:
        acc = x.astype(np.int64) * k_q + b_q
    else:
        acc = x.astype(dtype) * k_q.astype(dtype)
        acc += b_q.astype(dtype)
    return _requantize(call, acc, shift, bound)


# --- element-wise arithmetic ------------------------------------------------------------------


@int_kernel("qformat", "Add", "Sub")
def add(call: IntCall):
    """Inputs aligned to the output Q by shifts, added, saturated (q8: by a table of every code
    pair, ``lwnn.backends.cpu_int.pairs``)."""
    return pair_lookup(call, _add)


def _add(call: IntCall, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    (pa, pb), out = call.params, call.out[0]
    xa = fp.q_shift(a, out.frac_bits - pa.frac_bits)
    xb = fp.q_shift(b, out.frac_bits - pb.frac_bits)
    return fp.saturate(xa + xb if call.layer.op_type == "Add" else xa - xb, out.bits)


add.supports = lambda layer: len(layer.inputs) == 2


@int_kernel("qformat", "Max", "Min")
def extremum(call: IntCall):
    out = call.out[0]
    pick = np.maximum if call.layer.op_type == "Max" else np.minimum
    aligned = [fp.q_shift(q, out.frac_bits - p.frac_bits) for q, p in zip(call.inputs, call.params)]
    return fp.saturate(functools.reduce(pick, aligned), out.bits)


@int_kernel("qformat", "Mul")
def mul(call: IntCall):
    """``SSAT((a * b + NN_ROUND) >> (Qa + Qb - Qy))`` (q8: by a table of every code pair; an int8
    product never leaves int32)."""
    return pair_lookup(call, _mul)


def _mul(call: IntCall, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    pa, pb = call.params
    acc = a.astype(np.int64) * b.astype(np.int64)
    return _requantize(call, acc, pa.frac_bits + pb.frac_bits - call.out[0].frac_bits)


mul.supports = lambda layer: len(layer.inputs) == 2


@int_kernel("qformat", "PRelu")
def prelu(call: IntCall):
    (x, slope), (px, ps), out = call.inputs, call.params, call.out[0]
    negative = x < 0
    acc = np.where(negative, x.astype(np.int64) * slope.astype(np.int64), 0)
    scaled = _requantize(call, acc, px.frac_bits + ps.frac_bits - out.frac_bits)
    return np.where(negative, scaled, _to(x, px.frac_bits, out)).astype(out.dtype)


prelu.supports = lambda layer: len(layer.inputs) == 2


@int_kernel("qformat", "Relu", "Clip")
def clamp(call: IntCall):
    """ReLU: ``max(x, 0)``; Clip (ReLU6): clamp at its bounds quantized in the output Q."""
    x, px, out = call.inputs[0], call.params[0], call.out[0]
    y = _to(x, px.frac_bits, out)
    if call.layer.op_type == "Relu":
        return np.maximum(y, 0).astype(out.dtype)
    lo, hi = call.op.min, call.op.max
    lo_q = out.qmin if lo == float("-inf") else int(out.quantize(np.float64(lo)))
    hi_q = out.qmax if hi == float("inf") else int(out.quantize(np.float64(hi)))
    return np.clip(y, lo_q, hi_q).astype(out.dtype)


@int_kernel("qformat", "Concat")
def concat(call: IntCall):
    out = call.out[0]
    parts = [_to(q, p.frac_bits, out) for q, p in zip(call.inputs, call.params)]
    return np.concatenate(parts, axis=call.op.axis)


# --- pooling ----------------------------------------------------------------------------------


def _c_divide(total: np.ndarray, count) -> np.ndarray:
    """C integer division of an int32 sum by a positive count: truncates toward zero."""
    quotient = np.abs(total) // count
    return np.where(total < 0, -quotient, quotient)


@int_kernel("qformat", "AveragePool", "GlobalAveragePool")
def average_pool(call: IntCall):
    """CMSIS ``arm_avepool_q7_HWC`` reference path: ``sum / count`` (see the module docstring)."""
    x = call.inputs[0].astype(np.int64)
    if call.layer.op_type == "GlobalAveragePool":
        total = x.sum(axis=tuple(range(2, x.ndim)), keepdims=True)
        count = int(np.prod(x.shape[2:]))
    else:
        k, strides, dilations, pads, out = call.op.geometry(x.shape)
        views = _tap_views(_padded(x, pads, k, strides, dilations, out, 0), k, strides, dilations, out)
        total = np.array(next(views))
        for view in views:
            total += view
        count = integral(_divisors(call.op, x.shape[2:], "float64"))
    call.overflow += fp.int32_overflow(total)
    return _to(_c_divide(fp.wrap_int32(total), count), call.params[0].frac_bits, call.out[0])


# --- softmax and activation tables ------------------------------------------------------------


def _softmax_q7(q: np.ndarray) -> np.ndarray:
    base = q.max(axis=-1, keepdims=True) - 8
    total = (np.int64(1) << np.clip(q - base, 0, 7)).sum(axis=-1, keepdims=True)
    output_base = (1 << 20) // total
    return fp.saturate(output_base >> np.clip(13 + base - q, 0, 31), 8)


def _softmax_q15(q: np.ndarray) -> np.ndarray:
    base = q.max(axis=-1, keepdims=True) - 16
    inside = q > base
    total = np.where(inside, np.int64(1) << np.clip(q - base, 0, 31), 0).sum(axis=-1, keepdims=True)
    output_base = (1 << 32) // total
    y = fp.saturate(output_base >> np.clip(17 + base - q, 0, 31), 16)
    return np.where(inside, y, 0).astype(np.int16)


@int_kernel("qformat", "Softmax")
def softmax(call: IntCall):
    """CMSIS legacy ``arm_softmax_q7``/``arm_softmax_q15`` along the axis (module docstring)."""
    x, op = call.inputs[0], call.op
    axis = op.axis % x.ndim
    if op.coerce_2d:
        rows = x.reshape(int(np.prod(x.shape[:axis])), -1)
    else:
        rows = np.moveaxis(x, axis, -1)
    q = rows.astype(np.int64)
    y = _softmax_q7(q) if call.bits == 8 else _softmax_q15(q)
    y = y.reshape(x.shape) if op.coerce_2d else np.moveaxis(y, -1, axis)
    return _to(y, call.bits - 1, call.out[0])


@functools.cache
def _cmsis_table(op_type: str, bits: int) -> np.ndarray:
    """Index ``uint8(k)`` holds ``f(k/16)`` in Q(bits-1), for ``k`` in [-128, 127]."""
    k = np.arange(256, dtype=np.int64)
    k = np.where(k >= 128, k - 256, k)
    values = FLOAT_KERNELS[op_type](None, k / 16.0)
    table = QFormat(bits - 1, bits).quantize(values).astype(np.int64)
    table.setflags(write=False)
    return table


@int_kernel("qformat", "Sigmoid", "Tanh")
def activation_direct(call: IntCall):
    """CMSIS ``arm_nn_activations_direct_q7/q15`` (module docstring)."""
    x, px, bits = call.inputs[0], call.params[0], call.bits
    table = _cmsis_table(call.layer.op_type, bits)
    qt = min(max(px.frac_bits, bits - 4), bits - 1)
    t = _to(x, px.frac_bits, QFormat(qt, bits)).astype(np.int64)
    shift = qt - 4  # CMSIS: 3 - int_width (q7), 11 - int_width (q15)
    if bits == 8:
        y = table[(t >> shift) & 0xFF]
    else:
        k, frac = t >> shift, t & ((1 << shift) - 1)
        left, right = table[k & 0xFF], table[(k + 1) & 0xFF]
        y = np.where(k == 0x7F, left, (((1 << shift) - frac) * left + right * frac) >> shift)
    return _to(y, bits - 1, call.out[0])


@functools.lru_cache(maxsize=64)
def _lookup_table(op, p_in: QFormat, p_out: QFormat) -> np.ndarray:
    real = np.ldexp(np.arange(p_in.qmin, p_in.qmax + 1, dtype=np.float64), -p_in.frac_bits)
    with np.errstate(all="ignore"):
        values = np.asarray(FLOAT_KERNELS[op.type](op, real), np.float64)
    values = np.nan_to_num(values, nan=0.0, posinf=2.0**60, neginf=-(2.0**60))
    table = p_out.quantize(values)
    table.setflags(write=False)
    return table


@int_kernel("qformat", *LUT_OPS)
def lookup(call: IntCall):
    """``table[q] = out.quantize(f(q * 2**-Qx))`` over every input code (module docstring)."""
    px = call.params[0]
    table = _lookup_table(call.op, px, call.out[0])
    return table[call.inputs[0].astype(np.int64) - px.qmin]
