"""Integer arithmetic shared by the integer runtimes, vectorised over int64 NumPy arrays.

Two families, each following one published reference bit for bit:

* s8 (TFLite int8): ``quantize_multiplier`` (TFLite ``QuantizeMultiplier``), gemmlowp's
  ``SaturatingRoundingDoublingHighMul`` and ``RoundingDivideByPOT``, TFLite's (double-rounding)
  ``MultiplyByQuantizedMultiplier``, and ``requantize_s8``. Ties round away from zero.
* q8/q16 (CMSIS-NN legacy q7/q15 kernels): ``nn_round`` (``NN_ROUND``), ``shift_and_saturate``
  (``__SSAT((acc + NN_ROUND(s)) >> s, bits)``), ``align_shift`` for bias and Q alignment. Ties
  round half up.

Values are held in int64 so intermediate products never overflow NumPy; where the device holds a
32-bit accumulator, the functions wrap it to 32 bits exactly as two's-complement hardware does
(``wrap_int32``). Overflow is a fact to report, not to hide: count it with ``int32_overflow`` on
the exact (int64 or float64) accumulator before requantizing. Per-channel multipliers and shifts
broadcast; ``along_axis`` shapes them for a channel axis.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lwnn.errors import CalibrationError
from lwnn.numerics.rounding import round_half_away

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1


def _i64(x) -> np.ndarray:
    return np.asarray(x).astype(np.int64, copy=False)


def _check_shift(shift: np.ndarray, lo: int, hi: int, what: str) -> None:
    # Shift arrays are per channel (small), so checking them costs nothing next to the tensor.
    if shift.size and (shift.min() < lo or shift.max() > hi):
        raise CalibrationError(
            f"{what} must lie in [{lo}, {hi}]. Received values from {shift.min()} to {shift.max()}."
        )


def along_axis(values, axis: int, ndim: int) -> np.ndarray:
    """1-D per-channel ``values`` reshaped to broadcast along ``axis`` of a rank-``ndim`` tensor."""
    values = np.asarray(values)
    axis = axis % ndim
    return values.reshape([values.size if d == axis else 1 for d in range(ndim)])


def wrap_int32(x) -> np.ndarray:
    """Two's-complement wrap of integers to int32, as a 32-bit register would hold them (int64 out)."""
    return np.asarray(x).astype(np.int64, copy=False).astype(np.int32).astype(np.int64)


def int32_overflow(acc) -> int:
    """How many accumulator values fall outside int32 (exact int64 or float64 sums).

    A device accumulating in int32 wraps these silently; the final wrapped value is wrong exactly
    when the exact sum is out of range (partial sums may wrap and come back harmlessly).
    """
    acc = np.asarray(acc)
    return int(np.count_nonzero((acc < INT32_MIN) | (acc > INT32_MAX)))


# --- s8: TFLite / gemmlowp ------------------------------------------------------------------


