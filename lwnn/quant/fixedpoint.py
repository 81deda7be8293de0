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

import numpy as np

from lwnn.errors import CalibrationError

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
    q_fixed = np.copysign(np.floor(np.abs(q) + 0.5), q).astype(np.int64)
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
