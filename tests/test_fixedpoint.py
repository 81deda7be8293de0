"""Fixed-point arithmetic and quantization parameters.

The vectorised functions of ``lwnn.numerics.fixedpoint`` are checked bit for bit against scalar
references written below with Python ints, transliterated from the published C code
(gemmlowp ``fixedpoint.h``, TFLite ``quantization_util.cc`` / ``common.h``, CMSIS-NN legacy
``arm_fully_connected_q7``/``q15`` and ``arm_nnsupportfunctions.h``). The references use none of
lwnn's functions. onnxruntime's QLinearConv/QLinearMatMul check the s8 requantization pipeline
end to end (within 1 LSB: onnxruntime requantizes in float).
"""

from __future__ import annotations

import json
import math
from fractions import Fraction

import numpy as np
import pytest
from reference_tflite import ref_mbqm, ref_quantize_multiplier, ref_rdbpot, ref_srdhm, wrap32

from lwnn import CalibrationError, FeedError
from lwnn.numerics import fixedpoint as fp
from lwnn.numerics.params import (
    AffineParams,
    QFormat,
    affine_from_range,
    bias_params,
    qformat_from_absmax,
    symmetric_from_absmax,
)

I32_MIN, I32_MAX = -(2**31), 2**31 - 1
N_RANDOM = 50_000  # random cases per property, on top of the edge cases


# --- scalar references (Python ints, C semantics) --------------------------------------------




def ssat(v: int, bits: int) -> int:
    """CMSIS __SSAT."""
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return min(max(v, lo), hi)




def ref_round_half_away(v: Fraction) -> int:
    """std::round."""
    r = math.floor(abs(v) + Fraction(1, 2))
    return r if v >= 0 else -r




def ref_requantize_s8(acc, multiplier, shift, zp, act_min, act_max) -> int:
    return min(max(ref_mbqm(acc, multiplier, shift) + zp, act_min), act_max)


def ref_choose_quantization_params(rmin: float, rmax: float, qmin=-128, qmax=127) -> tuple[float, int]:
    """TFLite ChooseQuantizationParams (quantization_util.h), in double."""
    rmin, rmax = min(rmin, 0.0), max(rmax, 0.0)
    scale = (rmax - rmin) / (qmax - qmin)
    zp_from_min, zp_from_max = qmin - rmin / scale, qmax - rmax / scale
    zp_from_min_error = abs(qmin) + abs(rmin / scale)
    zp_from_max_error = abs(qmax) + abs(rmax / scale)
    zp = zp_from_min if zp_from_min_error < zp_from_max_error else zp_from_max
    if zp < qmin:
        return scale, qmin
    if zp > qmax:
        return scale, qmax
    return scale, ref_round_half_away(Fraction(zp))


def ref_nn_round(out_shift: int) -> int:
    """CMSIS NN_ROUND (ARM_NN_TRUNCATE not defined); out_shift <= 0 would be UB in C: 0."""
    return 1 << (out_shift - 1) if out_shift > 0 else 0


def ref_fully_connected_q(x, w, bias, bias_shift, out_shift, bits):
    """CMSIS-NN legacy arm_fully_connected_q7/q15 (reference C path), plus lwnn's documented
    extensions where C is undefined: a negative bias_shift is a half-up rounding right shift of
    the bias, a negative out_shift an exact left shift before saturation."""
    out = []
    for j in range(len(w)):
        if bias_shift >= 0:
            b = bias[j] << bias_shift
        else:
            b = (bias[j] + (1 << (-bias_shift - 1))) >> -bias_shift
        acc = wrap32(b + ref_nn_round(out_shift))  # q31_t ip_out
        for i in range(len(x)):
            acc = wrap32(acc + x[i] * w[j][i])
        out.append(ssat(acc >> out_shift if out_shift >= 0 else acc << -out_shift, bits))
    return out


# --- value generators -------------------------------------------------------------------------


RNG_SEED = 20240611  # seed of the shared ``rng`` fixture (conftest.py) in this module