def quantize_multiplier(real_multiplier) -> tuple[np.ndarray, np.ndarray]:
    """A real multiplier as ``(multiplier, shift)``: ``real ~= multiplier * 2**(shift - 31)``.

    TFLite ``QuantizeMultiplier``: ``frexp`` gives a mantissa in [0.5, 1) and an exponent; the
    mantissa times 2**31 is rounded half away from zero (``std::round``) into a Q31 int32; a
    mantissa that rounds up to exactly 2**31 is halved and the shift incremented; a shift below -31
    (real < ~2**-32) is flushed to ``(0, 0)``. Positive ``shift`` means a left shift. Works
    element-wise on per-channel arrays; multiplier and shift come back as int32 arrays.
    """
    real = np.asarray(real_multiplier, dtype=np.float64)
    bad = ~np.isfinite(real) | (real < 0)
    if bad.any():
        raise CalibrationError(
            f"Requantization multipliers must be finite and >= 0. Received {real[bad].ravel()[:4]!r}."
        )
    mantissa, shift = np.frexp(real)
    q = np.ldexp(mantissa, 31)  # exact, below 2**31 in magnitude
    q_fixed = round_half_away(q).astype(np.int64)  # q has at most 53 bits: exact
    edge = q_fixed == (1 << 31)
    q_fixed = np.where(edge, q_fixed // 2, q_fixed)
    shift = np.where(edge, shift + 1, shift).astype(np.int64)
    flush = shift < -31
    q_fixed = np.where(flush, 0, q_fixed)
    shift = np.where(flush, 0, shift)
    # MultiplyByQuantizedMultiplier left-shifts an int32 by `shift`: beyond 30 nothing survives.
    _check_shift(shift, -31, 30, f"Requantization shift (real multiplier {real.max():.6g})")
    return q_fixed.astype(np.int32), shift.astype(np.int32)


def saturating_rounding_doubling_high_mul(a, b) -> np.ndarray:
    """gemmlowp ``SaturatingRoundingDoublingHighMul`` on int32 values (int64 out).

    gemmlowp adds ``nudge = 2**30`` to a non-negative product and ``1 - 2**30`` to a negative one,
    divides by 2**31 truncating towards zero, and saturates the one overflow case
    ``INT32_MIN * INT32_MIN`` to ``INT32_MAX``. For int32 operands that is exactly
    ``floor((a*b + 2**30) / 2**31)``: nearest, ties towards +inf (a negative tie rounds towards
    zero). This form is one add and one arithmetic shift per element.
    """
    ab = np.asarray(np.multiply(a, b, dtype=np.int64))  # |a*b| <= 2**62: exact
    ab += 1 << 30
    ab >>= 31
    return np.minimum(ab, INT32_MAX, out=ab)


def rounding_divide_by_pot(x, exponent) -> np.ndarray:
    """gemmlowp ``RoundingDivideByPOT``: ``x / 2**exponent`` rounded half away from zero.

    ``exponent`` in [0, 31], broadcasting (per-channel). gemmlowp adds one to ``x >> exponent``
    when the remainder exceeds half the divisor (half minus one for negative ``x``); adding
    ``(mask + (x >= 0)) >> 1`` (``mask = 2**exponent - 1``) before the shift is the same.
    """
    x, exponent = _i64(x), _i64(exponent)
    _check_shift(exponent, 0, 31, "RoundingDivideByPOT exponent")
    mask = (np.int64(1) << exponent) - 1
    y = np.asarray(np.add(mask, x >= 0, dtype=np.int64))
    y >>= 1
    y += x
    y >>= exponent
    return y


def multiply_by_quantized_multiplier(acc, multiplier, shift) -> np.ndarray:
    """TFLite ``MultiplyByQuantizedMultiplier`` (double rounding), int32 semantics, int64 out.

    ``RoundingDivideByPOT(SRDHM(acc * 2**max(shift, 0), multiplier), max(-shift, 0))``. ``acc`` is
    wrapped to int32 first (it is a 32-bit register on the device), and so is ``acc << shift``,
    which C computes in int32 too (rare: only real multipliers > 1 shift left).
    """
    shift = _i64(shift)
    x = np.asarray(acc)
    if x.dtype != np.int32:
        x = x.astype(np.int64, copy=False).astype(np.int32)  # NumPy's integer cast wraps
    if shift.size and shift.max() > 0:
        x = np.left_shift(x, np.maximum(shift, 0), dtype=np.int64).astype(np.int32)
    high = saturating_rounding_doubling_high_mul(x, multiplier)
    return rounding_divide_by_pot(high, np.maximum(-shift, 0))


def requantize_s8(
    acc, multiplier, shift, zp_out, act_min: int = -128, act_max: int = 127
) -> np.ndarray:
    """int32 accumulators -> int8: ``clamp(MultiplyByQuantizedMultiplier(acc) + zp_out)``.

    As TFLite's int8 conv/fully-connected reference kernels. A fused ReLU is
    ``act_min = zp_out`` (see ``AffineParams.activation_range``). Per-channel ``multiplier`` and
    ``shift`` must broadcast against ``acc`` (``along_axis``).
    """
    y = multiply_by_quantized_multiplier(acc, multiplier, shift)
    y += _i64(zp_out)
    return np.clip(y, act_min, act_max, out=y).astype(np.int8)


@dataclass(frozen=True)
class InRangeMultiplier:
    """``MultiplyByQuantizedMultiplier`` constants prepared for values already inside int32 with
    ``multiplier >= 0`` and ``shift <= 0`` (no left shift); see ``multiply_in_range``. A constant
    ``bias`` (added to the values first) and an output ``zero_point`` (added after) may be folded
    into the constants."""

    multiplier: np.ndarray  # int64
    total_shift: np.ndarray  # int64, 31 + e with e = -shift
    offset: np.ndarray  # int64: 2**30 + 2**(e-1) * 2**31 (e > 0) + bias * multiplier + zp * 2**(31+e)
    threshold: np.ndarray | int  # acc * multiplier below this: the rounding shift's h is negative
    tie_channels: np.ndarray | None  # bool, e > 0, when some channel has e == 0
    any_tie: bool  # some channel has e > 0
    zero_point: int  # the zero point folded into ``offset`` (0: none)

    @classmethod
    def of(cls, multiplier, shift, bias=None, zero_point: int = 0) -> InRangeMultiplier | None:
        """The prepared constants, or None when the preconditions do not hold. ``bias`` (int64,
        broadcasting like ``multiplier``) must keep ``acc + bias`` inside int32 too."""
        multiplier, exponent = _i64(multiplier), -_i64(shift)
        if multiplier.size and (multiplier.min() < 0 or exponent.min() < 0):
            return None
        half = np.where(exponent > 0, np.left_shift(1, np.maximum(exponent - 1, 0)), 0)
        scaled_bias = 0 if bias is None else _i64(bias) * multiplier  # |bias * M| < 2**62
        # zp * 2**(31+e) stays far inside int64 while e <= 23 (|zp| <= 2**7): then it is folded.
        folded_zp = int(zero_point) if exponent.size == 0 or exponent.max() <= 23 else 0
        offset = (1 << 30) + (half << 31) + scaled_bias + (np.int64(folded_zp) << (31 + exponent))
        some_zero = bool(exponent.size and exponent.min() == 0)
        any_tie = bool(exponent.size and exponent.max() > 0)
        tie_channels = exponent > 0 if some_zero and any_tie else None
        threshold = -(1 << 30) - scaled_bias
        return cls(multiplier, 31 + exponent, offset, threshold, tie_channels, any_tie, folded_zp)


def multiply_in_range(acc, m: InRangeMultiplier) -> np.ndarray:
    """``multiply_by_quantized_multiplier(acc + bias) + zero_point`` (those ``m`` folded in) for
    int64 ``acc`` with ``acc + bias`` inside int32, under ``m``'s preconditions: the same integers
    in fewer passes. An int64 ``acc`` is consumed.

    With ``p = (acc + bias) * multiplier`` (exact: |p| < 2**62), gemmlowp's ``SaturatingRounding
    DoublingHighMul`` is ``h = floor((p + 2**30) / 2**31)`` (its saturation needs ``INT32_MIN``
    twice, and the multiplier is >= 0), and ``RoundingDivideByPOT(h, e)`` is ``floor((h + 2**(e-1)
    - [h < 0]) / 2**e)`` for ``e > 0`` (half away from zero), ``h`` for ``e = 0``. Since ``h < 0``
    exactly when ``p < -2**30``, nested floor divisions by powers of two compose, and adding
    ``zp`` after a floor division by ``2**k`` is adding ``zp * 2**k`` before it, the result is
    ``(p + 2**30 + (2**(e-1) - [p < -2**30]) * 2**31 + zp * 2**(31+e)) >> (31 + e)``: one
    product, one compare, one add, one masked subtract and one shift.
    """
    acc = np.asarray(acc)
    reuse = acc.dtype == np.int64 and acc.ndim and acc.flags.writeable \
        and np.broadcast_shapes(acc.shape, m.multiplier.shape, np.shape(m.offset)) == acc.shape
    p = np.asarray(np.multiply(acc, m.multiplier, out=acc if reuse else None, dtype=np.int64))
    negative = np.less(p, m.threshold) if m.any_tie else None
    if negative is not None and m.tie_channels is not None:
        negative &= m.tie_channels
    p = np.add(p, m.offset, out=p if p.shape == np.broadcast_shapes(p.shape, np.shape(m.offset)) else None)
    if negative is not None:
        np.subtract(p, 1 << 31, out=p, where=negative)
    p >>= m.total_shift
    return p


def multiply_by_quantized_multiplier_in_range(acc: np.ndarray, multiplier, shift) -> np.ndarray:
    """``multiply_in_range`` with constants prepared on the fly (they must meet its preconditions)."""
    m = InRangeMultiplier.of(multiplier, shift)
    if m is None:
        raise CalibrationError("multiply_by_quantized_multiplier_in_range needs multiplier >= 0 and "
                               f"shift <= 0. Received {multiplier!r}, {shift!r}.")
    return multiply_in_range(acc, m)


def requantize_s8_in_range(acc: np.ndarray, m: InRangeMultiplier, zp_out: int, act_min: int,
                           act_max: int) -> np.ndarray:
    """``requantize_s8`` for int64 accumulators inside int32 under ``m``'s preconditions."""
    y = multiply_in_range(acc, m)
    if int(zp_out) != m.zero_point:
        y += int(zp_out) - m.zero_point
    return np.clip(y, act_min, act_max, out=y).astype(np.int8)


# --- q8/q16: CMSIS-NN legacy q7/q15 ----------------------------------------------------------


def bias_shift(q_x: int, q_w: int, q_b: int) -> int:
    """``Qx + Qw - Qb``: left shift bringing a bias to the accumulator's Q (``Qx + Qw``)."""
    return q_x + q_w - q_b


def out_shift(q_x: int, q_w: int, q_y: int) -> int:
    """``Qx + Qw - Qy``: right shift bringing the accumulator to the output's Q."""
    return q_x + q_w - q_y


def nn_round(out_shift) -> np.ndarray:
    """CMSIS ``NN_ROUND(out_shift)``: ``1 << (out_shift - 1)``, and 0 when ``out_shift <= 0``.

    Added before an arithmetic right shift it rounds half up (towards +inf on ties).
    """
    s = _i64(out_shift)
    return np.where(s > 0, np.int64(1) << np.clip(s - 1, 0, 62), 0)


def saturate(x, bits: int) -> np.ndarray:
    """CMSIS ``__SSAT(x, bits)``: clamp to ``[-2^(bits-1), 2^(bits-1)-1]``, as int8/int16/int32."""
    dtype = {8: np.int8, 16: np.int16, 32: np.int32}[bits]
    return np.clip(x, -(1 << (bits - 1)), (1 << (bits - 1)) - 1).astype(dtype)


def shift_and_saturate(acc, out_shift, bits: int) -> np.ndarray:
    """``__SSAT((acc + NN_ROUND(out_shift)) >> out_shift, bits)`` on a 32-bit accumulator.

    ``acc`` excludes the rounding constant, which is added here; the sum is wrapped to int32 as
    the kernel's ``q31_t`` accumulator would. A negative ``out_shift`` (the output has more
    fractional bits than ``Qx + Qw``) is undefined in the C kernels; here it is an exact left
    shift followed by saturation, which is what a correct device kernel would compute.
    """
    s = _i64(out_shift)
    # NN_ROUND(s) for s >= 32 overflows the C kernel's int; no sane Q choice gets there.
    _check_shift(s, -63, 31, "Output shift")
    acc = (_i64(acc) + nn_round(s)).astype(np.int32)  # NumPy's integer cast wraps
    if s.size and s.min() < 0:
        # A left shift beyond 32 saturates any non-zero 32-bit value just as 32 does; capping it
        # keeps the int64 arithmetic in range.
        acc = np.left_shift(acc, np.clip(-s, 0, 32), dtype=np.int64)
    return saturate(acc >> np.maximum(s, 0).astype(np.int32), bits)


def align_shift(x, shift) -> np.ndarray:
    """``x`` moved from Q to Q + ``shift``: an exact left shift, or a rounding right shift.

    Used for ``bias << bias_shift`` and for aligning the Q of add/concat inputs. A negative
    shift drops bits with the scheme's one rounding rule, half up (``NN_ROUND``). Exact int64
    result; the caller wraps or checks it against its register width.
    """
    x, s = _i64(x), _i64(shift)
    _check_shift(s, -62, 31, "Q alignment shift")
    right = np.maximum(-s, 0)
    return ((x + nn_round(right)) >> right) << np.maximum(s, 0)


# A left shift this long saturates any non-zero q8/q16 code, and keeps the int64 result exact.
MAX_LEFT_SHIFT = 40


def q_shift(x, shift: int) -> np.ndarray:
    """Codes moved from Q to Q + ``shift`` for any scalar shift (int64): an exact left shift capped
    at ``MAX_LEFT_SHIFT``, or ``align_shift``'s half-up right shift capped at 62 bits."""
    x = np.asarray(x).astype(np.int64)
    if shift >= 0:
        return x << min(shift, MAX_LEFT_SHIFT)
    return align_shift(x, max(shift, -62))


# --- s8 softmax: gemmlowp fixed-point math and TFLite's softmax scaling ----------------------
#
# gemmlowp ``FixedPoint<int32, IntegerBits>`` values are carried as their raw int32 (held in
# int64 arrays): ``real = raw * 2**(IntegerBits - 31)``. A product of two fixed-point values is
# ``saturating_rounding_doubling_high_mul`` of the raws (the integer bits add up); gemmlowp's
# ``+``/``-`` are plain int32 additions, wrapped here where a result leaves the function.

_F0_ONE = INT32_MAX  # FixedPoint<int32, 0>::One(): 1.0 is not representable, the largest raw is


def rounding_half_sum(a, b) -> np.ndarray:
    """gemmlowp ``RoundingHalfSum`` (int32): ``(a + b) / 2`` rounded half away from zero."""
    s = _i64(a) + _i64(b)
    return np.where(s >= 0, (s + 1) >> 1, -((1 - s) >> 1))


def saturating_rounding_multiply_by_pot(x, exponent: int) -> np.ndarray:
    """gemmlowp ``SaturatingRoundingMultiplyByPOT<exponent>`` (int32, int64 out).

    A positive exponent is a left shift saturating to int32 beyond ``+-(2**(31-exponent) - 1)``;
    a negative one is ``RoundingDivideByPOT(x, -exponent)``.
    """
    x = _i64(x)
    if exponent == 0:
        return x
    if exponent < 0:
        return rounding_divide_by_pot(x, -exponent)
    threshold = (1 << (31 - exponent)) - 1
    y = np.where(x > threshold, INT32_MAX, x << exponent)
    return np.where(x < -threshold, INT32_MIN, y)


def rescale(x, src_integer_bits: int, dst_integer_bits: int) -> np.ndarray:
    """gemmlowp ``Rescale<dst>`` of a ``FixedPoint<int32, src>`` raw: the same real value with
    ``dst`` integer bits (rounding when bits are dropped, saturating when the range shrinks)."""
    return saturating_rounding_multiply_by_pot(x, src_integer_bits - dst_integer_bits)


def exp_on_interval_between_negative_one_quarter_and_0_excl(a) -> np.ndarray:
    """gemmlowp: ``exp(a)`` for a ``FixedPoint<int32, 0>`` ``a`` in [-1/4, 0) (raw in and out).

    A 4th-order Taylor expansion around -1/8 with gemmlowp's constants (``exp(-1/8)`` is
    1895147668, ``1/3`` is 715827883 in Q0.31).
    """
    srdhm = saturating_rounding_doubling_high_mul
    constant_term, constant_1_over_3 = 1895147668, 715827883
    x = _i64(a) + (1 << 28)  # a + 1/8
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    x4_over_4 = saturating_rounding_multiply_by_pot(x4, -2)
    poly = saturating_rounding_multiply_by_pot(srdhm(x4_over_4 + x3, constant_1_over_3) + x2, -1)
    return wrap_int32(constant_term + srdhm(constant_term, x + poly))


# exp(-2**k) in Q0.31 for the barrel shifter of exp_on_negative_values, k = -2 .. 4.
_EXP_BARREL = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308),
               (2, 39332535), (3, 720401), (4, 242))


