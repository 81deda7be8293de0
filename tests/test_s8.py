"""s8 kernels (``lwnn.backends.cpu_int.s8``) called directly, against two kinds of oracle.

* onnxruntime (CPUExecutionProvider) fed the same int8 tensors and parameters: QLinearConv,
  QLinearMatMul, and from the com.microsoft domain QGemm, QLinearAdd, QLinearMul,
  QLinearAveragePool, QLinearGlobalAveragePool, QLinearConcat, QLinearSigmoid, QLinearLeakyRelu,
  QLinearSoftmax; ops with no QLinear form (ConvTranspose, Sub, Relu/Clip, BatchNorm, the other
  table activations, data movement) run as DequantizeLinear -> float op -> QuantizeLinear with
  graph optimizations off. onnxruntime requantizes in float and rounds ties to even, so the
  criterion is at most 1 LSB everywhere; ``check_s8`` also bounds and records the fraction of
  outputs that are 1 LSB off (printed at the end of the module with ``pytest -s``).
* Independent integer references written here with Python ints, transliterated line by line
  from the C code of TFLite's int8 reference kernels and gemmlowp ``fixedpoint.h``, where lwnn
  is bit-exact by construction: conv/dense requantization, Add/Sub (20-bit headroom path), Mul,
  ReLU/ReLU6, average pooling, concatenation with rescaling, softmax and its fixed-point helpers.
  They use none of lwnn's fixed-point functions.

onnxruntime 1.32's CPU provider implements QLinearConv and QLinearMatMul for int8 activations
with int8 weights (and for uint8 activations with uint8 or int8 weights); int8 activations with
uint8 weights have no kernel. Per-channel weight scales are accepted in both.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from fractions import Fraction

import numpy as np
import pytest
from reference_tflite import (
    I32_MAX,
    I32_MIN,
    c_div,
    ref_mbqm,
    ref_quantize_multiplier,
    ref_rdbpot,
    ref_srdhm,
    wrap32,
)

from lwnn.backends.cpu import KERNELS as FLOAT_KERNELS
from lwnn.backends.cpu_int import IntCall, kernel_for
from lwnn.errors import CalibrationError
from lwnn.graph import Layer
from lwnn.numerics import fixedpoint as fp
from lwnn.numerics.params import AffineParams, affine_from_range, bias_params, symmetric_from_absmax
from lwnn.numerics.roles import input_roles
from lwnn.ops import conv as conv_ops
from lwnn.ops import elementwise as ew
from lwnn.ops import pool as pool_ops
from lwnn.ops import shape as shape_ops

# --- agreement criterion and off-by-one bookkeeping ------------------------------------------

OFF_BY_ONE: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # what -> [off by one, total]


def check_s8(what: str, got: np.ndarray, expected: np.ndarray, *, exact: bool = False) -> None:
    """lwnn's int8 output against an oracle's: same shape and dtype, at most 1 LSB apart
    (``exact``: bit-exact). The values 1 LSB off are tallied under ``what`` (see ``off_rate``)."""
    assert got.dtype == np.int8, f"{what}: lwnn returned {got.dtype}, expected int8"
    assert got.shape == expected.shape, f"{what}: shape {got.shape}, oracle {expected.shape}"
    diff = np.abs(got.astype(np.int64) - np.asarray(expected).astype(np.int64))
    worst = int(diff.max()) if diff.size else 0
    assert worst <= (0 if exact else 1), (
        f"{what}: {int(np.count_nonzero(diff > (0 if exact else 1)))} of {diff.size} values differ "
        f"(max {worst} LSB)")
    OFF_BY_ONE[what][0] += int(np.count_nonzero(diff))
    OFF_BY_ONE[what][1] += diff.size


def off_rate(what: str) -> float:
    """Fraction of the values checked so far under ``what`` that were 1 LSB off."""
    off, total = OFF_BY_ONE[what]
    return off / total


@pytest.fixture(scope="module", autouse=True)
def _off_by_one_table():
    yield
    if OFF_BY_ONE:
        print("\ns8 kernels: values 1 LSB away from the oracle")
        for what, (off, total) in sorted(OFF_BY_ONE.items()):
            print(f"  {what:<44} {off:>7} / {total:<8} {off / total:8.3%}")


# --- running lwnn kernels and onnxruntime ----------------------------------------------------


def run_s8(op, inputs: list, params: list, out: AffineParams):
    """Run the registered s8 kernel of ``op`` on raw inputs; returns (output, IntCall).

    Twice: with the input roles a quantized model gives (symmetric weights and int32 biases are
    constants: their derived values are memoised and the bias joins the requantization's
    constants), and with every input treated as computed at run time. Both must agree exactly,
    overflow counts included; the first is returned."""
    names = tuple(f"in{i}" if v is not None else "" for i, v in enumerate(inputs))
    layer = Layer("layer", op, names, ("y",))
    kernel = kernel_for("s8", layer)
    assert kernel is not None, f"no s8 kernel for {layer}"
    constants = {n for n, v, p in zip(names, inputs, params)
                 if n and (p is None or p.narrow_range or p.bits == 32)}
    roles = input_roles(layer, constants)
    call = IntCall(layer, list(inputs), list(params), [out], 8, roles=roles)
    got = kernel(call)
    plain = IntCall(layer, list(inputs), list(params), [out], 8)
    again = kernel(plain)
    np.testing.assert_array_equal(got, again)
    assert got.dtype == again.dtype and call.overflow == plain.overflow
    return got, call


def ort_run(nodes, feeds: dict, inits: dict, *, optimize: bool = True) -> np.ndarray:
    """Run an ONNX graph (output ``y``) on onnxruntime's CPU provider."""
    import onnx
    import onnxruntime as ort
    from onnx import helper, numpy_helper

    inputs = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
              for n, v in feeds.items()]
    graph = helper.make_graph(nodes, "g", inputs, [onnx.ValueInfoProto(name="y")],
                              [numpy_helper.from_array(np.asarray(v), n) for n, v in inits.items()])
    model = helper.make_model(graph, ir_version=10, opset_imports=[
        helper.make_opsetid("", 21), helper.make_opsetid("com.microsoft", 1)])
    options = ort.SessionOptions()
    if not optimize:  # keep DequantizeLinear -> op -> QuantizeLinear from being fused
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)[0]


def qparams(prefix: str, p: AffineParams) -> dict:
    """``{prefix}s``/``{prefix}z`` initializers (scale float32, zero point int8) of ``p``."""
    return {f"{prefix}s": np.asarray(p.scale, np.float32), f"{prefix}z": p.zero_point.astype(np.int8)}


def qinits(**params: AffineParams) -> dict:
    """``qparams`` of several prefixes: ``qinits(x=px, y=py)``."""
    return {k: v for prefix, p in params.items() for k, v in qparams(prefix, p).items()}


UNARY_IO = ["x", "xs", "xz", "ys", "yz"]  # QLinearSigmoid, QLinearAveragePool, ...
BINARY_IO = ["a", "as", "az", "b", "bs", "bz", "ys", "yz"]  # QLinearMatMul, QLinearAdd, ...


def ort_qdq(op_type: str, xs: list[np.ndarray], in_params: list[AffineParams], out: AffineParams,
            attrs: dict | None = None, extra_inits: dict | None = None, extra_inputs=()) -> np.ndarray:
    """DequantizeLinear each input -> float ``op_type`` -> QuantizeLinear, unoptimized."""
    from onnx import helper

    nodes, feeds, inits = [], {}, dict(extra_inits or {})
    for i, (x, p) in enumerate(zip(xs, in_params)):
        feeds[f"x{i}"] = x
        inits.update(qparams(f"p{i}", p))
        axis = {} if p.axis is None else {"axis": p.axis}
        nodes.append(helper.make_node("DequantizeLinear", [f"x{i}", f"p{i}s", f"p{i}z"], [f"f{i}"], **axis))
    ins = [f"f{i}" for i in range(len(xs))] + list(extra_inputs)
    nodes.append(helper.make_node(op_type, ins, ["r"], **(attrs or {})))
    inits.update(qparams("o", out))
    nodes.append(helper.make_node("QuantizeLinear", ["r", "os", "oz"], ["y"]))
    return ort_run(nodes, feeds, inits, optimize=False)


# --- scalar references: gemmlowp fixedpoint.h and TFLite, Python ints with C semantics -------




