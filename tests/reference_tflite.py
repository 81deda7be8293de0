"""Scalar references for TFLite/gemmlowp integer arithmetic: Python ints with C semantics,
transliterated from gemmlowp ``fixedpoint.h`` and TFLite ``quantization_util.cc`` /
``common.h``. They use none of lwnn's functions; test_fixedpoint and test_s8 share them."""

from __future__ import annotations

import math
from fractions import Fraction

I32_MIN, I32_MAX = -(2**31), 2**31 - 1


def wrap32(v: int) -> int:
    return (v + 2**31) % 2**32 - 2**31


def c_div(a: int, b: int) -> int:
    """C integer division (truncates towards zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def ref_srdhm(a: int, b: int) -> int:
    """gemmlowp SaturatingRoundingDoublingHighMul(int32, int32)."""
    if a == b == I32_MIN:
        return I32_MAX
    ab = a * b
    nudge = 2**30 if ab >= 0 else 1 - 2**30
    return wrap32(c_div(ab + nudge, 2**31))


def ref_rdbpot(x: int, exponent: int) -> int:
    """gemmlowp RoundingDivideByPOT."""
    assert 0 <= exponent <= 31
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


def ref_quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite QuantizeMultiplier (double-rounding build)."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    v = Fraction(q) * 2**31
    q_fixed = math.floor(v + Fraction(1, 2))  # TfLiteRound of a positive value
    if q_fixed == 2**31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        shift, q_fixed = 0, 0
    return q_fixed, shift


def ref_mbqm(x: int, multiplier: int, shift: int) -> int:
    """TFLite MultiplyByQuantizedMultiplier (double rounding)."""
    left = shift if shift > 0 else 0
    right = 0 if shift > 0 else -shift
    return ref_rdbpot(ref_srdhm(wrap32(x * (1 << left)), multiplier), right)