def exp_on_negative_values(a, integer_bits: int) -> np.ndarray:
    """gemmlowp ``exp_on_negative_values``: ``exp(a)`` for ``a <= 0`` given as the raw of a
    ``FixedPoint<int32, integer_bits>``; the result is a ``FixedPoint<int32, 0>`` raw.

    ``a`` is split into ``-1/4 < (a mod 1/4) - 1/4 <= 0``, evaluated by the Taylor expansion,
    and the remaining multiple of 1/4 applied bit by bit as products by ``exp(-2**k)``; inputs
    below -32 give 0 (when ``integer_bits > 5``) and 0 gives ``One()``.
    """
    a = _i64(a)
    frac_bits = 31 - integer_bits
    one_quarter = 1 << (frac_bits - 2)
    a_mod_quarter_minus_one_quarter = (a & (one_quarter - 1)) - one_quarter
    result = exp_on_interval_between_negative_one_quarter_and_0_excl(
        rescale(a_mod_quarter_minus_one_quarter, integer_bits, 0))
    remainder = wrap_int32(a_mod_quarter_minus_one_quarter - a)
    for exponent, multiplier in _EXP_BARREL:
        if integer_bits > exponent:
            bit = (remainder & (1 << (frac_bits + exponent))) != 0
            result = np.where(bit, saturating_rounding_doubling_high_mul(result, multiplier), result)
    if integer_bits > 5:
        clamp = -(1 << (36 - integer_bits))  # -32.0
        result = np.where(a < clamp, 0, result)
    return np.where(a == 0, _F0_ONE, result)