def ref_mbqm_smaller_than_one_exp(x: int, multiplier: int, left_shift: int) -> int:
    """TFLite MultiplyByQuantizedMultiplierSmallerThanOneExp."""
    return ref_rdbpot(ref_srdhm(x, multiplier), -left_shift)


def f32(v) -> np.float32:
    return np.float32(v)


def ref_round(v: float) -> int:
    """TfLiteRound / std::round: half away from zero (exact on floats)."""
    fr = Fraction(float(v))
    r = math.floor(abs(fr) + Fraction(1, 2))
    return r if fr >= 0 else -r


def vectorize(fn):
    return np.vectorize(fn, otypes=[np.int64])


# gemmlowp fixedpoint.h, FixedPoint<int32, k> as raw Python ints


def ref_rounding_half_sum(a: int, b: int) -> int:
    s = a + b
    sign = 1 if s >= 0 else -1
    return wrap32(c_div(s + sign, 2))


def ref_srmbpot(x: int, exponent: int) -> int:
    """SaturatingRoundingMultiplyByPOT<exponent>(int32)."""
    if exponent == 0:
        return x
    if exponent < 0:
        return ref_rdbpot(x, -exponent)
    threshold = (1 << (32 - 1 - exponent)) - 1
    if x > threshold:
        return I32_MAX
    if x < -threshold:
        return I32_MIN
    return wrap32(x * (1 << exponent))


def ref_rescale(x: int, src_bits: int, dst_bits: int) -> int:
    return ref_srmbpot(x, src_bits - dst_bits)


def ref_exp_quarter(a: int) -> int:
    """exp_on_interval_between_negative_one_quarter_and_0_excl(FixedPoint<int32, 0>)."""
    constant_term = 1895147668
    constant_1_over_3 = 715827883
    x = wrap32(a + (1 << 28))
    x2 = ref_srdhm(x, x)
    x3 = ref_srdhm(x2, x)
    x4 = ref_srdhm(x2, x2)
    x4_over_4 = ref_srmbpot(x4, -2)
    x4_over_24_plus_x3_over_6_plus_x2_over_2 = ref_srmbpot(
        wrap32(ref_srdhm(wrap32(x4_over_4 + x3), constant_1_over_3) + x2), -1)
    return wrap32(constant_term
                  + ref_srdhm(constant_term, wrap32(x + x4_over_24_plus_x3_over_6_plus_x2_over_2)))


def ref_exp_on_negative_values(a: int, integer_bits: int) -> int:
    """exp_on_negative_values(FixedPoint<int32, integer_bits>) -> FixedPoint<int32, 0>."""
    fractional_bits = 31 - integer_bits
    one_quarter = 1 << (fractional_bits - 2)  # ConstantPOT<-2>
    mask = one_quarter - 1
    a_mod_quarter_minus_one_quarter = wrap32((a & mask) - one_quarter)
    result = ref_exp_quarter(ref_rescale(a_mod_quarter_minus_one_quarter, integer_bits, 0))
    remainder = wrap32(a_mod_quarter_minus_one_quarter - a)
    barrel = [(-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308),
              (2, 39332535), (3, 720401), (4, 242)]
    for exponent, multiplier in barrel:
        if integer_bits > exponent:
            shift_amount = fractional_bits + exponent
            if remainder & (1 << shift_amount):
                result = ref_srdhm(result, multiplier)
    if integer_bits > 5:
        clamp = -(1 << (36 - integer_bits))
        if a < clamp:
            result = 0
    if a == 0:
        result = I32_MAX
    return result


def ref_one_over_one_plus_x(a: int) -> int:
    """one_over_one_plus_x_for_x_in_0_1(FixedPoint<int32, 0>)."""
    half_denominator = ref_rounding_half_sum(a, I32_MAX)
    constant_48_over_17 = 1515870810
    constant_neg_32_over_17 = -1010580540
    x = wrap32(constant_48_over_17 + ref_srdhm(half_denominator, constant_neg_32_over_17))
    for _ in range(3):
        half_denominator_times_x = ref_srdhm(half_denominator, x)
        one_minus_half_denominator_times_x = wrap32((1 << 29) - half_denominator_times_x)
        x = wrap32(x + ref_rescale(ref_srdhm(x, one_minus_half_denominator_times_x), 4, 2))
    return ref_rescale(x, 1, 0)  # Rescale<0>(ExactMulByPot<-1>(x))


def ref_clz(x: int) -> int:
    """CountLeadingZeros(uint32)."""
    u = x & 0xFFFFFFFF
    n = 0
    while n < 32 and not u & (1 << (31 - n)):
        n += 1
    return n


def ref_get_reciprocal(x: int, x_integer_digits: int) -> tuple[int, int]:
    headroom_plus_one = ref_clz(x)
    num_bits_over_unit = x_integer_digits - headroom_plus_one
    shifted_sum_minus_one = wrap32((((x & 0xFFFFFFFF) << headroom_plus_one) & 0xFFFFFFFF) - (1 << 31))
    return ref_one_over_one_plus_x(shifted_sum_minus_one), num_bits_over_unit


def ref_preprocess_softmax_scaling(beta: float, input_scale: float, input_integer_bits: int):
    real = min(beta * input_scale * (1 << (31 - input_integer_bits)), (1 << 31) - 1.0)
    assert real > 1.0
    return ref_quantize_multiplier(real)


def ref_calculate_input_radius(input_integer_bits: int, input_left_shift: int, total_signed_bits=31) -> int:
    max_input_rescaled = (1.0 * ((1 << input_integer_bits) - 1)
                          * (1 << (total_signed_bits - input_integer_bits)) / (1 << input_left_shift))
    return math.floor(max_input_rescaled)


def ref_softmax_row(row: list[int], input_scale: float) -> list[int]:
    """TFLite reference_ops::Softmax<int8_t, int8_t> on one row (beta = 1)."""
    input_beta_multiplier, input_beta_left_shift = ref_preprocess_softmax_scaling(1.0, input_scale, 5)
    diff_min = -ref_calculate_input_radius(5, input_beta_left_shift)
    max_in_row = max(row)

    def scaled_exp(v: int) -> int:
        input_diff = v - max_in_row
        rescaled = ref_srdhm(wrap32(input_diff * (1 << input_beta_left_shift)), input_beta_multiplier)
        return ref_exp_on_negative_values(rescaled, 5)

    sum_of_exps = 0
    for v in row:
        if v - max_in_row >= diff_min:
            sum_of_exps = wrap32(sum_of_exps + ref_rescale(scaled_exp(v), 0, 12))
    shifted_scale, num_bits_over_unit = ref_get_reciprocal(sum_of_exps, 12)
    out = []
    for v in row:
        if v - max_in_row >= diff_min:
            exponent = num_bits_over_unit + 31 - 8
            if exponent > 31:  # undefined in C (sum of exps >= 512); the quotient is < 1/2: 0
                unsat_output = 0
            else:
                unsat_output = ref_rdbpot(ref_srdhm(shifted_scale, scaled_exp(v)), exponent)
            out.append(max(min(unsat_output - 128, 127), -128))
        else:
            out.append(-128)
    return out


# --- value generators ------------------------------------------------------------------------


RNG_SEED = 20250301  # seed of the shared ``rng`` fixture (conftest.py) in this module


def codes(rng, shape) -> np.ndarray:
    return rng.integers(-128, 128, shape).astype(np.int8)


def act_params(rng, lo=None, hi=None) -> AffineParams:
    """Asymmetric activation parameters over a random range (sometimes one-sided)."""
    lo = -rng.uniform(0.05, 4) * (rng.random() < 0.8) if lo is None else lo
    hi = rng.uniform(0.05, 6) if hi is None else hi
    return affine_from_range(lo, hi)


def out_params_for(real: np.ndarray, rng, clip: float = 0.9) -> AffineParams:
    """Output parameters covering most of ``real`` (a little saturation at both ends)."""
    lo, hi = float(np.quantile(real, 1 - clip)), float(np.quantile(real, clip))
    return affine_from_range(min(lo, -1e-3), max(hi, 1e-3))


def float_of(op_type: str, op, *arrays) -> np.ndarray:
    """lwnn's float kernel, only used to choose plausible output ranges."""
    return FLOAT_KERNELS[op_type](op, *arrays)


# --- gemmlowp helpers: vectorised lwnn.numerics.fixedpoint against the scalar reference ----------


