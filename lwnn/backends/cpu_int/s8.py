"""s8 kernels: TFLite int8 semantics (docs/architecture.md, "Quantization schemes").

Accumulations run through the float kernels in float64 on ``q - zero_point`` (exact: int8
products summed in float64 are exact far beyond any layer's size; zero padding of the shifted
codes is padding with the zero point, as TFLite does), then requantize with an integer Q31
multiplier and shift (``fixedpoint.requantize_s8``).
"""

from __future__ import annotations

import numpy as np

from lwnn.backends.cpu import KERNELS as FLOAT_KERNELS
from lwnn.backends.cpu_int.bounds import FLOAT32_EXACT, exact_float, weight_abs_sum
from lwnn.backends.cpu_int.pairs import pair_lookup
from lwnn.backends.cpu_int.registry import IntCall, int_kernel
from lwnn.errors import CalibrationError
from lwnn.numerics import fixedpoint as fp
from lwnn.numerics.rounding import integral, round_half_away

LUT_OPS = ("Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "LeakyRelu", "Elu", "Exp", "Sqrt", "Erf")


def _centered(q: np.ndarray, params, dtype=np.float64) -> np.ndarray:
    """``q - zero_point`` as ``dtype`` (exact for 8- and 16-bit codes), per channel if needed."""
    zp = params.zero_point.astype(dtype)
    if params.per_channel:
        zp = fp.along_axis(zp, params.axis, q.ndim)
    return np.subtract(q, zp, dtype=dtype)


def _requantize(call: IntCall, acc: np.ndarray, real_multiplier, channel_axis: int | None,
                bound: float | None = None, bias: np.ndarray | None = None) -> np.ndarray:
    """int64 accumulators (plus ``bias``, a per-layer constant that broadcasts like the
    per-channel multipliers, when given) -> int8 codes of the output, counting int32 overflows.

    ``bound`` (>= max|acc + bias|, when the caller knows one) lets an accumulator that cannot
    leave int32 skip the overflow count and the wrap, and fold the bias and zero point into the
    multiplication's constants; ``acc`` may then be overwritten.
    """
    out = call.out[0]

    def multipliers():
        multiplier, shift = fp.quantize_multiplier(np.asarray(real_multiplier, np.float64))
        if channel_axis is not None and np.ndim(multiplier):
            multiplier = fp.along_axis(multiplier, channel_axis, acc.ndim)
            shift = fp.along_axis(shift, channel_axis, acc.ndim)
        return multiplier, shift, fp.InRangeMultiplier.of(multiplier, shift, bias, int(out.zero_point))

    multiplier, shift, in_range = call.memo(("requantize", acc.ndim, channel_axis, bias is not None),
                                            multipliers)
    if bound is not None and bound <= fp.INT32_MAX and in_range is not None:
        return fp.requantize_s8_in_range(acc, in_range, int(out.zero_point), out.qmin, out.qmax)
    if bias is not None:
        acc = acc + bias
    call.overflow += fp.int32_overflow(acc)
    return fp.requantize_s8(fp.wrap_int32(acc), multiplier, shift, int(out.zero_point), out.qmin, out.qmax)


def _weighted(call: IntCall, float_op_type: str, channel_axis: int):
    """Conv/ConvTranspose/Dense/MatMul: integer accumulate, add int32 bias, requantize.

    Both operands are centred on their zero points: constant weights are symmetric (zero point
    0), but a MatMul/Gemm operand computed at run time is an asymmetric activation. The sum runs
    through the float kernel in float32 when ``max|x - zp| * sum|w|`` stays within 2**24, else
    float64 (``lwnn.backends.cpu_int.bounds``); its values are exact integers, so the cast to
    int64 is exact.
    """
    x, w, *rest = call.inputs
    px, pw = call.params[0], call.params[1]
    constant = call.role(1) == "weight" and (len(rest) == 0 or rest[0] is None or call.role(2) == "bias")
    prep = call.memo(("weighted", x.ndim), lambda: _prepare_weighted(call, x.ndim, channel_axis)) \
        if constant else _prepare_weighted(call, x.ndim, channel_axis)
    products = (px.qmax - px.qmin) * prep["w_sum"]  # |x - zp| <= qmax - qmin
    if products > FLOAT32_EXACT:  # the static bound is too wide for float32: look at this x
        zp = int(px.zero_point)
        products = max(int(x.max(initial=px.qmin)) - zp, zp - int(x.min(initial=px.qmax)), 0) * prep["w_sum"]
    dtype = exact_float(products) or np.float64
    wc = prep["centred"].get(dtype)
    if wc is None:
        wc = prep["centred"][dtype] = _centered(w, pw, dtype)
    acc = FLOAT_KERNELS[float_op_type](call.op, _centered(x, px, dtype), wc).astype(np.int64)
    bound, folded = products, None
    if prep["bias"] is not None:
        bound += prep["bias_bound"]
        if prep["bias_per_channel"]:  # added inside the requantization's constants
            folded = prep["bias"]
        else:
            acc += prep["bias"]
    elif rest and rest[0] is not None:  # a Gemm's C computed at run time
        bias = _bias_term(call, rest[0], call.params[2], acc, channel_axis % acc.ndim)
        acc += bias
        bound += _absmax(bias)
    return _requantize(call, acc, prep["real"], prep["real_axis"], bound, folded)


def _prepare_weighted(call: IntCall, ndim: int, channel_axis: int) -> dict:
    """What a weighted layer derives from its parameters and constant operands (memoised when
    they are constants): the bound on sum |w| per output channel, centred weights per float
    type, the bias in accumulator units, and the real requantization multiplier."""
    _, w, *rest = call.inputs
    px, pw = call.params[0], call.params[1]
    if pw.per_channel:
        _check_weight_axis(call, w, pw)
    if call.role(1) == "weight":
        w_sum = weight_abs_sum(call.layer.op_type, call.op, _centered(w, pw))
    else:  # values change from run to run: bound them by their range
        w_sum = _reduction_size(call, w) * (pw.qmax - pw.qmin)
    bias = bias_bound = None
    if rest and rest[0] is not None and call.role(2) == "bias":
        # int32 codes in accumulator units: per output channel for a convolution, else Gemm's C
        # as ONNX broadcasts it
        bias = np.asarray(rest[0]).astype(np.int64)
        if call.layer.op_type in ("Conv", "ConvTranspose"):
            bias = fp.along_axis(bias, channel_axis % ndim, ndim)
        bias_bound = _absmax(bias)
    real = px.scale.astype(np.float64) * pw.scale.astype(np.float64) / float(call.out[0].scale)
    # A bias that varies along the channel axis only can join the requantization's constants.
    per_channel = bias is not None and bias.ndim <= ndim and all(
        d == 1 for i, d in enumerate((1,) * (ndim - bias.ndim) + bias.shape) if i != channel_axis % ndim)
    return {"w_sum": w_sum, "centred": {}, "bias": bias, "bias_bound": bias_bound, "real": real,
            "real_axis": channel_axis % ndim if np.ndim(real) else None, "bias_per_channel": per_channel}


def _absmax(x: np.ndarray) -> int:
    return max(-int(x.min()), int(x.max()), 0) if x.size else 0


def _reduction_size(call: IntCall, w: np.ndarray) -> int:
    """Products summed into one accumulator."""
    op_type = call.layer.op_type
    if op_type == "Conv":
        return int(np.prod(w.shape[1:]))
    if op_type == "ConvTranspose":
        return int(np.prod(w.shape[2:])) * w.shape[0] // max(call.op.group, 1)
    if op_type == "Dense":
        return w.shape[1] if call.op.trans_b else w.shape[0]
    return w.shape[-2] if w.ndim > 1 else w.shape[0]  # MatMul


def _check_weight_axis(call: IntCall, w: np.ndarray, pw) -> None:
    """Per-channel scales factor out of the sum only along the output-channel axis."""
    op = call.op
    expected = {"Conv": 0, "ConvTranspose": 1, "Dense": 0 if getattr(op, "trans_b", False) else 1,
                "MatMul": w.ndim - 1}[call.layer.op_type]
    grouped_deconv = call.layer.op_type == "ConvTranspose" and op.group > 1
    vector_b = call.layer.op_type == "MatMul" and w.ndim < 2
    if pw.axis % w.ndim != expected or grouped_deconv or vector_b:
        raise CalibrationError(
            f"Per-channel weights of a {call.layer.op_type} need their scales along the output-channel "
            f"axis {expected} of a weight tensor of rank >= 2 (per tensor for a grouped "
            f"ConvTranspose). Received axis {pw.axis} for a weight of shape {w.shape}.")


def _bias_term(call: IntCall, bias: np.ndarray, pb, acc: np.ndarray, axis: int) -> np.ndarray:
    """The bias in accumulator units. A convolution's bias is one value per output channel
    (``axis``); a Gemm's ``C`` broadcasts to ``[M, N]`` as in ONNX. A ``C`` computed at run time
    is an int8 activation: it is rescaled to the accumulator scale ``s_x * s_w`` by an integer
    multiplier, as the requantization of an add would."""
    if call.layer.op_type in ("Conv", "ConvTranspose"):
        return fp.along_axis(bias.astype(np.int64), axis, acc.ndim)
    if pb.bits == 32:
        return np.broadcast_to(bias.astype(np.int64), acc.shape)
    px, pw = call.params[0], call.params[1]
    centred = np.broadcast_to(bias.astype(np.int64) - int(pb.zero_point), acc.shape)
    real = float(pb.scale) / (float(px.scale) * pw.scale.astype(np.float64))
    multiplier, shift = fp.quantize_multiplier(real)
    if np.ndim(multiplier):
        multiplier, shift = fp.along_axis(multiplier, axis, acc.ndim), fp.along_axis(shift, axis, acc.ndim)
    return fp.multiply_by_quantized_multiplier(centred, multiplier, shift)


@int_kernel("s8", "Conv", "ConvTranspose")
def conv(call: IntCall):
    return _weighted(call, call.layer.op_type, 1)


@int_kernel("s8", "Dense")
def dense(call: IntCall):
    return _weighted(call, "Dense", -1)


# alpha/beta would scale the accumulator or the bias: TFLite's fully connected has neither.
dense.supports = lambda layer: layer.op.alpha == 1.0 and layer.op.beta == 1.0


@int_kernel("s8", "MatMul")
def matmul(call: IntCall):
    return _weighted(call, "MatMul", -1)


@int_kernel("s8", "Add", "Sub")
def add(call: IntCall):
    """TFLite int8 add: inputs rescaled to a common scale with 20 bits of headroom (read from a
    table of every code pair, ``lwnn.backends.cpu_int.pairs``)."""
    return pair_lookup(call, _add)


def _add(call: IntCall, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    (pa, pb), out = call.params, call.out[0]
    left_shift = 20

    def multipliers():
        twice_max = 2 * max(float(pa.scale), float(pb.scale))
        return (*fp.quantize_multiplier(float(pa.scale) / twice_max),
                *fp.quantize_multiplier(float(pb.scale) / twice_max),
                *fp.quantize_multiplier(twice_max / ((1 << left_shift) * float(out.scale))))

    ma, sa, mb, sb, mo, so = call.memo("add multipliers", multipliers)
    fa, fb, fo = call.memo("add in-range", lambda: tuple(fp.InRangeMultiplier.of(m, s) for m, s in
                                                         ((ma, sa), (mb, sb), (mo, so))))
    # |q - zp| << 20 < 2**28 and the input multipliers are <= 1/2 (shift < 0): every value stays
    # inside int32, so the in-range form applies; only the output may need a left shift.
    xa = _shifted_multiply(np.subtract(a, int(pa.zero_point), dtype=np.int64) << left_shift, ma, sa, fa)
    xb = _shifted_multiply(np.subtract(b, int(pb.zero_point), dtype=np.int64) << left_shift, mb, sb, fb)
    total = np.add(xa, xb, out=xa if xa.shape == np.broadcast_shapes(xa.shape, xb.shape) else None) \
        if call.layer.op_type == "Add" else xa - xb
    y = _shifted_multiply(total, mo, so, fo)
    y += int(out.zero_point)
    return np.clip(y, out.qmin, out.qmax, out=y).astype(np.int8)


def _shifted_multiply(x: np.ndarray, multiplier, shift, prepared=None) -> np.ndarray:
    """``MultiplyByQuantizedMultiplier`` of int32-range int64 values (the fast form when
    ``prepared``, an ``fp.InRangeMultiplier`` of these constants, is given)."""
    if prepared is not None:
        return fp.multiply_in_range(x, prepared)
    return fp.multiply_by_quantized_multiplier(x, multiplier, shift)


add.supports = lambda layer: len(layer.inputs) == 2


@int_kernel("s8", "Mul")
def mul(call: IntCall):
    """TFLite int8 mul: product of centred codes, requantized by ``s_a * s_b / s_out``.

    The multiplier is computed in float32, as TFLite's ``Prepare`` evaluates that expression on
    the tensors' float scales before widening it to double. Read from a table of every code pair
    (``lwnn.backends.cpu_int.pairs``): |product| <= 255**2 never leaves int32.
    """
    return pair_lookup(call, _mul)


def _mul(call: IntCall, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    pa, pb = call.params
    acc = np.subtract(a, int(pa.zero_point), dtype=np.int64)
    acc = np.multiply(acc, np.subtract(b, int(pb.zero_point), dtype=np.int64),
                      out=acc if acc.shape == np.broadcast_shapes(a.shape, b.shape) else None)
    real = np.float32(pa.scale) * np.float32(pb.scale) / np.float32(call.out[0].scale)
    return _requantize(call, acc, float(real), None, bound=(pa.qmax - pa.qmin) * (pb.qmax - pb.qmin))


mul.supports = lambda layer: len(layer.inputs) == 2


@int_kernel("s8", "Relu", "Clip")
def clamp(call: IntCall):
    """TFLite int8 ReLU/ReLU6 (``QuantizedReluX`` + ``ReluX``): requantize to the output scale
    by ``float(s_in / s_out)``, clamp at ``zp_out + roundf(bound / s_out)`` (float32, as TFLite)."""
    x, px, out = call.inputs[0], call.params[0], call.out[0]
    lo, hi = (0.0, None) if call.layer.op_type == "Relu" else (call.op.min, call.op.max)
    def constants():
        m, s = fp.quantize_multiplier(float(np.float32(px.scale) / np.float32(out.scale)))
        bounds = out.activation_range(lo, hi)
        return (*bounds, m, s, fp.InRangeMultiplier.of(m, s))

    act_min, act_max, m, s, prepared = call.memo("clamp", constants)
    y = _shifted_multiply(np.subtract(x, int(px.zero_point), dtype=np.int64), m, s, prepared)
    y += int(out.zero_point)
    return np.clip(y, act_min, act_max, out=y).astype(np.int8)


@int_kernel("s8", *LUT_OPS)
def lookup(call: IntCall):
    """Element-wise functions as a 256-entry table, as TFLite's int8 LUT kernels:
    ``table[q] = quantize_out(f(dequantize_in(q)))`` (the float function evaluated once per code)."""
    px, out = call.params[0], call.out[0]

    def table():
        codes = np.arange(px.qmin, px.qmax + 1, dtype=np.int64)
        real = px.dequantize(codes.astype(px.dtype))
        return out.quantize(FLOAT_KERNELS[call.layer.op_type](call.op, real))

    return call.memo("table", table)[call.inputs[0].astype(np.int64) - px.qmin]


@int_kernel("s8", "AveragePool", "GlobalAveragePool")
def average_pool(call: IntCall):
    """TFLite int8 average pool: the sum of a window's codes divided by its tap count, rounding
    half away from zero (C's ``(sum +- count/2) / count``). Input and output share parameters
    (see lwnn.numerics.roles), as TFLite requires. Padding that ``count_include_pad`` counts holds
    the zero point, the code of the real 0 that ONNX pads with."""
    x, px, out = call.inputs[0], call.params[0], call.out[0]
    if int(px.zero_point) != int(out.zero_point) or np.float32(px.scale) != np.float32(out.scale):
        raise CalibrationError(
            f"s8 {call.layer.op_type} needs output parameters equal to its input's (TFLite int8 "
            f"pooling). Received input {px!r}, output {out!r}.")
    zp = int(px.zero_point)
    if call.layer.op_type == "GlobalAveragePool":
        total = x.astype(np.int64).sum(axis=tuple(range(2, x.ndim)), keepdims=True)
        count = np.int64(np.prod(x.shape[2:]))
    else:
        from lwnn.backends.cpu.pool import _divisors

        count = integral(_divisors(call.op, x.shape[2:], "float64"))
        # Window sums of x - zp with zero padding (exact in float64), then zp per counted tap.
        mean = FLOAT_KERNELS["AveragePool"](call.op, x.astype(np.float64) - zp)
        total = integral(mean * count) + zp * count
    half = count // 2
    y = np.where(total >= 0, (total + half) // count, -((half - total) // count))
    return np.clip(y, out.qmin, out.qmax).astype(np.int8)


@int_kernel("s8", "Concat")
def concat(call: IntCall):
    """Concatenation with rescaling, as TFLite's ``ConcatenationWithScaling`` (its uint8 kernel;
    TFLite's int8 kernel requires every input to share the output's parameters): inputs with
    other parameters become ``round(q * scale + bias) + zp_out`` in float32, with
    ``scale = s_in * (1 / s_out)`` and ``bias = -zp_in * scale``."""
    out = call.out[0]
    inverse_output_scale = np.float32(1) / np.float32(out.scale)
    parts = []
    for q, p in zip(call.inputs, call.params):
        if int(p.zero_point) == int(out.zero_point) and np.float32(p.scale) == np.float32(out.scale):
            parts.append(q)
            continue
        scale = np.float32(p.scale) * inverse_output_scale
        bias = np.float32(-int(p.zero_point)) * scale
        v = round_half_away(q.astype(np.float32) * scale + bias) + int(out.zero_point)
        parts.append(np.clip(v, out.qmin, out.qmax).astype(np.int8))
    return np.concatenate(parts, axis=call.op.axis)


@int_kernel("s8", "BatchNorm")
def batch_norm(call: IntCall):
    """Inference BatchNorm as the per-channel 1x1 depthwise convolution it folds into:
    int8 per-channel weights ``k = gamma / sqrt(var + eps)``, int32 bias, requantize."""
    x, px = call.inputs[0], call.params[0]
    shape = (1, -1) + (1,) * (x.ndim - 2)
    w_q, bias, bias_scale = call.memo(("batchnorm", x.ndim), lambda: _batch_norm_constants(call, shape))
    acc = integral(_centered(x, px) * w_q) + bias
    return _requantize(call, acc, bias_scale / float(call.out[0].scale), 1)


def _batch_norm_constants(call: IntCall, shape: tuple):
    """Per-channel int8 weights, int32 bias and their scale, from the float statistics."""
    _, gamma, beta, mean, var = call.inputs
    px = call.params[0]
    k = gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + call.op.epsilon)
    shift = beta.astype(np.float64) - mean.astype(np.float64) * k
    # Weights at |k| / 127, unless the bias would then leave int32: a dead channel (k = 0) is
    # all bias, which must keep the output's precision rather than the input's.
    w_scale = np.maximum(np.abs(k) / 127.0, np.abs(shift) / (float(px.scale) * 2.0**30))
    w_scale = np.where(w_scale > 0, w_scale, 1.0)
    w_q = np.clip(round_half_away(k / w_scale), -127, 127)
    bias_scale = float(px.scale) * w_scale
    bias = round_half_away(shift / bias_scale)
    return w_q.reshape(shape), bias.astype(np.int64).reshape(shape), bias_scale


# --- Softmax: TFLite's int8 reference kernel --------------------------------------------------

_SCALED_DIFF_INTEGER_BITS = 5  # exp() input: FixedPoint<int32, 5> (Q5.26)
_ACCUMULATION_INTEGER_BITS = 12  # sum of exps: FixedPoint<int32, 12>
SOFTMAX_OUTPUT = (1 / 256, -128)  # TFLite's int8 softmax output scale and zero point


@int_kernel("s8", "Softmax")
def softmax(call: IntCall):
    """TFLite int8 softmax (``reference_ops::Softmax``, beta 1) along the op's axis.

    TFLite normalises the last axis; another axis is moved last and back (the transposes a
    converter inserts), and ``coerce_2d`` (opset < 13) normalises the trailing dims flattened
    into one, which is a last-axis softmax of the 2-D view. The output parameters must be
    TFLite's fixed scale 1/256 and zero point -128 (``lwnn.numerics.roles.fixed_output``).
    """
    x, px, out = call.inputs[0], call.params[0], call.out[0]
    if (float(out.scale), int(out.zero_point)) != SOFTMAX_OUTPUT:
        raise CalibrationError(
            "s8 Softmax output parameters must be scale 1/256 and zero point -128 (TFLite int8 "
            f"softmax). Received {out!r}.")
    axis = call.op.axis % x.ndim
    tables = call.memo("softmax exp table", lambda: softmax_exp_table(float(px.scale)))
    if call.op.coerce_2d:
        rows = x.reshape(int(np.prod(x.shape[:axis], dtype=np.int64)), -1)
        y, overflow = softmax_rows(rows, float(px.scale), tables)
        y = y.reshape(x.shape)
    else:
        y, overflow = softmax_rows(np.moveaxis(x, axis, -1), float(px.scale), tables)
        y = np.moveaxis(y, -1, axis)
    call.overflow += overflow
    return np.ascontiguousarray(y)


def softmax_exp_table(input_scale: float) -> tuple[np.ndarray, np.ndarray]:
    """For every ``diff = q - max`` in [-255, 0] (index ``diff + 255``): TFLite's ``exp`` of the
    rescaled difference in Q0.31, and its Q12.19 term of the sum (0 below ``diff_min``, which
    adds nothing). A pure function of ``diff``, so a table gives the same integers."""
    multiplier, left_shift = fp.preprocess_softmax_scaling(1.0, input_scale, _SCALED_DIFF_INTEGER_BITS)
    diff_min = -fp.calculate_input_radius(_SCALED_DIFF_INTEGER_BITS, left_shift)
    diff = np.arange(-255, 1, dtype=np.int64)
    live = diff >= diff_min
    rescaled = fp.multiply_by_quantized_multiplier_greater_than_one(
        np.where(live, diff, 0), multiplier, left_shift)
    exps = fp.exp_on_negative_values(rescaled, _SCALED_DIFF_INTEGER_BITS)
    terms = np.where(live, fp.rescale(exps, 0, _ACCUMULATION_INTEGER_BITS), 0)
    return np.where(live, exps, -1), terms  # exp -1 marks a dead entry (exps are >= 0)


def softmax_rows(x: np.ndarray, input_scale: float, tables=None) -> tuple[np.ndarray, int]:
    """int8 softmax of every row (last axis) of ``x``, and the number of rows whose int32 sum of
    exps wrapped (beyond 2**32, over 8192 entries at the row maximum: the result is garbage there,
    as on the device).

    Per row: ``diff = q - max`` (entries below ``diff_min`` give -128 and add nothing), rescaled
    to Q5.26 by the softmax multiplier, ``exp`` in Q0.31, summed in Q12.19 (both read from
    ``softmax_exp_table``), the sum's reciprocal ``GetReciprocal``, and
    ``out = RoundingDivideByPOT(recip * exp, num_bits_over_unit + 23) - 128``. TFLite's C shifts
    by more than 31 bits are undefined (rows whose exps sum to >= 512); there the quotient is
    below 1/2 and the output is its rounding, 0 (code -128).
    """
    exp_table, term_table = tables if tables is not None else softmax_exp_table(input_scale)
    q = x.astype(np.int64)
    index = q - q.max(axis=-1, keepdims=True) + 255
    exps = exp_table[index]
    live = exps >= 0
    total = term_table[index].sum(axis=-1, keepdims=True)
    overflow = int(np.count_nonzero(total >= 1 << 32))
    shifted_scale, num_bits_over_unit = fp.get_reciprocal(total, _ACCUMULATION_INTEGER_BITS)
    exponent = num_bits_over_unit + 31 - 8
    product = fp.saturating_rounding_doubling_high_mul(shifted_scale, np.maximum(exps, 0))
    unsat = np.where(exponent > 31, 0, fp.rounding_divide_by_pot(product, np.minimum(exponent, 31)))
    y = np.clip(unsat - 128, -128, 127)
    return np.where(live, y, -128).astype(np.int8), overflow