def one_over_one_plus_x_for_x_in_0_1(a) -> np.ndarray:
    """gemmlowp: ``1 / (1 + a)`` for a ``FixedPoint<int32, 0>`` ``a`` in [0, 1) (raw in and out).

    Newton-Raphson division on ``(1 + a) / 2`` in ``FixedPoint<int32, 2>``, three iterations
    from gemmlowp's ``48/17 - 32/17 * d`` start.
    """
    srdhm = saturating_rounding_doubling_high_mul
    half_denominator = rounding_half_sum(a, _F0_ONE)
    f2_one = 1 << 29
    x = 1515870810 + srdhm(half_denominator, -1010580540)  # 48/17 - 32/17 * d, in Q2.29
    for _ in range(3):
        one_minus_half_denominator_times_x = f2_one - srdhm(half_denominator, x)
        x = wrap_int32(x + rescale(srdhm(x, one_minus_half_denominator_times_x), 4, 2))
    return rescale(x, 1, 0)  # ExactMulByPot<-1> (Q2.29 read as Q1.30), then Rescale<0>


def count_leading_zeros_u32(x) -> np.ndarray:
    """TFLite ``CountLeadingZeros`` of ``x`` read as uint32 (32 for 0)."""
    u = _i64(x) & 0xFFFFFFFF
    _, bit_length = np.frexp(u.astype(np.float64))  # exact: u < 2**53
    return 32 - bit_length.astype(np.int64)