def int32_values(rng, n: int) -> np.ndarray:
    edges = [I32_MIN, I32_MIN + 1, -(2**30), -1, 0, 1, 2**30, I32_MAX - 1, I32_MAX]
    return np.concatenate([rng.integers(I32_MIN, I32_MAX, n, endpoint=True), edges]).astype(np.int64)


def test_rounding_half_sum_and_multiply_by_pot(rng):
    a, b = int32_values(rng, 3000), int32_values(rng, 3000)
    assert np.array_equal(fp.rounding_half_sum(a, b), vectorize(ref_rounding_half_sum)(a, b))
    for exponent in (-31, -12, -2, -1, 0, 1, 2, 5, 12):
        got = fp.saturating_rounding_multiply_by_pot(a, exponent)
        assert np.array_equal(got, vectorize(lambda v, e=exponent: ref_srmbpot(v, e))(a)), exponent
    assert np.array_equal(fp.rescale(a, 4, 2), vectorize(lambda v: ref_rescale(v, 4, 2))(a))


def test_exp_on_interval_between_negative_one_quarter_and_0(rng):
    a = np.concatenate([rng.integers(-(2**29), 0, 5000), [-(2**29), -1]])
    got = fp.exp_on_interval_between_negative_one_quarter_and_0_excl(a)
    assert np.array_equal(got, vectorize(ref_exp_quarter)(a))
    assert np.allclose(got / 2.0**31, np.exp(a / 2.0**31), atol=2e-9)


@pytest.mark.parametrize("integer_bits", [0, 1, 5, 6, 12])
def test_exp_on_negative_values(rng, integer_bits):
    a = np.concatenate([rng.integers(I32_MIN, 0, 4000), -rng.integers(0, 2**20, 1000),
                        [I32_MIN, -1, 0, -(1 << (36 - integer_bits)) if integer_bits > 5 else -1]])
    a = a.astype(np.int64)
    got = fp.exp_on_negative_values(a, integer_bits)
    assert np.array_equal(got, vectorize(lambda v: ref_exp_on_negative_values(v, integer_bits))(a))
    real = a * 2.0 ** (integer_bits - 31)
    expected = np.where(real < -32, 0.0, np.exp(real)) if integer_bits > 5 else np.exp(real)
    assert np.allclose(got / 2.0**31, expected, atol=1e-7)


def test_one_over_one_plus_x_and_get_reciprocal(rng):
    a = np.concatenate([rng.integers(0, I32_MAX, 5000), [0, 1, I32_MAX - 1, I32_MAX]])
    got = fp.one_over_one_plus_x_for_x_in_0_1(a)
    assert np.array_equal(got, vectorize(ref_one_over_one_plus_x)(a))
    assert np.allclose(got / 2.0**31, 1 / (1 + a / 2.0**31), atol=1e-8)
    x = np.concatenate([rng.integers(1, I32_MAX, 3000), 1 << rng.integers(0, 31, 200),
                        rng.integers(2**19, 2**26, 1000), [1, 2**19, I32_MAX]])
    clz = fp.count_leading_zeros_u32(x)
    assert np.array_equal(clz, vectorize(ref_clz)(x))
    assert fp.count_leading_zeros_u32(np.array([0, -1]))[0] == 32
    raw, bits = fp.get_reciprocal(x, 12)
    ref = [ref_get_reciprocal(int(v), 12) for v in x]
    assert np.array_equal(raw, [r for r, _ in ref]) and np.array_equal(bits, [b for _, b in ref])
    # 1/x with x in Q12.19: raw * 2**-(31 + bits) * 2**19 ... within a few ulps of the exact value
    assert np.allclose(raw * 2.0 ** -(31 + bits.astype(float)), 2.0**19 / x, rtol=1e-8)


def test_softmax_scaling_matches_tflite(rng):
    edges = [2.0**-26 * 1.5, 0.0625, 1 / 16 + 1e-9, 16.0, 100.0]
    for scale in list(10.0 ** rng.uniform(-6, 1.4, 300)) + edges:
        scale = float(np.float32(scale))
        m, s = fp.preprocess_softmax_scaling(1.0, scale, 5)
        assert (m, s) == ref_preprocess_softmax_scaling(1.0, scale, 5)
        assert fp.calculate_input_radius(5, s) == ref_calculate_input_radius(5, s)
        x = rng.integers(-fp.calculate_input_radius(5, s), 1, 50)
        got = fp.multiply_by_quantized_multiplier_greater_than_one(x, m, s)
        ref = [ref_srdhm(wrap32(int(v) * (1 << s)), m) for v in x]
        assert np.array_equal(got, ref)
    with pytest.raises(CalibrationError, match="input_scale"):
        fp.preprocess_softmax_scaling(1.0, 1e-9, 5)


# --- Conv: QLinearConv, plus the TFLite ConvPerChannel requantization bit for bit -------------


def weight_params(w_real: np.ndarray, axis: int, per_channel: bool) -> AffineParams:
    if per_channel:
        reduce = tuple(d for d in range(w_real.ndim) if d != axis)
        return symmetric_from_absmax(np.abs(w_real).max(axis=reduce), 8, axis)
    return symmetric_from_absmax(float(np.abs(w_real).max()))


def ref_conv_int(x, w, bias, zp_x, strides, pads, dilations, group) -> np.ndarray:
    """int64 accumulators of a grouped N-D convolution, TFLite ConvPerChannel style: the input
    offset added to every real tap, padded taps skipped (plain loops over kernel taps)."""
    n_sp = x.ndim - 2
    n, c = x.shape[:2]
    m, cg = w.shape[:2]
    k = w.shape[2:]
    out_sp = [(x.shape[2 + d] + pads[d] + pads[n_sp + d] - ((k[d] - 1) * dilations[d] + 1)) // strides[d] + 1
              for d in range(n_sp)]
    acc = np.zeros((n, m, *out_sp), np.int64)
    xi = x.astype(np.int64) - zp_x
    mg = m // group
    for o in np.ndindex(*out_sp):
        for tap in np.ndindex(*k):
            pos = [o[d] * strides[d] - pads[d] + tap[d] * dilations[d] for d in range(n_sp)]
            if any(p < 0 or p >= x.shape[2 + d] for d, p in enumerate(pos)):
                continue  # zero padding of (x - zp): the tap adds nothing
            patch = xi[(slice(None), slice(None), *pos)]  # [n, c]
            for g in range(group):
                wg = w[g * mg:(g + 1) * mg, :, *tap].astype(np.int64)  # [mg, cg]
                acc[(slice(None), slice(g * mg, (g + 1) * mg), *o)] += patch[:, g * cg:(g + 1) * cg] @ wg.T
    if bias is not None:
        acc += bias.astype(np.int64).reshape((1, -1) + (1,) * n_sp)
    return acc


def ref_requantize(acc: np.ndarray, s_x, s_w, s_y, zp_y: int, channel_axis: int) -> np.ndarray:
    """TFLite PopulateConvolutionQuantizationParams + MultiplyByQuantizedMultiplier, per channel,
    scalar: effective scale = double(s_x) * double(s_w[c]) / double(s_y)."""
    s_w = np.broadcast_to(np.asarray(s_w, np.float32), (acc.shape[channel_axis],))
    out = np.empty(acc.shape, np.int64)
    for ch in range(acc.shape[channel_axis]):
        m, s = ref_quantize_multiplier(float(np.float32(s_x)) * float(s_w[ch]) / float(np.float32(s_y)))
        sl = [slice(None)] * acc.ndim
        sl[channel_axis] = ch
        sub = acc[tuple(sl)]
        one = vectorize(lambda v, m=m, s=s: max(min(ref_mbqm(wrap32(v), m, s) + zp_y, 127), -128))
        out[tuple(sl)] = one(sub)
    return out.astype(np.int8)


CONV_GEOMETRIES_2D = [dict(strides=s, pads=p, dilations=d)
                      for s, p, d in itertools.product([(1, 1), (2, 2), (1, 2)],
                                                       [(0, 0, 0, 0), (1, 1, 1, 1), (0, 2, 1, 1)],
                                                       [(1, 1), (2, 1)])]
CONV_GEOMETRIES_1D = [dict(strides=(s,), pads=p, dilations=(d,))
                      for s, p, d in itertools.product([1, 3], [(0, 0), (2, 1)], [1, 2])]