EDGES = [I32_MIN, I32_MIN + 1, -(2**30), -(2**30) - 1, -65536, -257, -1, 0, 1, 2, 255, 2**16,
         2**30 - 1, 2**30, 2**30 + 1, I32_MAX - 1, I32_MAX]


def int32s(rng, n: int) -> np.ndarray:
    """Uniform int32s, small ints and edge values, shuffled."""
    parts = [
        rng.integers(I32_MIN, I32_MAX, n // 2, endpoint=True),
        rng.integers(-5000, 5000, n // 4),
        np.left_shift(rng.choice([-1, 1], n - n // 2 - n // 4), rng.integers(0, 31, n - n // 2 - n // 4)),
    ]
    values = np.concatenate(parts + [np.array(EDGES)])
    return rng.permutation(values).astype(np.int64)


def real_multipliers(rng, n: int) -> np.ndarray:
    """Requantization multipliers: mostly in (0, 1), some > 1, and frexp edge cases."""
    reals = 10.0 ** rng.uniform(-7, 1.5, n)
    edges = [0.0, 2.0**-32, 2.0**-31, 0.5, 0.5 - 2.0**-34, 1.0 - 2.0**-33, 1.0 - 2.0**-40, 1.0,
             1.5, 2.0**29, 1e-12, 0.999999999,
             0.5 + 2.0**-32, 0.75 + 2.0**-32, 0.5 + 3 * 2.0**-32]  # mantissa * 2**31 ends in .5
    return np.concatenate([reals, edges])


# --- s8: TFLite / gemmlowp --------------------------------------------------------------------


def test_quantize_multiplier_matches_tflite(rng):
    reals = real_multipliers(rng, N_RANDOM)
    m, s = fp.quantize_multiplier(reals)
    assert m.dtype == np.int32 and s.dtype == np.int32 and m.shape == reals.shape
    for real, mi, si in zip(reals.tolist(), m.tolist(), s.tolist()):
        assert (mi, si) == ref_quantize_multiplier(real), real
    # The 2**31 rounding edge: the mantissa rounds up to 1.0, so it is halved and the shift bumped.
    assert ref_quantize_multiplier(1.0 - 2.0**-33) == (2**30, 1)
    assert tuple(map(int, fp.quantize_multiplier(1.0 - 2.0**-33))) == (2**30, 1)
    # Relative error of the Q31 mantissa is at most 2**-31 (where not flushed to zero).
    ok = m > 0
    approx = m[ok].astype(np.float64) * np.exp2(s[ok].astype(np.float64) - 31)
    assert np.all(np.abs(approx / reals[ok] - 1) <= 2.0**-30)


def test_quantize_multiplier_rejects_bad_values():
    for bad in (np.nan, np.inf, -0.5, 2.0**31):
        with pytest.raises(CalibrationError, match="Received"):
            fp.quantize_multiplier(np.array([0.25, bad]))


def test_srdhm_matches_gemmlowp(rng):
    a = int32s(rng, N_RANDOM)
    b = int32s(rng, N_RANDOM)[: a.size]
    b = np.resize(b, a.size)
    # Every edge value against every edge value, and exact ties (products of powers of two).
    e = np.array(EDGES)
    ties = np.array([1, -1, 3, -3, 5, -7]) * (1 << 29)
    a = np.concatenate([a, np.repeat(e, e.size), np.repeat([1, 2, -1, -2, 3], ties.size)])
    b = np.concatenate([b, np.tile(e, e.size), np.tile(ties, 5)])
    got = fp.saturating_rounding_doubling_high_mul(a, b)
    ref = [ref_srdhm(x, y) for x, y in zip(a.tolist(), b.tolist())]
    np.testing.assert_array_equal(got, ref)
    assert int(fp.saturating_rounding_doubling_high_mul(I32_MIN, I32_MIN)) == I32_MAX
    # The rounding this amounts to: nearest, ties towards +inf (so -0.5 -> 0, +0.5 -> 1).
    assert fp.saturating_rounding_doubling_high_mul([1, -1], [2**30, 2**30]).tolist() == [1, 0]
    exact = [math.floor(Fraction(x * y, 2**31) + Fraction(1, 2)) for x, y in zip(a.tolist(), b.tolist())]
    np.testing.assert_array_equal(got, np.minimum(exact, I32_MAX))


def test_rounding_divide_by_pot_matches_gemmlowp(rng):
    x = int32s(rng, N_RANDOM)
    e = rng.integers(0, 32, x.size)
    # Exact halves: k * 2**e +- 2**(e-1), both signs, every exponent.
    exps = np.arange(1, 32)
    k = rng.integers(-50, 50, exps.size)
    halves = np.concatenate([k * (1 << exps) + (1 << (exps - 1)), k * (1 << exps) - (1 << (exps - 1))])
    halves = np.clip(halves, I32_MIN, I32_MAX)
    x = np.concatenate([x, halves, np.repeat(EDGES, 32)])
    e = np.concatenate([e, exps, exps, np.tile(np.arange(32), len(EDGES))])
    got = fp.rounding_divide_by_pot(x, e)
    ref = [ref_rdbpot(v, s) for v, s in zip(x.tolist(), e.tolist())]
    np.testing.assert_array_equal(got, ref)
    # Ties away from zero; and a scalar exponent broadcasts.
    assert fp.rounding_divide_by_pot([3, -3, 5, -5, -4], 1).tolist() == [2, -2, 3, -3, -2]
    with pytest.raises(CalibrationError, match="exponent"):
        fp.rounding_divide_by_pot(x, 32)


def test_multiply_by_quantized_multiplier_matches_tflite(rng):
    acc = int32s(rng, N_RANDOM)
    m, s = fp.quantize_multiplier(real_multipliers(rng, acc.size)[: acc.size])
    got = fp.multiply_by_quantized_multiplier(acc, m, s)
    ref = [ref_mbqm(a, mi, si) for a, mi, si in zip(acc.tolist(), m.tolist(), s.tolist())]
    np.testing.assert_array_equal(got, ref)
    assert (s > 0).sum() > 100 and (s < 0).sum() > 100  # both shift directions exercised
    # Every shift from -31 to 30 with one mantissa, on every edge accumulator.
    shifts = np.arange(-31, 31)
    edge = np.array(EDGES)[:, None]
    got = fp.multiply_by_quantized_multiplier(edge, 1518500250, shifts[None, :])
    ref = [[ref_mbqm(a, 1518500250, sh) for sh in shifts.tolist()] for a in EDGES]
    np.testing.assert_array_equal(got, ref)


def test_requantize_s8_per_channel(rng):
    """NCHW accumulators with one multiplier/shift/zero point per channel, as a conv output."""
    acc = rng.integers(-(2**20), 2**20, (3, 7, 4, 5))
    acc[0, 0, 0, :5] = EDGES[:5]
    reals = 10.0 ** rng.uniform(-6, 0.7, 7)
    m, s = fp.quantize_multiplier(reals)
    zp, act_min = -5, -5  # fused ReLU: clamp at the output zero point
    got = fp.requantize_s8(acc, fp.along_axis(m, 1, 4), fp.along_axis(s, 1, 4), zp, act_min, 127)
    assert got.dtype == np.int8
    ref = np.empty_like(acc)
    for idx in np.ndindex(acc.shape):
        c = idx[1]
        ref[idx] = ref_requantize_s8(int(acc[idx]), int(m[c]), int(s[c]), zp, act_min, 127)
    np.testing.assert_array_equal(got, ref)
    # Against the real-valued product: within one LSB wherever it is not clamped.
    exact = np.round(acc * fp.along_axis(reals, 1, 4)) + zp
    inside = (exact > act_min) & (exact < 127)
    assert np.max(np.abs(got[inside] - exact[inside])) <= 1


@pytest.mark.parametrize("with_bias", [False, True], ids=["no_bias", "bias"])
@pytest.mark.parametrize("shift_kind", ["right", "with_zero", "all_zero", "tiny"])
def test_requantize_s8_in_range_equals_the_scalar_reference(rng, shift_kind, with_bias):
    """The fast path (int32-range accumulators, no left shift), with a per-channel bias and the
    zero point folded into its constants, against the scalar TFLite reference: ties of the
    rounding shift, channels whose exponent is 0, and exponents beyond 23 (where the zero point
    is added after the shift instead)."""
    reals = 10.0 ** rng.uniform(-6, -0.31, 6)  # multipliers < 0.5: exponent >= 1
    if shift_kind in ("with_zero", "all_zero"):  # multipliers in [0.5, 1): exponent 0
        pick = slice(None, None, 2) if shift_kind == "with_zero" else slice(None)
        reals[pick] = rng.uniform(0.5, 0.99, 6)[pick]
    elif shift_kind == "tiny":
        reals[::2] = 10.0 ** rng.uniform(-9, -8, 3)  # exponent 27..30
    m, s = fp.quantize_multiplier(reals)
    assert s.max() <= 0 and (shift_kind in ("right", "tiny")) == (s.max() < 0)
    assert (shift_kind == "tiny") == (-s.min() > 23)
    bias = rng.integers(-(2**24), 2**24, 6) if with_bias else np.zeros(6, np.int64)
    acc = rng.integers(-(2**31) + 2**24, 2**31 - 2**24, (2, 6, 8, 8))  # acc + bias inside int32
    acc[0, :, :4, :] = rng.integers(-2000, 2000, (6, 4, 8))
    acc[1, :, 1, :2] = [fp.INT32_MIN + 2**24, fp.INT32_MAX - 2**24]
    zp = -7
    prepared = fp.InRangeMultiplier.of(fp.along_axis(m, 1, 4), fp.along_axis(s, 1, 4),
                                       fp.along_axis(bias, 1, 4) if with_bias else None, zp)
    assert prepared.zero_point == (0 if shift_kind == "tiny" else zp)
    got = fp.requantize_s8_in_range(acc.copy(), prepared, zp, -128, 127)
    ref = np.empty_like(acc)
    for idx in np.ndindex(acc.shape):
        c = idx[1]
        ref[idx] = ref_requantize_s8(int(acc[idx] + bias[c]), int(m[c]), int(s[c]), zp, -128, 127)
    np.testing.assert_array_equal(got, ref)


def test_wrap_and_overflow_count(rng):
    acc = rng.integers(-(2**40), 2**40, 1000)
    acc[:4] = [I32_MIN, I32_MAX, I32_MIN - 1, I32_MAX + 1]
    assert fp.int32_overflow(acc) == sum(not I32_MIN <= v <= I32_MAX for v in acc.tolist())
    assert fp.int32_overflow(acc.astype(np.float64)) == fp.int32_overflow(acc)
    assert fp.wrap_int32(acc).tolist() == [wrap32(v) for v in acc.tolist()]


# --- q8/q16: CMSIS-NN legacy ------------------------------------------------------------------


def test_nn_round_and_shifts():
    assert fp.nn_round(np.arange(-3, 32)).tolist() == [ref_nn_round(s) for s in range(-3, 32)]
    assert fp.bias_shift(4, 7, 6) == 5 and fp.out_shift(4, 7, 5) == 6
    assert fp.out_shift(1, 2, 5) == -2  # the output needs more fraction bits than the product has


@pytest.mark.parametrize("bits", [8, 16])
def test_shift_and_saturate_matches_cmsis(rng, bits):
    acc = int32s(rng, N_RANDOM)
    shift = rng.integers(-8, 32, acc.size)
    halves = np.arange(1, 32)
    acc = np.concatenate([acc, (1 << halves) * 3 // 2 >> 1, -((1 << halves) >> 1), np.repeat(EDGES, 40)])
    shift = np.concatenate([shift, halves, halves, np.tile(np.arange(-8, 32), len(EDGES))])
    got = fp.shift_and_saturate(acc, shift, bits)
    assert got.dtype == (np.int8 if bits == 8 else np.int16)
    ref = []
    for a, s in zip(acc.tolist(), shift.tolist()):
        v = wrap32(a + ref_nn_round(s))
        ref.append(ssat(v >> s if s >= 0 else v << -s, bits))
    np.testing.assert_array_equal(got, ref)
    # Half up: -2.5 -> -2, 2.5 -> 3 (in units of 2**-1).
    assert fp.shift_and_saturate([-5, 5, -3, 3], 1, bits).tolist() == [-2, 3, -1, 2]
    with pytest.raises(CalibrationError, match="Output shift"):
        fp.shift_and_saturate(acc, 32, bits)


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("bias_shift,out_shift", [(0, 0), (3, 7), (9, 15), (-2, 4), (2, -3), (0, 31)])
def test_fully_connected_q_matches_cmsis(rng, bits, bias_shift, out_shift):
    """The vectorised composition a q7/q15 dense layer uses, against a loop over the C kernel."""
    lim = 2 ** (bits - 1)
    n_in, n_out, batch = 37, 11, 6
    x = rng.integers(-lim, lim, (batch, n_in))
    w = rng.integers(-lim, lim, (n_out, n_in))
    b = rng.integers(-lim, lim, n_out)
    x[0], w[0] = lim - 1, lim - 1  # saturating (and for q15, int32-overflowing) rows
    x[1], w[1] = -lim, -lim
    # Exact float64 sums, as a BLAS path computes them, then the device's 32-bit view.
    acc = fp.align_shift(b, bias_shift) + (x.astype(np.float64) @ w.T.astype(np.float64)).astype(np.int64)
    got = fp.shift_and_saturate(acc, out_shift, bits)
    ref = [ref_fully_connected_q(row, w.tolist(), b.tolist(), bias_shift, out_shift, bits)
           for row in x.tolist()]
    np.testing.assert_array_equal(got, ref)
    if bits == 16:
        assert fp.int32_overflow(acc) > 0  # 37 products of 2**30 overflow int32, and we see it


def test_align_shift_rounds_half_up():
    assert fp.align_shift([5, -5, 7, -7, 6], -1).tolist() == [3, -2, 4, -3, 3]
    assert fp.align_shift([3, -3], 4).tolist() == [48, -48]
    assert fp.align_shift(np.array([[1], [-1]]), np.array([2, -1])).tolist() == [[4, 1], [-4, 0]]


# --- parameters -------------------------------------------------------------------------------


def test_affine_from_range_nudges_zero_point(rng):
    p = affine_from_range(-0.3, 1.7)
    # scale = 2/255; the zero point from the minimum, -128 + 0.3 * 127.5 = -89.75, rounds to -90.
    assert float(p.scale) == np.float32(2 / 255) and int(p.zero_point) == -90
    assert p.quantize(np.float32(0)).item() == -90 and p.dequantize(np.int8(-90)).item() == 0.0
    assert int(affine_from_range(0.5, 2.0).zero_point) == -128  # range widened down to 0
    assert int(affine_from_range(-3.0, -1.0).zero_point) == 127  # and up to 0
    for _ in range(500):
        lo, hi = np.sort(rng.normal(0, 10, 2))
        p = affine_from_range(lo, hi)
        scale, zp = ref_choose_quantization_params(float(lo), float(hi))
        assert float(p.scale) == np.float32(scale) and int(p.zero_point) == zp
        assert p.dequantize(p.quantize(0.0)) == 0.0  # 0 is exactly representable
        assert float(p.scale) == pytest.approx((max(hi, 0) - min(lo, 0)) / 255, rel=1e-6)
    zero = affine_from_range(0.0, 0.0)
    assert float(zero.scale) == 1.0 and int(zero.zero_point) == 0


def test_affine_round_trip_and_saturation(rng):
    p = affine_from_range(-2.0, 6.0)
    x = rng.uniform(-2.0, 6.0, 10_000).astype(np.float32)
    q = p.quantize(x)
    assert q.dtype == np.int8
    assert np.max(np.abs(p.dequantize(q) - x)) <= float(p.scale) / 2 * (1 + 1e-6)
    assert p.quantize(np.array([-100.0, 100.0])).tolist() == [-128, 127]
    # Ties round away from zero (TFLite std::round), not to even.
    unit = AffineParams(np.float32(1.0), 0)
    assert unit.quantize([0.5, -0.5, 1.5, -2.5, 2.5]).tolist() == [1, -1, 2, -3, 3]
    below_half = np.nextafter(0.5, 0)  # 0.49999999999999994 + 0.5 rounds to 1.0 in float64
    assert unit.quantize([below_half, -below_half]).tolist() == [0, 0]
    with pytest.raises(FeedError, match="NaN"):
        p.quantize(np.array([1.0, np.nan]))


def test_symmetric_per_channel_weights(rng):
    w = rng.normal(0, 1, (16, 3, 3, 3)) * rng.uniform(0.01, 5, (16, 1, 1, 1))
    w[5] = 0.0  # a dead channel
    absmax = np.abs(w).max(axis=(1, 2, 3))
    p = symmetric_from_absmax(absmax, axis=0)
    assert p.per_channel and p.narrow_range and p.qmin == -127 and np.all(p.zero_point == 0)
    q = p.quantize(w)
    assert q.min() >= -127 and q.max() <= 127
    live = np.arange(16) != 5
    assert np.all(np.abs(q[live]).max(axis=(1, 2, 3)) == 127)  # each channel uses its full range
    err = np.abs(p.dequantize(q) - w).max(axis=(1, 2, 3))
    assert np.all(err <= p.scale * 0.5 * (1 + 1e-6))
    assert float(p.scale[5]) == 1.0 and np.all(q[5] == 0)
    # Along another axis (a [K, N] MatMul weight, per output column).
    p1 = symmetric_from_absmax(np.abs(w[:, 0, 0, :].T).max(axis=0), axis=1)
    assert p1.quantize(w[:, 0, 0, :].T).shape == (3, 16)
    with pytest.raises(CalibrationError, match="16 channels along axis 0"):
        p.quantize(w[:8])


def test_bias_params():
    x = affine_from_range(-1.0, 3.0)
    w = symmetric_from_absmax(np.array([0.5, 2.0, 8.0]), axis=0)
    b = bias_params(x, w)
    assert b.bits == 32 and b.dtype == np.int32 and b.axis == 0 and np.all(b.zero_point == 0)
    np.testing.assert_array_equal(b.scale, x.scale * w.scale)
    q = b.quantize(np.array([1.0, -1e12, 1e12]))
    assert q.dtype == np.int32 and q[1] == I32_MIN and q[2] == I32_MAX
    assert bias_params(x, symmetric_from_absmax(1.0)).axis is None


def test_activation_range():
    p = AffineParams(np.float32(0.05), -10)
    assert p.activation_range() == (-128, 127)
    assert p.activation_range(lo=0.0) == (-10, 127)  # ReLU clamps at the zero point
    assert p.activation_range(lo=0.0, hi=6.0) == (-10, 110)  # ReLU6: -10 + 6 / 0.05
    assert p.activation_range(lo=float("-inf"), hi=float("inf")) == (-128, 127)
    # In float32, as TFLite: 0.25 / float32(0.1) is 2.5 there (2.49999996 in float64), so it rounds
    # away to 3. The kernels clamp with these very bounds.
    assert AffineParams(0.1, 0).activation_range(hi=0.25) == (-128, 3)


def test_params_json_round_trip():
    ps = [affine_from_range(-0.37, 2.9), symmetric_from_absmax(np.array([0.1, 0.7]), axis=0),
          QFormat(-2, 16), QFormat(5)]
    for p in ps:
        d = json.loads(json.dumps(p.to_dict()))
        assert type(p).from_dict(d) == p
    assert "zero_point=" in repr(ps[0]) and "2 channels" in repr(ps[1])


def test_qformat():
    q = QFormat(frac_bits=4, bits=8)
    assert (q.qmin, q.qmax, q.step) == (-128, 127, 1 / 16)
    assert q.quantize([1.0, -1.0, 100.0, -100.0]).tolist() == [16, -16, 127, -128]
    # Half up, as NN_ROUND: -2.5 LSB -> -2, 2.5 LSB -> 3.
    assert QFormat(0).quantize([0.5, -0.5, 2.5, -2.5]).tolist() == [1, 0, 3, -2]
    below_half = np.nextafter(0.5, 0)
    assert QFormat(0).quantize([below_half, -0.5 - 2**-53]).tolist() == [0, -1]
    neg = QFormat(frac_bits=-2, bits=8)  # one LSB is 4.0
    assert neg.quantize([100.0, 1000.0, -6.0]).tolist() == [25, 127, -1]
    assert neg.dequantize(np.array([25], np.int8)).tolist() == [100.0]
    q16 = QFormat(12, 16)
    x = np.linspace(-7.9, 7.9, 1001)
    assert q16.quantize(x).dtype == np.int16
    assert np.max(np.abs(q16.dequantize(q16.quantize(x)) - x)) <= 2.0**-13


def test_qformat_from_absmax():
    assert qformat_from_absmax(3.0).frac_bits == 5  # ceil(log2 3) = 2 integer bits
    assert qformat_from_absmax(4.0).frac_bits == 5
    assert qformat_from_absmax(4.0 * (1 + 2**-52)).frac_bits == 4  # log2 would round this to 2
    assert qformat_from_absmax(1000.0).frac_bits == -3  # Q may be negative
    assert qformat_from_absmax(0.01, bits=16).frac_bits == 21
    assert qformat_from_absmax(0.0).frac_bits == 7


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: AffineParams(np.float32(0.0), 0), "finite and > 0"),
        (lambda: AffineParams(-1.0, 0), "finite and > 0"),
        (lambda: AffineParams(np.nan, 0), "finite and > 0"),
        (lambda: AffineParams(np.array([0.1, np.inf]), 0, axis=0), "channel 1"),
        (lambda: AffineParams(1e-50, 0), "finite and > 0"),  # 0 once stored as float32
        (lambda: AffineParams(0.1, 200), r"\[-128, 127\]"),
        (lambda: AffineParams(0.1, -128, narrow_range=True), r"\[-127, 127\]"),
        (lambda: AffineParams(0.1, 0.5), "integer"),
        (lambda: AffineParams(0.1, 0, bits=12), "one of"),
        (lambda: AffineParams(np.array([0.1, 0.2]), 0), "one scale"),
        (lambda: AffineParams(np.array([0.1, 0.2]), [0, 1, 2], axis=0), "one per channel"),
        (lambda: QFormat(3, bits=4), "one of"),
        (lambda: QFormat(1.5), "integer"),
        (lambda: affine_from_range(np.nan, 1.0, name="conv1"), "'conv1'.*finite"),
        (lambda: affine_from_range(2.0, 1.0), "must not exceed"),
        (lambda: symmetric_from_absmax(-1.0), ">= 0"),
        (lambda: qformat_from_absmax(np.inf, name="fc"), "'fc'"),
    ],
)
def test_calibration_errors(make, match):
    with pytest.raises(CalibrationError, match=match) as info:
        make()
    assert "Received" in str(info.value) or "must" in str(info.value)


# --- onnxruntime cross-check ------------------------------------------------------------------


def _ort_run(nodes, inits, feeds, out_shape, out_name="y"):
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    inputs = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
              for n, v in feeds.items()]
    outputs = [helper.make_tensor_value_info(out_name, TensorProto.INT8, out_shape)]
    graph = helper.make_graph(nodes, "g", inputs, outputs,
                              [numpy_helper.from_array(v, n) for n, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    onnx.checker.check_model(model)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)[0]


def _real_multiplier(s_in, s_w, s_out):
    # As TFLite's PopulateConvolutionQuantizationParams: float32 scales, product in double.
    return np.float64(s_in) * np.asarray(s_w, np.float64) / np.float64(s_out)


def test_qlinearconv_1x1_against_onnxruntime(rng):
    from onnx import helper

    diffs = []
    for _ in range(6):
        n, c, m, h, w = 2, int(rng.integers(4, 64)), int(rng.integers(2, 32)), 5, 6
        x_p = affine_from_range(-rng.uniform(0.1, 3), rng.uniform(0.1, 6))
        w_real = rng.normal(0, 1, (m, c, 1, 1)) * rng.uniform(0.05, 2, (m, 1, 1, 1))
        w_p = symmetric_from_absmax(np.abs(w_real).max(axis=(1, 2, 3)), axis=0)
        y_p = affine_from_range(-rng.uniform(0.5, 10), rng.uniform(0.5, 20))
        b_p = bias_params(x_p, w_p)
        xq = rng.integers(-128, 128, (n, c, h, w)).astype(np.int8)
        wq, bq = w_p.quantize(w_real), b_p.quantize(rng.normal(0, 2, m))
        inits = {"xs": x_p.scale, "xz": x_p.zero_point.astype(np.int8), "w": wq, "ws": w_p.scale,
                 "wz": w_p.zero_point.astype(np.int8), "ys": y_p.scale,
                 "yz": y_p.zero_point.astype(np.int8), "b": bq}
        node = helper.make_node("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz", "b"], ["y"])
        expected = _ort_run([node], inits, {"x": xq}, (n, m, h, w))
        # lwnn: exact int32 accumulate (float64 GEMM is exact here), then integer requantization.
        acc = np.einsum("mc,nchw->nmhw", wq[:, :, 0, 0].astype(np.float64),
                        xq.astype(np.float64) - int(x_p.zero_point)).astype(np.int64)
        acc += fp.along_axis(bq, 1, 4)
        assert fp.int32_overflow(acc) == 0
        mult, shift = fp.quantize_multiplier(_real_multiplier(x_p.scale, w_p.scale, y_p.scale))
        got = fp.requantize_s8(acc, fp.along_axis(mult, 1, 4), fp.along_axis(shift, 1, 4),
                               int(y_p.zero_point))
        diffs.append(np.abs(got.astype(np.int64) - expected))
    diffs = np.concatenate([d.ravel() for d in diffs])
    assert diffs.max() <= 1, f"max difference {diffs.max()} LSB"
    assert np.mean(diffs == 1) < 0.01  # float rounding disagrees only near ties


def test_qlinearmatmul_against_onnxruntime(rng):
    from onnx import helper

    for _ in range(4):
        k, n_out = int(rng.integers(8, 200)), int(rng.integers(2, 40))
        a_p = affine_from_range(-rng.uniform(0.1, 3), rng.uniform(0.1, 6))
        b_p = symmetric_from_absmax(rng.uniform(0.05, 2))
        y_p = affine_from_range(-rng.uniform(1, 30), rng.uniform(1, 30))
        aq = rng.integers(-128, 128, (9, k)).astype(np.int8)
        bq = rng.integers(-127, 128, (k, n_out)).astype(np.int8)
        inits = {"as": a_p.scale, "az": a_p.zero_point.astype(np.int8), "b": bq, "bs": b_p.scale,
                 "bz": np.int8(0), "ys": y_p.scale, "yz": y_p.zero_point.astype(np.int8)}
        node = helper.make_node("QLinearMatMul", ["a", "as", "az", "b", "bs", "bz", "ys", "yz"], ["y"])
        expected = _ort_run([node], inits, {"a": aq}, (9, n_out))
        acc = (aq.astype(np.int64) - int(a_p.zero_point)) @ bq.astype(np.int64)
        mult, shift = fp.quantize_multiplier(_real_multiplier(a_p.scale, b_p.scale, y_p.scale))
        got = fp.requantize_s8(acc, mult, shift, int(y_p.zero_point))
        assert np.abs(got.astype(np.int64) - expected).max() <= 1


@pytest.mark.parametrize("real", [0.25, 2.0**-5, 2.0**-20, 0.75 * 2.0**-3])
def test_multiply_in_range_on_exact_ties(real):
    """Power-of-two multipliers make every other value an exact tie of the rounding shift, on
    both signs: the fast form rounds them half away from zero, as gemmlowp."""
    m, s = fp.quantize_multiplier(np.array([real]))
    # Small multipliers: codes moved up by the exponent, still inside int32 (the precondition).
    acc = np.arange(-1000, 1001, dtype=np.int64) << (int(-s[0]) if real < 2.0**-10 else 0)
    got = fp.multiply_in_range(acc.copy(), fp.InRangeMultiplier.of(m, s))
    ref = [ref_mbqm(int(a), int(m[0]), int(s[0])) for a in acc]
    np.testing.assert_array_equal(got, ref)