def get_reciprocal(x, x_integer_digits: int) -> tuple[np.ndarray, np.ndarray]:
    """TFLite ``GetReciprocal``: ``1 / x`` for a positive ``FixedPoint<int32, x_integer_digits>``.

    Returns ``(raw, num_bits_over_unit)``: ``raw`` is a ``FixedPoint<int32, 0>`` in [1/2, 1]
    and ``1/x = raw * 2**-(31 + num_bits_over_unit)`` in the raw's units. ``x`` is read as
    uint32, as TFLite's ``static_cast<uint32_t>`` does.
    """
    u = _i64(x) & 0xFFFFFFFF
    headroom_plus_one = count_leading_zeros_u32(u)
    num_bits_over_unit = x_integer_digits - headroom_plus_one
    shifted_sum_minus_one = wrap_int32(((u << headroom_plus_one) & 0xFFFFFFFF) - (1 << 31))
    return one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one), num_bits_over_unit


def multiply_by_quantized_multiplier_greater_than_one(x, multiplier, left_shift) -> np.ndarray:
    """TFLite ``MultiplyByQuantizedMultiplierGreaterThanOne``: ``SRDHM(x * 2**left_shift, m)``
    with the shifted value held in int32 (wrapped, as C's multiplication would)."""
    shifted = wrap_int32(_i64(x) << _i64(left_shift))
    return saturating_rounding_doubling_high_mul(shifted, multiplier)