# (in channels, out channels, group)
CONV_GROUPS = {"dense": (4, 6, 1), "grouped": (4, 6, 2), "depthwise": (6, 6, 6), "depthwise_x2": (3, 6, 3)}


@pytest.mark.parametrize("groups", list(CONV_GROUPS))
@pytest.mark.parametrize("per_channel", [True, False], ids=["per_channel", "per_tensor"])
@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "no_bias"])
def test_conv_against_qlinearconv(rng, groups, per_channel, with_bias):
    from onnx import helper

    c, m, group = CONV_GROUPS[groups]
    what = f"Conv vs QLinearConv ({'per-channel' if per_channel else 'per-tensor'})"
    for rank, geometry in [(2, g) for g in CONV_GEOMETRIES_2D] + [(1, g) for g in CONV_GEOMETRIES_1D]:
        spatial, kernel = ((7, 8), (3, 3)) if rank == 2 else ((11,), (3,))
        x = codes(rng, (2, c, *spatial))
        px = act_params(rng)
        w_real = rng.normal(0, 1, (m, c // group, *kernel)) * rng.uniform(0.05, 2, (m,) + (1,) * (rank + 1))
        pw = weight_params(w_real, 0, per_channel)
        wq = pw.quantize(w_real)
        pb = bias_params(px, pw)
        bq = pb.quantize(rng.normal(0, 2, m)) if with_bias else None
        op = conv_ops.Conv(group=group, **geometry)
        real = float_of("Conv", op, px.dequantize(x), pw.dequantize(wq),
                        None if bq is None else pb.dequantize(bq))
        py = out_params_for(real, rng)
        got, call = run_s8(op, [x, wq, bq], [px, pw, pb if with_bias else None], py)
        assert call.overflow == 0

        inits = {"w": wq, **qinits(x=px, w=pw, y=py)}
        names = ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"]
        if with_bias:
            inits["b"] = bq
            names.append("b")
        attrs = dict(strides=list(geometry["strides"]), pads=list(geometry["pads"]),
                     dilations=list(geometry["dilations"]), group=group)
        expected = ort_run([helper.make_node("QLinearConv", names, ["y"], **attrs)], {"x": x}, inits)
        check_s8(what, got, expected)

        acc = ref_conv_int(x, wq, bq, int(px.zero_point), geometry["strides"], geometry["pads"],
                           geometry["dilations"], group)
        ref = ref_requantize(acc, px.scale, pw.scale, py.scale, int(py.zero_point), 1)
        check_s8("Conv vs TFLite reference", got, ref, exact=True)
    assert off_rate(what) < 0.01  # float requantization disagrees only near ties


def test_conv_3d_and_auto_pad(rng):
    from onnx import helper

    for attrs in [dict(auto_pad="SAME_UPPER", strides=(2, 1, 2)),
                  dict(auto_pad="SAME_LOWER", strides=(1, 2, 1)), dict(auto_pad="VALID")]:
        x, px = codes(rng, (1, 3, 5, 6, 4)), act_params(rng)
        w_real = rng.normal(0, 1, (4, 3, 2, 3, 2))
        pw = weight_params(w_real, 0, True)
        wq = pw.quantize(w_real)
        op = conv_ops.Conv(**attrs)
        py = out_params_for(float_of("Conv", op, px.dequantize(x), pw.dequantize(wq)), rng)
        got, _ = run_s8(op, [x, wq], [px, pw], py)
        onnx_attrs = {k: list(v) if isinstance(v, tuple) else v for k, v in attrs.items()}
        node = helper.make_node("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"], ["y"],
                                **onnx_attrs)
        expected = ort_run([node], {"x": x}, {"w": wq, **qinits(x=px, w=pw, y=py)})
        check_s8("Conv 3-D / auto_pad vs QLinearConv", got, expected)
    assert off_rate("Conv 3-D / auto_pad vs QLinearConv") < 0.01


@pytest.mark.parametrize("group", [1, 2])
def test_conv_transpose_against_qdq(rng, group):
    from onnx import helper

    for strides, pads, out_pad, dil in [((2, 2), (0, 0, 0, 0), (0, 0), (1, 1)),
                                        ((2, 1), (1, 0, 1, 1), (1, 0), (1, 1)),
                                        ((1, 1), (1, 1, 1, 1), (0, 0), (2, 2)),
                                        ((3, 2), (0, 1, 2, 0), (2, 1), (1, 2))]:
        c, mg = 4, 3
        x, px = codes(rng, (2, c, 4, 5)), act_params(rng)
        w_real = rng.normal(0, 1, (c, mg, 3, 3))
        pw = weight_params(w_real, 1, group == 1)  # a grouped deconv's axis 1 is per group: per tensor
        wq = pw.quantize(w_real)
        pb = bias_params(px, pw)
        bq = pb.quantize(rng.normal(0, 1, mg * group))
        op = conv_ops.ConvTranspose(strides=strides, pads=pads, output_padding=out_pad, dilations=dil,
                                    group=group)
        real = float_of("ConvTranspose", op, px.dequantize(x), pw.dequantize(wq), pb.dequantize(bq))
        py = out_params_for(real, rng)
        got, _ = run_s8(op, [x, wq, bq], [px, pw, pb], py)
        attrs = dict(strides=list(strides), pads=list(pads), output_padding=list(out_pad),
                     dilations=list(dil), group=group)
        inits = {"w": wq, "b": bq, **qparams("w", pw), "bs": np.asarray(pb.scale, np.float32),
                 "bz": np.zeros(pb.scale.shape, np.int32)}
        w_axis = {"axis": 1} if pw.per_channel else {}
        b_axis = {"axis": 0} if pb.per_channel else {}
        nodes = [helper.make_node("DequantizeLinear", ["x", "xs", "xz"], ["xf"]),
                 helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wf"], **w_axis),
                 helper.make_node("DequantizeLinear", ["b", "bs", "bz"], ["bf"], **b_axis),
                 helper.make_node("ConvTranspose", ["xf", "wf", "bf"], ["r"], **attrs),
                 helper.make_node("QuantizeLinear", ["r", "ys", "yz"], ["y"])]
        expected = ort_run(nodes, {"x": x}, {**inits, **qinits(x=px, y=py)}, optimize=False)
        check_s8("ConvTranspose vs QDQ float", got, expected)
    assert off_rate("ConvTranspose vs QDQ float") < 0.01


# --- MatMul and Dense (Gemm): QLinearMatMul and com.microsoft QGemm ------------------------------


@pytest.mark.parametrize("per_channel", [True, False], ids=["per_column", "per_tensor"])
def test_matmul_against_qlinearmatmul(rng, per_channel):
    from onnx import helper

    what = "MatMul vs QLinearMatMul"
    for a_shape, n_out in [((9, 33), 7), ((2, 5, 17), 12), ((3, 1, 64), 5), ((1, 200), 3)]:
        k = a_shape[-1]
        a, pa = codes(rng, a_shape), act_params(rng)
        b_real = rng.normal(0, 1, (k, n_out)) * rng.uniform(0.05, 3, n_out)
        pb = weight_params(b_real, 1, per_channel)
        bq = pb.quantize(b_real)
        op = conv_ops.MatMul()
        py = out_params_for(float_of("MatMul", op, pa.dequantize(a), pb.dequantize(bq)), rng)
        got, _ = run_s8(op, [a, bq], [pa, pb], py)
        node = helper.make_node("QLinearMatMul", BINARY_IO, ["y"])
        expected = ort_run([node], {"a": a}, {"b": bq, **qinits(a=pa, b=pb, y=py)})
        check_s8(what, got, expected)
        acc = (a.astype(np.int64) - int(pa.zero_point)) @ bq.astype(np.int64)
        ref = ref_requantize(acc, pa.scale, pb.scale, py.scale, int(py.zero_point), acc.ndim - 1)
        check_s8("MatMul vs TFLite reference", got, ref, exact=True)
    assert off_rate(what) < 0.01


def test_matmul_of_two_activations(rng):
    """B computed at run time is an asymmetric activation: its zero point must be subtracted."""
    from onnx import helper

    for a_shape, b_shape in [((60, 10), (10, 24)), ((2, 30, 8), (2, 8, 5)), ((40, 16), (2, 16, 3))]:
        a, pa = codes(rng, a_shape), act_params(rng)
        b, pb = codes(rng, b_shape), act_params(rng, lo=-rng.uniform(0.1, 1), hi=rng.uniform(2, 5))
        assert int(pb.zero_point) != 0
        op = conv_ops.MatMul()
        py = out_params_for(float_of("MatMul", op, pa.dequantize(a), pb.dequantize(b)), rng)
        got, _ = run_s8(op, [a, b], [pa, pb], py)
        node = helper.make_node("QLinearMatMul", BINARY_IO, ["y"])
        expected = ort_run([node], {"a": a, "b": b}, qinits(a=pa, b=pb, y=py))
        check_s8("MatMul (two activations) vs QLinearMatMul", got, expected)


@pytest.mark.parametrize("trans_b", [True, False], ids=["trans_b", "no_trans_b"])
@pytest.mark.parametrize("per_channel", [True, False], ids=["per_channel", "per_tensor"])
def test_dense_against_qgemm(rng, trans_b, per_channel):
    from onnx import helper

    what = "Dense vs QGemm"
    for (m, k, n), bias_shape, trans_a in [((64, 40, 10), (10,), False), ((1, 300, 16), None, False),
                                           ((5, 24, 6), (1, 6), False), ((7, 12, 9), (7, 9), False),
                                           ((6, 20, 4), (4,), True)]:
        a = codes(rng, (k, m) if trans_a else (m, k))
        pa = act_params(rng)
        column_scales = rng.uniform(0.05, 3, (n, 1) if trans_b else n)
        w_real = rng.normal(0, 1, (n, k) if trans_b else (k, n)) * column_scales
        pw = weight_params(w_real, 0 if trans_b else 1, per_channel)
        wq = pw.quantize(w_real)
        pc = bias_params(pa, pw)
        # A 2-D Gemm bias is quantized per output column like a 1-D one (scale s_a * s_w[n]).
        cq = None if bias_shape is None else np.round(
            rng.normal(0, 2, bias_shape) / pc.scale.astype(np.float64)).astype(np.int32)
        op = conv_ops.Dense(trans_a=trans_a, trans_b=trans_b)
        real = float_of("Dense", op, pa.dequantize(a), pw.dequantize(wq))
        py = out_params_for(real, rng)
        got, _ = run_s8(op, [a, wq, cq], [pa, pw, None if cq is None else pc], py)
        names = ["a", "as", "az", "b", "bs", "bz", "c" if cq is not None else "", "ys", "yz"]
        inits = {"b": wq, **qinits(a=pa, b=pw, y=py)}
        if cq is not None:
            inits["c"] = cq
        node = helper.make_node("QGemm", names, ["y"], domain="com.microsoft", transA=int(trans_a),
                                transB=int(trans_b))
        expected = ort_run([node], {"a": a}, inits)
        check_s8(what, got, expected)
        acc = (a.T if trans_a else a).astype(np.int64) - int(pa.zero_point)
        acc = acc @ (wq.T if trans_b else wq).astype(np.int64)
        if cq is not None:
            acc = acc + cq.astype(np.int64)
        check_s8("Dense vs TFLite reference", got,
                 ref_requantize(acc, pa.scale, pw.scale, py.scale, int(py.zero_point), 1), exact=True)
    assert off_rate(what) < 0.01


def test_gemm_with_bias_computed_at_run_time(rng):
    """A Gemm ``C`` that is an activation (int8, own parameters) joins at the accumulator scale."""
    for (m, k, n), c_shape, per_channel in [((6, 30, 5), (5,), True), ((4, 12, 7), (4, 7), False),
                                            ((3, 50, 8), (1, 8), True)]:
        a, pa = codes(rng, (m, k)), act_params(rng)
        w_real = rng.normal(0, 1, (n, k))
        pw = weight_params(w_real, 0, per_channel)
        wq = pw.quantize(w_real)
        c, pc = codes(rng, c_shape), act_params(rng, lo=-rng.uniform(0.5, 3), hi=rng.uniform(0.5, 3))
        op = conv_ops.Dense(trans_b=True)
        real = float_of("Dense", op, pa.dequantize(a), pw.dequantize(wq), pc.dequantize(c))
        py = out_params_for(real, rng)
        got, _ = run_s8(op, [a, wq, c], [pa, pw, pc], py)
        expected = ort_qdq("Gemm", [a, wq, c], [pa, pw, pc], py, attrs={"transB": 1})
        check_s8("Dense (C an activation) vs QDQ float", got, expected)


# --- Add, Sub, Mul: QLinearAdd / QLinearMul and TFLite's integer reference kernels -----------


def ref_add_s8(a, b, pa: AffineParams, pb: AffineParams, po: AffineParams, sub: bool = False) -> np.ndarray:
    """TFLite int8 ADD/SUB: Prepare (left_shift 20, twice_max_input_scale, three multipliers
    from QuantizeMultiplierSmallerThanOneExp) and reference_integer_ops AddFunc, per element."""
    input1_offset, input2_offset = -int(pa.zero_point), -int(pb.zero_point)
    output_offset = int(po.zero_point)
    left_shift = 20
    s1, s2, so = float(f32(pa.scale)), float(f32(pb.scale)), f32(po.scale)
    twice_max_input_scale = 2 * max(s1, s2)  # 2 * float: exact, held in double
    real_input1_multiplier = s1 / twice_max_input_scale
    real_input2_multiplier = s2 / twice_max_input_scale
    real_output_multiplier = twice_max_input_scale / float(f32((1 << left_shift) * so))
    input1_multiplier, input1_shift = ref_quantize_multiplier(real_input1_multiplier)
    input2_multiplier, input2_shift = ref_quantize_multiplier(real_input2_multiplier)
    output_multiplier, output_shift = ref_quantize_multiplier(real_output_multiplier)

    def add_func(x: int, y: int) -> int:
        input1_val = input1_offset + x
        input2_val = input2_offset + y
        shifted_input1_val = input1_val * (1 << left_shift)
        shifted_input2_val = input2_val * (1 << left_shift)
        scaled_input1_val = ref_mbqm_smaller_than_one_exp(shifted_input1_val, input1_multiplier, input1_shift)
        scaled_input2_val = ref_mbqm_smaller_than_one_exp(shifted_input2_val, input2_multiplier, input2_shift)
        raw_sum = scaled_input1_val - scaled_input2_val if sub else scaled_input1_val + scaled_input2_val
        raw_output = ref_mbqm_smaller_than_one_exp(raw_sum, output_multiplier, output_shift) + output_offset
        return min(127, max(-128, raw_output))

    a, b = np.broadcast_arrays(a, b)
    return vectorize(add_func)(a, b).astype(np.int8)


def ref_mul_s8(a, b, pa, pb, po) -> np.ndarray:
    """TFLite int8 MUL: ``real_multiplier = input1 scale * input2 scale / output scale`` (float
    arithmetic, as the C++ expression on floats), then MulElementwise."""
    real_multiplier = float(f32(f32(pa.scale) * f32(pb.scale)) / f32(po.scale))
    output_multiplier, output_shift = ref_quantize_multiplier(real_multiplier)

    def mul_func(x: int, y: int) -> int:
        input1_val = -int(pa.zero_point) + x
        input2_val = -int(pb.zero_point) + y
        unclamped = int(po.zero_point) + ref_mbqm(input1_val * input2_val, output_multiplier, output_shift)
        return min(127, max(-128, unclamped))

    a, b = np.broadcast_arrays(a, b)
    return vectorize(mul_func)(a, b).astype(np.int8)


BROADCASTS = [((2, 3, 6, 7), (2, 3, 6, 7)), ((2, 3, 6, 7), (1, 3, 1, 1)), ((4, 9), ()), ((1, 5), (6, 1))]


def binary_params(rng, case: int):
    """Input scales from equal to a ratio of ~100 either way."""
    pa = act_params(rng)
    if case == 0:
        return pa, pa
    ratio = 10.0 ** rng.uniform(-2, 2)
    pb = affine_from_range(float(-(pa.zero_point + 128) * pa.scale * ratio) if rng.random() < 0.7 else 0.0,
                           float((127 - pa.zero_point) * pa.scale * ratio))
    return pa, pb


@pytest.mark.parametrize("op_type", ["Add", "Mul"])
def test_add_mul_against_qlinear(rng, op_type):
    from onnx import helper

    what = f"{op_type} vs QLinear{op_type}"
    op = ew.Add() if op_type == "Add" else ew.Mul()
    for case, (sa, sb) in itertools.product(range(10), BROADCASTS):
        a, b = codes(rng, sa), codes(rng, sb)
        pa, pb = binary_params(rng, case)
        py = out_params_for(float_of(op_type, op, pa.dequantize(a), pb.dequantize(b)), rng, clip=0.95)
        got, _ = run_s8(op, [a, b], [pa, pb], py)
        node = helper.make_node(f"QLinear{op_type}", BINARY_IO, ["y"],
                                domain="com.microsoft")
        expected = ort_run([node], {"a": a, "b": b}, qinits(a=pa, b=pb, y=py))
        check_s8(what, got, expected)
        ref = ref_add_s8(a, b, pa, pb, py) if op_type == "Add" else ref_mul_s8(a, b, pa, pb, py)
        check_s8(f"{op_type} vs TFLite reference", got, ref, exact=True)
    assert off_rate(what) < 0.02


def test_sub_against_qdq_and_tflite(rng):
    op = ew.Sub()
    for case, (sa, sb) in itertools.product(range(4), BROADCASTS):
        a, b = codes(rng, sa), codes(rng, sb)
        pa, pb = binary_params(rng, case)
        py = out_params_for(float_of("Sub", op, pa.dequantize(a), pb.dequantize(b)), rng, clip=0.95)
        got, _ = run_s8(op, [a, b], [pa, pb], py)
        check_s8("Sub vs QDQ float", got, ort_qdq("Sub", [a, b], [pa, pb], py))
        check_s8("Sub vs TFLite reference", got, ref_add_s8(a, b, pa, pb, py, sub=True), exact=True)
    assert off_rate("Sub vs QDQ float") < 0.02


# int64 NumPy transliterations of the same C, for exhaustive grids (C division truncates).


def np_srdhm(a, b) -> np.ndarray:
    a, b = np.broadcast_arrays(np.asarray(a, np.int64), np.asarray(b, np.int64))
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    t = ab + nudge
    high = np.sign(t) * (np.abs(t) // (1 << 31))  # (ab + nudge) / (1ll << 31), truncating
    return np.where((a == I32_MIN) & (b == I32_MIN), I32_MAX, high)


def np_rdbpot(x, exponent) -> np.ndarray:
    x, exponent = np.asarray(x, np.int64), np.asarray(exponent, np.int64)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def np_mbqm(x, multiplier: int, shift: int) -> np.ndarray:
    left, right = max(shift, 0), max(-shift, 0)
    shifted = (np.asarray(x, np.int64) * (1 << left) + 2**31) % 2**32 - 2**31  # int32 product
    return np_rdbpot(np_srdhm(shifted, multiplier), right)


def test_mul_and_relu_multipliers_exhaustively(rng):
    """Every pair of int8 codes, many parameter sets: Mul's and ReLU's multipliers come from
    float32 expressions, as TFLite's Prepare computes them (double would differ here)."""
    a = np.arange(-128, 128, dtype=np.int8).reshape(-1, 1)
    b = a.reshape(1, -1)
    for _ in range(60):
        pa, pb, po = act_params(rng), act_params(rng), act_params(rng, hi=rng.uniform(1, 30))
        got, _ = run_s8(ew.Mul(), [a, b], [pa, pb], po)
        real_multiplier = float(f32(f32(pa.scale) * f32(pb.scale)) / f32(po.scale))
        m, s = ref_quantize_multiplier(real_multiplier)
        prod = (a.astype(np.int64) - int(pa.zero_point)) * (b.astype(np.int64) - int(pb.zero_point))
        ref = np.clip(int(po.zero_point) + np_mbqm(prod, m, s), -128, 127)
        check_s8("Mul exhaustive vs TFLite reference", got, ref, exact=True)

        x = a.reshape(-1)
        for op, (lo, hi) in [(ew.Relu(), (0.0, np.inf)), (ew.Clip(min=0.0, max=6.0), (0.0, 6.0)),
                             (ew.Clip(min=-1.0, max=1.0), (-1.0, 1.0))]:
            got, _ = run_s8(op, [x], [pa], po)
            m, s = ref_quantize_multiplier(float(f32(pa.scale) / f32(po.scale)))
            act_min = max(-128, int(po.zero_point) + ref_round(f32(f32(lo) / f32(po.scale))))
            if hi == np.inf:
                act_max = 127
            else:
                act_max = min(127, int(po.zero_point) + ref_round(f32(f32(hi) / f32(po.scale))))
            centred = x.astype(np.int64) - int(pa.zero_point)
            ref = np.clip(int(po.zero_point) + np_mbqm(centred, m, s), act_min, act_max)
            check_s8("Relu/Clip exhaustive vs TFLite reference", got, ref, exact=True)


# --- pooling: QLinearAveragePool / QLinearGlobalAveragePool and TFLite's AveragePool ---------


def ref_average_pool_s8(x, zp: int, kernel, strides, pads, count_include_pad: bool, ceil_mode: bool):
    """TFLite reference_integer_ops::AveragePool (int8), loops over output pixels: the sum of the
    window's int8 codes divided by filter_count with ``(acc +- filter_count / 2) / filter_count``.
    ONNX extensions: ``count_include_pad`` counts explicit padding taps, holding ``zp`` (real 0);
    ceil_mode windows are cut at the padded end."""
    n_sp = x.ndim - 2
    out_sp = []
    for d in range(n_sp):
        span = x.shape[2 + d] + pads[d] + pads[n_sp + d] - kernel[d]
        o = (-(-span // strides[d]) if ceil_mode else span // strides[d]) + 1
        if ceil_mode and (o - 1) * strides[d] >= x.shape[2 + d] + pads[d]:
            o -= 1
        out_sp.append(o)
    out = np.empty(x.shape[:2] + tuple(out_sp), np.int8)
    for nc in np.ndindex(*x.shape[:2]):
        for o in np.ndindex(*out_sp):
            acc, filter_count = 0, 0
            for tap in np.ndindex(*kernel):
                pos = [o[d] * strides[d] - pads[d] + tap[d] for d in range(n_sp)]
                inside = all(0 <= p < x.shape[2 + d] for d, p in enumerate(pos))
                in_pads = all(-pads[d] <= p < x.shape[2 + d] + pads[n_sp + d] for d, p in enumerate(pos))
                if inside:
                    acc += int(x[(*nc, *pos)])
                    filter_count += 1
                elif count_include_pad and in_pads:
                    acc += zp
                    filter_count += 1
            average = (acc + filter_count // 2) // filter_count if acc > 0 else c_div(acc - filter_count // 2,
                                                                                    filter_count)
            out[(*nc, *o)] = min(max(average, -128), 127)
    return out


POOL_CASES = [dict(kernel_shape=k, strides=s, pads=p)
              for k, s, p in [((2, 2), (2, 2), (0, 0, 0, 0)), ((3, 3), (1, 1), (1, 1, 1, 1)),
                              ((3, 3), (2, 2), (1, 0, 1, 0)), ((2, 3), (1, 2), (0, 1, 1, 1)),
                              ((3,), (2,), (1, 1)), ((4,), (3,), (0, 2))]]


def assert_off_only_at_ties(what: str, got, expected, exact_average) -> None:
    """Rounding half away from zero (TFLite) and half to even (onnxruntime) part only on exact
    halves: every disagreement must sit on one."""
    off = got.astype(np.int64) != expected
    frac = np.abs(exact_average - np.floor(exact_average) - 0.5)
    assert np.all(frac[off] < 1e-9), f"{what}: a value 1 LSB off away from a rounding tie"


@pytest.mark.parametrize("count_include_pad", [False, True], ids=["exclude_pad", "include_pad"])
@pytest.mark.parametrize("ceil_mode", [False, True], ids=["floor", "ceil"])
def test_average_pool_against_qlinearaveragepool(rng, count_include_pad, ceil_mode):
    """onnxruntime's QLinearAveragePool divides the windows that ceil_mode lets hang past the
    padding by the full kernel size when count_include_pad is set, unlike its own float
    AveragePool and the ONNX reference: that combination is checked against the float op."""
    from onnx import helper

    for case in POOL_CASES:
        spatial = (7, 8) if len(case["kernel_shape"]) == 2 else (13,)
        x, p = codes(rng, (2, 3, *spatial)), act_params(rng)
        op = pool_ops.AveragePool(count_include_pad=count_include_pad, ceil_mode=ceil_mode, **case)
        got, _ = run_s8(op, [x], [p], p)
        attrs = dict({k: list(v) for k, v in case.items()}, count_include_pad=int(count_include_pad),
                     ceil_mode=int(ceil_mode))
        if ceil_mode and count_include_pad:
            what = "AveragePool vs QDQ float"
            expected = ort_qdq("AveragePool", [x], [p], p, attrs)
        else:
            what = "AveragePool vs QLinearAveragePool"
            node = helper.make_node("QLinearAveragePool", UNARY_IO, ["y"],
                                    domain="com.microsoft", **attrs)
            expected = ort_run([node], {"x": x}, qinits(x=p, y=p))
        check_s8(what, got, expected)
        exact_average = float_of("AveragePool", op, x.astype(np.float64) - int(p.zero_point))
        assert_off_only_at_ties(what, got, expected, exact_average)
        ref = ref_average_pool_s8(x, int(p.zero_point), case["kernel_shape"], case["strides"], case["pads"],
                                  count_include_pad, ceil_mode)
        check_s8("AveragePool vs TFLite reference", got, ref, exact=True)


def test_global_average_pool_against_qlinear(rng):
    from onnx import helper

    for shape in [(4, 16, 5, 7), (2, 32, 9), (2, 8, 3, 4, 2), (1, 8, 1, 1), (3, 5, 16, 16), (8, 64, 7, 7)]:
        x, p = codes(rng, shape), act_params(rng)
        got, _ = run_s8(pool_ops.GlobalAveragePool(), [x], [p], p)
        node = helper.make_node("QLinearGlobalAveragePool", UNARY_IO, ["y"],
                                domain="com.microsoft", channels_last=0)
        expected = ort_run([node], {"x": x}, qinits(x=p, y=p))
        check_s8("GlobalAveragePool vs QLinearGlobalAveragePool", got, expected)
        spatial = tuple(range(2, x.ndim))
        exact_average = x.astype(np.float64).mean(axis=spatial, keepdims=True) - int(p.zero_point)
        assert_off_only_at_ties("GlobalAveragePool", got, expected, exact_average)
        ref = ref_average_pool_s8(x, int(p.zero_point), shape[2:], (1,) * len(spatial),
                                  (0,) * (2 * len(spatial)), False, False)
        check_s8("GlobalAveragePool vs TFLite reference", got, ref, exact=True)


def test_average_pool_rounds_ties_away_from_zero():
    """Exact halves: (1 + 2) / 2 -> 2 and (-1 - 2) / 2 -> -2, as TFLite (onnxruntime rounds to even)."""
    p = affine_from_range(-1, 1)
    x = np.array([[[[1, 2], [-1, -2]]]], np.int8)
    op = pool_ops.AveragePool(kernel_shape=(1, 2))
    got, _ = run_s8(op, [x], [p], p)
    assert got.reshape(-1).tolist() == [2, -2]
    with pytest.raises(CalibrationError, match="equal to its input"):
        run_s8(op, [x], [p], affine_from_range(-2, 2))


# --- Concat: QLinearConcat and TFLite's ConcatenationWithScaling ------------------------------


def ref_concat_s8(xs, ps, po, axis):
    """TFLite ConcatenationWithScaling (float32 arithmetic, TfLiteRound), clamped to int8."""
    inverse_output_scale = f32(1.0) / f32(po.scale)
    parts = []
    for q, p in zip(xs, ps):
        if int(p.zero_point) == int(po.zero_point) and f32(p.scale) == f32(po.scale):
            parts.append(q)
            continue
        scale = f32(f32(p.scale) * inverse_output_scale)
        bias = f32(f32(-int(p.zero_point)) * scale)

        def one(v, scale=scale, bias=bias):
            value = ref_round(f32(f32(f32(v) * scale) + bias)) + int(po.zero_point)
            return max(min(127, value), -128)

        parts.append(vectorize(one)(q).astype(np.int8))
    return np.concatenate(parts, axis=axis)


def test_concat_against_qlinearconcat(rng):
    from onnx import helper

    for axis, shapes in [(1, [(2, 3, 4, 5), (2, 2, 4, 5), (2, 4, 4, 5)]), (-1, [(3, 7), (3, 2)]),
                         (0, [(1, 6, 2), (2, 6, 2), (3, 6, 2)])]:
        xs = [codes(rng, s) for s in shapes]
        ps = [act_params(rng) for _ in shapes]
        po = ps[0] if axis == 1 else act_params(rng)  # one input may share the output's parameters
        got, _ = run_s8(shape_ops.Concat(axis=axis), xs, ps, po)
        names, inits, feeds = ["ys", "yz"], qinits(y=po), {}
        for i, (x, p) in enumerate(zip(xs, ps)):
            names += [f"x{i}", f"x{i}s", f"x{i}z"]
            inits.update(qparams(f"x{i}", p))
            feeds[f"x{i}"] = x
        node = helper.make_node("QLinearConcat", names, ["y"], domain="com.microsoft", axis=axis)
        check_s8("Concat vs QLinearConcat", got, ort_run([node], feeds, inits))
        check_s8("Concat vs TFLite reference", got, ref_concat_s8(xs, ps, po, axis), exact=True)


def test_concat_rounds_like_roundf():
    """0.49999997f rounds to 0 (std::round), not to 1 as floor(v + 0.5) in float32 would."""
    po = AffineParams(1.0, 0)
    pi = AffineParams(np.nextafter(np.float32(0.5), np.float32(0)), 0)  # q * scale = 0.49999997 at q = 1
    got, _ = run_s8(shape_ops.Concat(axis=0), [np.array([1, -1, 3], np.int8)], [pi], po)
    assert got.tolist() == [0, 0, 1]


# --- table activations: QLinearSigmoid, QLinearLeakyRelu, and the rest through QDQ -------------


def test_lut_activations(rng):
    from onnx import helper

    x = np.arange(-128, 128, dtype=np.int8).reshape(2, 128)
    for _ in range(8):
        p = act_params(rng, lo=-rng.uniform(1, 10), hi=rng.uniform(1, 10))
        sig_out = AffineParams(1 / 256, -128)
        got, _ = run_s8(ew.Sigmoid(), [x], [p], sig_out)
        node = helper.make_node("QLinearSigmoid", UNARY_IO, ["y"], domain="com.microsoft")
        check_s8("Sigmoid vs QLinearSigmoid", got, ort_run([node], {"x": x}, qinits(x=p, y=sig_out)))
        alpha = float(rng.uniform(0.01, 0.3))
        po = act_params(rng, lo=-float(p.scale) * 128 * alpha, hi=rng.uniform(1, 10))
        got, _ = run_s8(ew.LeakyRelu(alpha=alpha), [x], [p], po)
        node = helper.make_node("QLinearLeakyRelu", UNARY_IO, ["y"], domain="com.microsoft", alpha=alpha)
        check_s8("LeakyRelu vs QLinearLeakyRelu", got, ort_run([node], {"x": x}, qinits(x=p, y=po)))
        for op_type, op, attrs, out in [
            ("Tanh", ew.Tanh(), {}, AffineParams(1 / 128, 0)),
            ("HardSigmoid", ew.HardSigmoid(alpha=0.25, beta=0.4), {"alpha": 0.25, "beta": 0.4},
             AffineParams(1 / 255, -128)),
            ("HardSwish", ew.HardSwish(), {}, act_params(rng, lo=-0.4, hi=rng.uniform(1, 10))),
            ("Elu", ew.Elu(alpha=0.7), {"alpha": 0.7}, act_params(rng, lo=-0.7, hi=rng.uniform(1, 10))),
            ("Erf", ew.Erf(), {}, affine_from_range(-1, 1)),
            ("Exp", ew.Exp(), {}, act_params(rng, lo=0.0, hi=float(np.exp(rng.uniform(0, 3))))),
        ]:
            got, _ = run_s8(op, [x], [p], out)
            check_s8(f"{op_type} vs QDQ float", got, ort_qdq(op_type, [x], [p], out, attrs))
        pos = act_params(rng, lo=0.0, hi=rng.uniform(1, 50))
        out = affine_from_range(0, float(np.sqrt(127 * pos.scale * 256)))
        got, _ = run_s8(ew.Sqrt(), [x], [pos], out)
        check_s8("Sqrt vs QDQ float", got, ort_qdq("Sqrt", [x], [pos], out))


# --- BatchNorm (folded per-channel scale) and data movement, through QDQ float --------------


def test_batch_norm_against_qdq(rng):
    for shape in [(2, 4, 5, 6), (3, 6), (1, 3, 10)]:
        c = shape[1]
        x, px = codes(rng, shape), act_params(rng)
        gamma = rng.normal(1, 0.5, c).astype(np.float32)
        gamma[0] = 0.0  # a dead channel
        beta, mean = rng.normal(0, 1, c).astype(np.float32), rng.normal(0, 1, c).astype(np.float32)
        var = rng.uniform(0.1, 3, c).astype(np.float32)
        op = ew.BatchNorm(epsilon=1e-5)
        real = float_of("BatchNorm", op, px.dequantize(x), gamma, beta, mean, var)
        py = out_params_for(real, rng)
        got, call = run_s8(op, [x, gamma, beta, mean, var], [px, None, None, None, None], py)
        inits = {"g": gamma, "b": beta, "m": mean, "v": var}
        expected = ort_qdq("BatchNormalization", [x], [px], py, {"epsilon": 1e-5}, inits, list(inits))
        check_s8("BatchNorm vs QDQ float", got, expected)


def test_movement_ops_against_qdq(rng):
    """Moves and selections keep the input's parameters and are exact (0 LSB)."""
    x, p = codes(rng, (2, 3, 7, 6)), act_params(rng)
    pads = np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64)
    resize = dict(mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    cases = [
        ("MaxPool", pool_ops.MaxPool(kernel_shape=(3, 3), strides=(2, 2), pads=(1, 1, 1, 1)),
         dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]), [], {}),
        ("MaxPool", pool_ops.MaxPool(kernel_shape=(2, 2), strides=(2, 2), ceil_mode=True),
         dict(kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1), [], {}),
        ("Pad", shape_ops.Pad(mode="reflect"), dict(mode="reflect"), [pads], {}),
        ("Pad", shape_ops.Pad(mode="edge"), dict(mode="edge"), [pads], {}),
        ("Pad", shape_ops.Pad(), {}, [pads], {}),
        ("Pad", shape_ops.Pad(), {}, [pads, np.float32(float(p.scale) * 7.2)], {}),
        ("Resize", shape_ops.Resize(**resize), resize,
         [None, np.array([1, 1, 2, 1.5], np.float32)], {}),
    ]
    for op_type, op, attrs, extra, _ in cases:
        got, _ = run_s8(op, [x, *extra], [p] + [None] * len(extra), p)
        names = [f"e{i}" if v is not None else "" for i, v in enumerate(extra)]
        inits = {f"e{i}": np.asarray(v) for i, v in enumerate(extra) if v is not None}
        expected = ort_qdq(op_type, [x], [p], p, attrs, inits, names)
        check_s8(f"{op_type} (movement) vs QDQ float", got, expected, exact=True)


# --- Softmax: TFLite's int8 reference kernel -------------------------------------------------

SOFTMAX_OUT = AffineParams(1 / 256, -128)


def softmax_inputs(rng):
    """(codes, input scale) rows: typical logits, flat rows, tiny and huge scales, long rows."""
    yield codes(rng, (64, 10)), 0.1
    yield codes(rng, (32, 7)), 0.02
    yield codes(rng, (16, 33)), 0.5
    yield codes(rng, (8, 5)), 3.0
    yield codes(rng, (4, 6)), 20.0  # input_scale >= 16: left shift 31, only the maximum survives
    yield np.full((3, 9), 17, np.int8), 0.05  # all equal: 1/9 each
    yield np.array([[5], [-128], [127]], np.int8), 0.1  # one entry: probability 1 -> code 127
    yield np.array([[127, -128, -128, 0]], np.int8), 0.25
    yield codes(rng, (2, 1000)) // 8 + 100, 0.01  # near-uniform 1000 classes: sum of exps > 512
    yield rng.integers(120, 128, (1, 9000)).astype(np.int8), 0.001  # int32 sum wraps
    for scale in 10.0 ** rng.uniform(-3, 0.7, 6):
        yield codes(rng, (20, int(rng.integers(2, 40)))), float(np.float32(scale))


def test_softmax_matches_tflite_reference_and_float(rng):
    for x, scale in softmax_inputs(rng):
        px = AffineParams(scale, int(rng.integers(-20, 20)))
        got, call = run_s8(ew.Softmax(axis=-1), [x], [px], SOFTMAX_OUT)
        if x.shape[-1] > 8192:
            assert call.overflow == x.shape[0]
            continue
        assert call.overflow == 0
        ref = np.array([ref_softmax_row([int(v) for v in row], float(px.scale)) for row in x], np.int8)
        check_s8("Softmax vs TFLite reference", got, ref, exact=True)
        real = FLOAT_KERNELS["Softmax"](ew.Softmax(axis=-1), px.dequantize(x).astype(np.float64))
        check_s8("Softmax vs float softmax, rounded", got, SOFTMAX_OUT.quantize(real))
    assert off_rate("Softmax vs float softmax, rounded") < 0.01


def test_softmax_against_qlinearsoftmax(rng):
    from onnx import helper

    for x, scale in itertools.islice(softmax_inputs(rng), 9):
        px = AffineParams(scale, 3)
        got, _ = run_s8(ew.Softmax(axis=-1), [x], [px], SOFTMAX_OUT)
        node = helper.make_node("QLinearSoftmax", UNARY_IO, ["y"], domain="com.microsoft", axis=-1, opset=13)
        expected = ort_run([node], {"x": x}, qinits(x=px, y=SOFTMAX_OUT))
        check_s8("Softmax vs QLinearSoftmax", got, expected)
    assert off_rate("Softmax vs QLinearSoftmax") < 0.05


def test_softmax_axes():
    rng = np.random.default_rng(7)
    x, px = codes(rng, (2, 5, 3, 4)), AffineParams(0.2, 0)

    def last_axis(a):
        return run_s8(ew.Softmax(axis=-1), [np.ascontiguousarray(a)], [px], SOFTMAX_OUT)[0]

    for axis in (1, 2, 3, -3):
        got, _ = run_s8(ew.Softmax(axis=axis), [x], [px], SOFTMAX_OUT)
        expected = np.moveaxis(last_axis(np.moveaxis(x, axis, -1)), -1, axis)
        assert np.array_equal(got, expected), axis
    for axis in (1, 2, 3):  # opset < 13: the trailing dims from `axis` on, flattened
        got, _ = run_s8(ew.Softmax(axis=axis, coerce_2d=True), [x], [px], SOFTMAX_OUT)
        expected = last_axis(x.reshape(int(np.prod(x.shape[:axis])), -1)).reshape(x.shape)
        assert np.array_equal(got, expected), axis
    with pytest.raises(CalibrationError, match="1/256"):
        run_s8(ew.Softmax(), [x], [px], AffineParams(1 / 128, -128))


def test_weighted_layers_refuse_per_channel_scales_off_the_output_axis(rng):
    x, px = codes(rng, (3, 8)), act_params(rng)
    w = codes(rng, (8, 4))
    py = act_params(rng)
    along_k = AffineParams(np.full(8, 0.1), 0, axis=0)
    with pytest.raises(CalibrationError, match="output-channel axis 1"):
        run_s8(conv_ops.MatMul(), [x, w], [px, along_k], py)
    with pytest.raises(CalibrationError, match="output-channel axis 0"):
        run_s8(conv_ops.MatMul(), [x[0], w[:, 0]], [px, along_k], py)  # a vector B: per tensor only
    with pytest.raises(CalibrationError, match="output-channel axis 1"):
        run_s8(conv_ops.Dense(), [x, w], [px, along_k], py)
    # A batched constant B, per channel along its last axis.
    a, b = codes(rng, (2, 5, 8)), codes(rng, (2, 8, 6))
    pb = AffineParams(rng.uniform(0.01, 0.1, 6), 0, axis=2)
    got, _ = run_s8(conv_ops.MatMul(), [a, b], [px, pb], py)
    acc = (a.astype(np.int64) - int(px.zero_point)) @ b.astype(np.int64)
    check_s8("MatMul vs TFLite reference", got, ref_requantize(acc, px.scale, pb.scale, py.scale,
                                                               int(py.zero_point), 2), exact=True)