def preprocess_softmax_scaling(beta: float, input_scale: float, input_integer_bits: int) -> tuple[int, int]:
    """TFLite ``PreprocessSoftmaxScaling`` (double-rounding build): ``(multiplier, left_shift)``.

    The real multiplier ``beta * input_scale * 2**(31 - input_integer_bits)`` (capped at
    ``2**31 - 1``) turns an input difference into a ``FixedPoint<int32, input_integer_bits>``
    raw; it is quantized like ``QuantizeMultiplierGreaterThanOne``. Unlike ``quantize_multiplier``
    this allows a left shift of 31 (an input scale >= 16): the matching ``calculate_input_radius``
    is then 0, so only the row maximum (difference 0) is ever shifted.
    """
    real = min(float(beta) * float(input_scale) * float(1 << (31 - input_integer_bits)),
               float((1 << 31) - 1))
    if not real > 1.0:
        raise CalibrationError(
            "Softmax input scaling needs beta * input_scale * 2**(31 - integer_bits) > 1 "
            f"(TFLite QuantizeMultiplierGreaterThanOne). Received input_scale={input_scale!r}."
        )
    mantissa, shift = np.frexp(real)
    q = int(round_half_away(np.ldexp(mantissa, 31)))  # TfLiteRound
    if q == 1 << 31:
        q //= 2
        shift += 1
    return q, int(shift)


def calculate_input_radius(input_integer_bits: int, input_left_shift: int,
                           total_signed_bits: int = 31) -> int:
    """TFLite ``CalculateInputRadius``: the largest input difference whose rescaled value still
    fits ``FixedPoint<int32, input_integer_bits>``, ``floor((2**ib - 1) * 2**(total - ib) /
    2**input_left_shift)`` with ``ib = input_integer_bits``, ``total = total_signed_bits``."""
    max_input_rescaled = (((1 << input_integer_bits) - 1) * (1 << (total_signed_bits - input_integer_bits))
                          / (1 << input_left_shift))
    return int(np.floor(max_input_rescaled))
