"""Integer kernels on OpenCL (``lwnn.backends.opencl_int``) against the CPU integer runtime.

The oracle is exact equality with ``lwnn.backends.cpu_int``: the same ``IntCall`` (same raw
integer inputs, parameters and roles, a fresh memo each) is run by both kernels, and the outputs
must be ``np.array_equal`` with the same dtype and the same int32 overflow count. Grids cover
1-D/2-D convolutions (grouped, depthwise, dilated, strided, asymmetric pads, random geometries),
transposed convolutions, Dense, fused activations, pools, element-wise ops, softmax and function
tables, stand-alone requantization against ``fixedpoint``, per-channel s8
weights, zero points at both extremes, multipliers below and above 1, q8/q16 with negative Q,
negative output shifts and shifts of 32 or more, saturating codes, and int32 overflow (q16 full
range, s8 biases near the int32 limits), and a whole quantized model run with ``backend="opencl"``.
Runs on PoCL in CI and is never skipped: without an OpenCL device these tests fail, saying why.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import lwnn
from lwnn.backends import cpu_int, opencl_int
from lwnn.backends.cpu_int import IntCall
from lwnn.graph import Layer
from lwnn.numerics import fixedpoint as fp
from lwnn.numerics.params import AffineParams, QFormat
from lwnn.ops import conv as c
from lwnn.ops import elementwise as e
from lwnn.ops import pool as p
from lwnn.ops import shape as s
from lwnn.passes.activations import FusedActivation

SCHEMES = ["s8", "q8", "q16"]
ROLES = {t: ["act", "weight", "bias"] for t in ("Conv", "ConvTranspose", "Dense")}


RNG_SEED = 20261123  # seed of the shared ``rng`` fixture (conftest.py) in this module


def check_op(scheme: str, op, inputs: list, params: list, out, roles=None, overflow: int | None = None
             ) -> IntCall:
    """Run ``op`` on the CPU and OpenCL integer kernels of ``scheme``; assert the same integers
    (values and dtype), the same overflow count (equal to ``overflow`` when given), and that the
    device ran it. Returns the OpenCL call."""
    names = tuple(f"in{i}" if v is not None else "" for i, v in enumerate(inputs))
    layer = Layer("under_test", op, names, ("y",))
    op_type = op.inner.op_type if isinstance(op, FusedActivation) else op.type
    roles = roles or ROLES.get(op_type, ["act"] * len(inputs))
    bits = 16 if scheme == "q16" else 8
    cpu_kernel, cl_kernel = cpu_int.kernel_for(scheme, layer), opencl_int.kernel_for(scheme, layer)
    assert cpu_kernel is not None and cl_kernel is not None, f"{scheme} {op_type}: no kernel"
    calls = [IntCall(layer, list(inputs), list(params), [out], bits, roles=list(roles)) for _ in range(2)]
    want, got = cpu_kernel(calls[0]), cl_kernel(calls[1])
    assert opencl_int.ran_on_device(calls[1]), f"{scheme} {op_type} ran on the CPU"
    where = f"{scheme} {op_type} {[np.shape(v) for v in inputs]}"
    assert got.dtype == want.dtype and got.shape == want.shape, f"{where}: {got.dtype}{got.shape} vs " \
        f"{want.dtype}{want.shape}"
    bad = np.flatnonzero(got.ravel() != want.ravel())
    assert bad.size == 0, (f"{where}: {bad.size} of {got.size} codes differ; first at {bad[0]}: "
                           f"OpenCL {got.ravel()[bad[0]]}, CPU {want.ravel()[bad[0]]}")
    assert calls[1].overflow == calls[0].overflow, \
        f"{where}: overflow {calls[1].overflow} vs {calls[0].overflow}"
    if overflow is not None:
        assert calls[0].overflow == overflow, f"{where}: overflow {calls[0].overflow}, expected {overflow}"
    return calls[1]


def codes(rng, shape, bits, spread: float = 1.0) -> np.ndarray:
    hi = max(1, int(2 ** (bits - 1) * spread))
    values = rng.integers(max(-hi, -(2 ** (bits - 1))), hi, size=shape)
    return values.astype(np.int8 if bits == 8 else np.int16)


def affine(scale, zp, axis=None, narrow=False, bits=8) -> AffineParams:
    return AffineParams(np.asarray(scale, np.float32), np.asarray(zp), bits, axis, narrow)


# --- convolutions and Dense -------------------------------------------------------------------

# (input shape, weight shape, strides, pads, dilations, group)
CONV_CASES = [
    ((2, 3, 11), (4, 3, 3), (1,), (1, 1), (1,), 1),  # 1-D
    ((1, 4, 12), (4, 1, 3), (2,), (2, 1), (2,), 4),  # 1-D depthwise, strided, dilated
    ((1, 3, 6, 5), (4, 3, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),
    ((2, 4, 7, 6), (6, 2, 2, 3), (2, 1), (0, 1, 1, 0), (1, 1), 2),  # grouped, asymmetric pads
    ((1, 4, 7, 7), (8, 1, 3, 3), (1, 2), (1, 1, 1, 1), (1, 1), 4),  # depthwise, multiplier 2
    ((1, 3, 9, 8), (2, 3, 3, 2), (1, 1), (2, 0, 2, 1), (2, 3), 1),  # dilated
    ((1, 5, 4, 4), (3, 5, 1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1),  # pointwise
    ((2, 4, 5, 9), (16, 2, 3, 3), (1, 2), (1, 0, 1, 2), (1, 1), 2),  # 4 output channels per work-item
]

# q8/q16 (Qx, Qw, Qb, Qy): shifts (bias, out) = (5, 8), (0, 4), negative Q (5, 7), negative bias
# shift (-4, 3), negative out shift (1, -3), saturating (2, 1), bias << 30 (an exact 64-bit
# accumulator even at q8, overflowing), out shift >= 32 (0, 33).
Q_SETS = [(4, 7, 6, 3), (2, 5, 7, 3), (-2, 3, -4, -6), (2, 3, 9, 2), (1, 2, 2, 6), (6, 5, 9, 10),
          (8, 7, -15, 10), (10, 15, 25, -8)]
# s8 (input zero point, real multiplier scale): zero points at the extremes, multipliers < 1 and > 1.
S8_SETS = [(-128, 1e-3), (127, 0.02), (5, 0.3), (0, 3.0)]


def weighted_sets(scheme: str, rng, x_shape, w_shape, channel_axis: int, channels: int | None = None):
    """(inputs, params, out) triples for a weighted layer under ``scheme`` with ``channels`` output
    channels (default: the weight's ``channel_axis``; other counts get per-tensor s8 weights)."""
    m = channels or w_shape[channel_axis]
    if scheme == "s8":
        for i, (zpx, real) in enumerate(S8_SETS):
            x = codes(rng, x_shape, 8)
            w = codes(rng, w_shape, 8)
            w[w == -128] = -127
            per_channel = i % 2 == 0 and m == w_shape[channel_axis]
            sw = rng.uniform(0.5, 2.0, m) * 0.01 if per_channel else 0.01
            zpw, axis = (np.zeros(m, np.int64), channel_axis) if per_channel else (0, None)
            pw = affine(sw, zpw, axis, narrow=True)
            px = affine(0.05, zpx)
            sy = float(np.max(np.float64(0.05) * np.float64(sw))) / real
            py = affine(sy, [-128, 127, 3, -7][i])
            b = rng.integers(-5000, 5000, m).astype(np.int32)
            if i == 3:  # near the int32 limits: exact accumulators leave int32 and wrap
                b = np.where(np.arange(m) % 2, 2**31 - 50, -(2**31) + 50).astype(np.int32)
            pb = affine(np.float64(0.05) * np.float64(sw), 0, 0 if per_channel else None, bits=32)
            yield [x, w, b], [px, pw, pb], py
        return
    bits = 16 if scheme == "q16" else 8
    for i, (qx, qw, qb, qy) in enumerate(Q_SETS):
        if bits == 16 and qx + qw >= qy and i != len(Q_SETS) - 1:
            qw, qb = qw + 8, qb + 8
        spread = 1.0 if i % 2 else 0.05  # full range saturates (and overflows int32 at q16)
        x, w = codes(rng, x_shape, bits, spread), codes(rng, w_shape, bits)
        b = codes(rng, (m,), bits) if i != 1 else None
        params = [QFormat(qx, bits), QFormat(qw, bits), QFormat(qb, bits)]
        inputs = [x, w, b] if b is not None else [x, w]
        yield inputs, params[: len(inputs)], QFormat(qy, bits)


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("case", range(len(CONV_CASES)))
def test_conv(rng, scheme, case):
    x_shape, w_shape, strides, pads, dilations, group = CONV_CASES[case]
    op = c.Conv(strides=strides, pads=pads, dilations=dilations, group=group)
    for inputs, params, out in weighted_sets(scheme, rng, x_shape, w_shape, 0):
        check_op(scheme, op, inputs, params, out)


CONV_T_CASES = [  # (input, weight, strides, pads, dilations, output_padding, group, output_shape)
    ((1, 3, 4), (3, 2, 3), (2,), (1, 0), (1,), (1,), 1, ()),
    ((1, 2, 3, 4), (2, 3, 3, 2), (2, 1), (1, 0, 0, 1), (1, 2), (0, 0), 1, ()),
    ((2, 4, 3, 3), (4, 1, 2, 2), (2, 2), (0, 0, 0, 0), (1, 1), (1, 0), 2, ()),
    ((1, 2, 3, 3), (2, 4, 3, 3), (2, 2), (), (1, 1), (), 1, (9, 10)),  # negative pads: zero border
    ((1, 8, 4, 5), (8, 3, 4, 4), (2, 2), (1, 1, 1, 1), (1, 1), (), 1, ()),  # DBNet-style x2 upsampling
]


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("case", range(len(CONV_T_CASES)))
def test_conv_transpose(rng, scheme, case):
    x_shape, w_shape, strides, pads, dilations, out_pad, group, out_shape = CONV_T_CASES[case]
    op = c.ConvTranspose(strides=strides, pads=pads, dilations=dilations, output_padding=out_pad,
                         group=group, output_shape=out_shape)
    for inputs, params, out in weighted_sets(scheme, rng, x_shape, w_shape, 1, w_shape[1] * group):
        check_op(scheme, op, inputs, params, out)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_conv_random_geometry(scheme):
    """Random 2-D geometries (kernel, strides, dilations, asymmetric pads, groups) with the first
    parameter set of each scheme; seeded."""
    rng = np.random.default_rng(7)
    for _ in range(12):
        group = int(rng.choice([1, 2, 4]))
        cg, mg = int(rng.integers(1, 4)), int(rng.choice([1, 2, 4, 8]))
        k = [int(v) for v in rng.integers(1, 4, 2)]
        d = [int(v) for v in rng.integers(1, 3, 2)]
        st = [int(v) for v in rng.integers(1, 4, 2)]
        pads = [int(rng.integers(0, k[i % 2])) for i in range(4)]
        size = [int(rng.integers((k[i] - 1) * d[i] + 1, 12)) for i in range(2)]
        op = c.Conv(strides=tuple(st), pads=tuple(pads), dilations=tuple(d), group=group)
        x_shape, w_shape = (int(rng.integers(1, 3)), cg * group, *size), (mg * group, cg, *k)
        inputs, params, out = next(weighted_sets(scheme, rng, x_shape, w_shape, 0))
        check_op(scheme, op, inputs, params, out)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_conv_auto_pad(rng, scheme):
    for auto_pad in ("SAME_UPPER", "SAME_LOWER", "VALID"):
        op = c.Conv(strides=(2, 2), auto_pad=auto_pad)
        inputs, params, out = next(weighted_sets(scheme, rng, (1, 3, 7, 8), (4, 3, 2, 3), 0))
        check_op(scheme, op, inputs, params, out)


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("trans_b", [False, True])
def test_dense(rng, scheme, trans_b):
    for rows, k, n in [(1, 10, 6), (3, 40, 17)]:
        w_shape = (n, k) if trans_b else (k, n)
        for inputs, params, out in weighted_sets(scheme, rng, (rows, k), w_shape, 0 if trans_b else 1):
            check_op(scheme, c.Dense(trans_b=trans_b), inputs, params, out)


def test_dense_bias_per_row_and_trans_a(rng):
    """A Gemm C of shape [M, N] and a transposed A (s8 supports it; CMSIS q8/q16 do not)."""
    x, w = codes(rng, (9, 4), 8), codes(rng, (9, 5), 8)
    b = rng.integers(-3000, 3000, (4, 5)).astype(np.int32)
    params = [affine(0.1, 3), affine(0.02, 0, narrow=True), affine(0.002, 0, bits=32)]
    check_op("s8", c.Dense(trans_a=True), [x, w, b], params, affine(0.05, -2))
    assert opencl_int.kernel_for("q8", Layer("d", c.Dense(trans_a=True), ("a", "b"), ("y",))) is None
    xq = codes(rng, (4, 9), 8)
    qs = [QFormat(3, 8), QFormat(6, 8), QFormat(5, 8)]
    for b_shape in [(4, 5), (1, 5), (4, 1), ()]:  # C broadcasts as NumPy does
        check_op("q8", c.Dense(), [xq, w, codes(rng, b_shape, 8)], qs, QFormat(2, 8))


def test_q16_full_range_overflow_is_counted_and_wrapped(rng):
    """q16 with full-range codes overflows int32 in most outputs: the device counts them and wraps
    the accumulator as the CPU does (values and count equal)."""
    x = np.full((1, 8, 5, 5), 32767, np.int16)
    w = np.full((4, 8, 3, 3), 32767, np.int16)
    w[1] = -32768
    params = [QFormat(15, 16), QFormat(15, 16), QFormat(15, 16)]
    call = check_op("q16", c.Conv(pads=(1, 1, 1, 1)), [x, w, codes(rng, (4,), 16)], params, QFormat(14, 16))
    assert call.overflow > 50


def test_s8_bias_overflow_is_counted(rng):
    x = np.full((1, 2, 3, 3), 127, np.int8)
    w = np.full((2, 2, 3, 3), 127, np.int8)
    b = np.array([2**31 - 1000, -(2**31) + 1000], np.int32)
    params = [affine(0.05, -128), affine(0.01, 0, narrow=True), affine(0.0005, 0, bits=32)]
    # channel 0 leaves int32 at every output, channel 1 does not
    check_op("s8", c.Conv(pads=(1, 1, 1, 1)), [x, w, b], params, affine(0.1, 0), overflow=9)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_fused_activation(rng, scheme):
    x_shape, w_shape, strides, pads, dilations, group = CONV_CASES[3]
    conv = Layer("conv", c.Conv(strides=strides, pads=pads, dilations=dilations, group=group),
                 ("x", "w", "b"), ("t",))
    dense = Layer("fc", c.Dense(trans_b=True), ("x", "w", "b"), ("t",))
    deconv = Layer("up", c.ConvTranspose(strides=(2, 2), pads=(1, 1, 1, 1)), ("x", "w", "b"), ("t",))
    for lo, hi in [(0.0, float("inf")), (0.0, 6.0), (-0.5, 0.25)]:
        for inputs, params, out in weighted_sets(scheme, rng, x_shape, w_shape, 0):
            check_op(scheme, FusedActivation(conv, lo, hi), inputs, params, out)
        for inputs, params, out in weighted_sets(scheme, rng, (3, 12), (5, 12), 0):
            check_op(scheme, FusedActivation(dense, lo, hi), inputs, params, out)
        for inputs, params, out in weighted_sets(scheme, rng, (1, 4, 3, 3), (4, 4, 4, 4), 1):
            check_op(scheme, FusedActivation(deconv, lo, hi), inputs, params, out)


# --- pooling ----------------------------------------------------------------------------------

POOL_CASES = [  # (shape, kernel, strides, pads, dilations, ceil_mode)
    ((2, 3, 9), (3,), (2,), (1, 1), (1,), False),
    ((1, 2, 7, 6), (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), False),
    ((1, 3, 8, 7), (2, 3), (2, 1), (0, 1, 1, 0), (1, 1), True),
    ((2, 2, 9, 9), (3, 2), (1, 2), (1, 0, 1, 0), (2, 1), False),
]


def pool_params(scheme: str, i: int):
    """(input params, output params): s8 pools share them (TFLite); q8/q16 move the Q both ways."""
    if scheme == "s8":
        pa = affine(0.1, [-128, 127, 9, -3][i % 4])
        return pa, pa
    bits = 16 if scheme == "q16" else 8
    qx = [5, -2, 3, 7][i % 4]
    return QFormat(qx, bits), QFormat(qx + [0, 2, -3, -1][i % 4], bits)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_pools(rng, scheme):
    bits = 16 if scheme == "q16" else 8
    for i, (shape, k, st, pads, dil, ceil) in enumerate(POOL_CASES):
        x = codes(rng, shape, bits, 1.0 if i % 2 else 0.3)
        px, py = pool_params(scheme, i)
        check_op(scheme, p.MaxPool(kernel_shape=k, strides=st, pads=pads, dilations=dil, ceil_mode=ceil),
                 [x], [px], px)
        for include in (False, True):
            op = p.AveragePool(kernel_shape=k, strides=st, pads=pads, dilations=dil, ceil_mode=ceil,
                               count_include_pad=include)
            check_op(scheme, op, [x], [px], py)
        check_op(scheme, p.GlobalAveragePool(), [x], [px], py)
        check_op(scheme, p.GlobalMaxPool(), [x], [px], px)


def test_q16_global_average_pool_overflow():
    """A 300x300 plane of 32767 sums past int32 (counted, wrapped); another channel does not."""
    x = np.zeros((1, 2, 300, 300), np.int16)
    x[0, 0] = 32767
    x[0, 1, :10] = -32768
    check_op("q16", p.GlobalAveragePool(), [x], [QFormat(4, 16)], QFormat(4, 16), overflow=1)


# --- element-wise -----------------------------------------------------------------------------

ADD_SHAPES = [((2, 3, 4, 5), (2, 3, 4, 5)), ((2, 3, 4, 5), (1, 3, 1, 1)), ((3, 1, 5), (2, 1, 4, 1)),
              ((4, 6), (1,)), ((2, 40, 64), (2, 40, 64))]  # the last: the CPU's int8 pair table


def add_params(scheme: str, i: int):
    if scheme == "s8":
        sets = [(0.05, -128, 0.02, 127, 0.06, 0), (0.5, 10, 0.01, -20, 0.004, -128),
                (0.01, 0, 0.01, 0, 0.02, 5), (3.0, 127, 0.2, -128, 0.5, 127), (0.03, 1, 0.07, -1, 0.08, 2)]
        sa, za, sb, zb, so, zo = sets[i % len(sets)]
        return affine(sa, za), affine(sb, zb), affine(so, zo)
    bits = 16 if scheme == "q16" else 8
    qa, qb, qo = [(5, 3, 4), (-2, 6, 0), (7, 7, 7), (2, 4, 9), (3, -1, -3)][i % 5]
    return QFormat(qa, bits), QFormat(qb, bits), QFormat(qo, bits)


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("op", [e.Add(), e.Sub()])
def test_add_sub(rng, scheme, op):
    bits = 16 if scheme == "q16" else 8
    for i, (sa, sb) in enumerate(ADD_SHAPES):
        pa, pb, po = add_params(scheme, i)
        check_op(scheme, op, [codes(rng, sa, bits), codes(rng, sb, bits)], [pa, pb], po)


@pytest.mark.parametrize("bits", [8, 16])
def test_max_min_softmax_prelu(rng, bits):
    scheme = f"q{bits}"
    for i, (sa, sb) in enumerate(ADD_SHAPES[:4]):
        pa, pb, po = add_params(scheme, i)
        for op in (e.Max(), e.Min()):
            check_op(scheme, op, [codes(rng, sa, bits), codes(rng, sb, bits)], [pa, pb], po)
    x = codes(rng, (2, 5, 3, 4), bits, 0.1)
    x[0, :, 0, 0] = 2 ** (bits - 1) - 1  # ties at the top
    for axis, coerce in [(-1, False), (1, False), (2, True), (0, False)]:
        for qy in (bits - 1, bits - 3, bits + 1):  # Q7/Q15 moved to other output formats
            op = e.Softmax(axis=axis, coerce_2d=coerce)
            check_op(scheme, op, [x], [QFormat(3, bits)], QFormat(qy, bits))
    x = codes(rng, (2, 4, 3, 5), bits)
    for slope_shape, (qx, qs, qy) in [((4, 1, 1), (5, 7, 4)), ((1,), (3, 2, 6)), ((2, 4, 3, 5), (-1, 6, 2))]:
        check_op(scheme, e.PRelu(), [x, codes(rng, slope_shape, bits)], [QFormat(q, bits) for q in (qx, qs)],
                 QFormat(qy, bits))
    if bits == 16:  # (-32768) * (-32768) + NN_ROUND(31) leaves int32: counted and wrapped
        x = np.array([-32768, -32768, 7, -3], np.int16)
        check_op(scheme, e.PRelu(), [x, np.int16([-32768])], [QFormat(15, 16), QFormat(16, 16)],
                 QFormat(0, 16), overflow=2)


def test_s8_softmax(rng):
    """TFLite's int8 softmax: input scales from tiny (every entry live) to >= 16 (only the maximum
    is), ties at the top, rows long enough for the int32 sum of exps to wrap (counted)."""
    po = affine(1 / 256, -128)
    x = codes(rng, (2, 5, 3, 4), 8)
    x[0, :, 0, 0] = 127
    for scale in (1e-3, 0.05, 0.4, 20.0):
        for axis, coerce in [(-1, False), (1, False), (2, True), (0, False)]:
            check_op("s8", e.Softmax(axis=axis, coerce_2d=coerce), [x], [affine(scale, 3)], po)
    wide = np.full((2, 9000), 100, np.int8)  # 9000 entries at the row maximum: the sum wraps
    wide[1, ::2] = -100
    check_op("s8", e.Softmax(), [wide], [affine(0.05, 0)], po, overflow=1)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_mul(rng, scheme):
    bits = 16 if scheme == "q16" else 8
    for i, (sa, sb) in enumerate(ADD_SHAPES):
        pa, pb, po = add_params(scheme, i)
        check_op(scheme, e.Mul(), [codes(rng, sa, bits), codes(rng, sb, bits)], [pa, pb], po)
    if scheme == "q16":  # (-32768)^2 + NN_ROUND(31) leaves int32: counted and wrapped
        x = np.array([-32768, -32768, 5, 32767], np.int16)
        check_op(scheme, e.Mul(), [x, x], [QFormat(15, 16), QFormat(16, 16)], QFormat(0, 16),
                 overflow=2)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_relu_clip(rng, scheme):
    bits = 16 if scheme == "q16" else 8
    x = codes(rng, (2, 3, 5, 7), bits)
    for i, op in enumerate([e.Relu(), e.Clip(min=0.0, max=6.0), e.Clip(min=-1.0, max=0.5), e.Clip()]):
        if scheme == "s8":
            px = affine(0.05, [-128, 127, 3, 0][i])
            py = affine([0.02, 0.05, 0.3, 0.01][i], [-128, 127, 0, 9][i])
        else:
            px, py = QFormat(4 + i, bits), QFormat([6, 4, 0, 9][i], bits)
        check_op(scheme, op, [x], [px], py)


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("axis", [1, -1, 0])
def test_concat(rng, scheme, axis):
    bits = 16 if scheme == "q16" else 8
    base = [2, 3, 4]
    shapes = []
    for extra in (1, 3, 2):
        shape = list(base)
        shape[axis] = extra
        shapes.append(tuple(shape))
    xs = [codes(rng, sh, bits) for sh in shapes]
    if scheme == "s8":
        po = affine(0.05, -5)
        ps = [po, affine(0.02, 127), affine(0.3, -128)]  # one shares the output's parameters
    else:
        po = QFormat(4, bits)
        ps = [po, QFormat(7, bits), QFormat(-1, bits)]
    check_op(scheme, s.Concat(axis=axis), xs, ps, po)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_function_tables(rng, scheme):
    """Element-wise functions of one code (LUT activations, CMSIS direct tables, a folded chain)
    over every input code and a random tensor."""
    from lwnn.passes.chains import ElementwiseChain

    bits = 16 if scheme == "q16" else 8
    every = np.arange(-(2 ** (bits - 1)), 2 ** (bits - 1)).astype(np.int8 if bits == 8 else np.int16)
    chain = ElementwiseChain((Layer("a", e.Sigmoid(), ("x",), ("t",)), Layer("b", e.Relu(), ("t",), ("u",))),
                             "x", ())
    ops = [e.Sigmoid(), e.Tanh(), e.LeakyRelu(alpha=0.1), e.HardSwish(), e.Exp(), chain]
    for i, op in enumerate(ops):
        if scheme == "s8":
            px, py = affine(0.05, [-128, 127, 3][i % 3]), affine(0.02, [-128, 0, 127][i % 3])
        else:
            px, py = QFormat([4, 9, -1][i % 3] + bits - 8, bits), QFormat([7, 3, 5][i % 3] + bits - 8, bits)
        for x in (every, codes(rng, (2, 3, 9), bits)):
            check_op(scheme, op, [x], [px], py)


def test_device_tensors_chain_on_the_device(rng):
    """Device inputs give device outputs: a Conv feeding a ReLU never leaves the device."""
    from lwnn.backends.opencl_int.device import context

    x, w = codes(rng, (1, 3, 6, 6), 8), codes(rng, (4, 3, 3, 3), 8)
    conv = Layer("c", c.Conv(pads=(1, 1, 1, 1)), ("x", "w"), ("t",))
    relu = Layer("r", e.Relu(), ("t",), ("y",))
    pc, pr = [QFormat(5, 8), QFormat(6, 8)], [QFormat(4, 8)]
    host_t = cpu_int.kernel_for("q8", conv)(IntCall(conv, [x, w], pc, [QFormat(4, 8)], 8, ["act", "weight"]))
    want = cpu_int.kernel_for("q8", relu)(IntCall(relu, [host_t], pr, [QFormat(3, 8)], 8))
    xd = context().upload(x, "x")
    t = opencl_int.kernel_for("q8", conv)(IntCall(conv, [xd, w], pc, [QFormat(4, 8)], 8, ["act", "weight"]))
    y = opencl_int.kernel_for("q8", relu)(IntCall(relu, [t], pr, [QFormat(3, 8)], 8))
    assert hasattr(t, "buffer") and hasattr(y, "buffer")
    got = context().download(y)
    assert got.dtype == want.dtype and np.array_equal(got, want)
    for d in (xd, t, y):
        d.release()


# --- stand-alone requantization ---------------------------------------------------------------


def test_requantize_s8_matches_fixedpoint(rng):
    acc = rng.integers(-(2**31), 2**31, (3, 7, 50), dtype=np.int64).astype(np.int32)
    acc[0, 0, :4] = [-(2**31), 2**31 - 1, 0, -1]
    acc[1] >>= 12
    # multipliers from the smallest kept (shift -31) to the largest shift (30), and one flushed to 0
    reals = np.array([2.0**-40, 2.0**-32 * 1.5, 1e-6, 0.3, 0.99999, 1.7, 2.0**29 * 1.3])
    mult, shift = fp.quantize_multiplier(reals)
    for zp in (-128, 0, 127):
        params = affine(0.1, zp)
        got = opencl_int.requantize(acc, params, mult, shift, axis=1)
        want = fp.requantize_s8(acc, fp.along_axis(mult, 1, 3), fp.along_axis(shift, 1, 3), zp)
        assert got.dtype == want.dtype and np.array_equal(got, want)
        got = opencl_int.requantize(acc, params, mult[1], shift[1], act_min=zp, act_max=100)
        assert np.array_equal(got, fp.requantize_s8(acc, mult[1], shift[1], zp, zp, 100))


@pytest.mark.parametrize("bits", [8, 16])
def test_requantize_q_matches_fixedpoint(rng, bits):
    acc = rng.integers(-(2**31), 2**31, (2, 8, 40), dtype=np.int64).astype(np.int32)
    acc[0, 0, :3] = [-(2**31), 2**31 - 1, -1]
    shifts = np.array([-63, -40, -5, 0, 1, 7, 20, 31], np.int32)
    got = opencl_int.requantize(acc, QFormat(3, bits), shift=shifts, axis=1)
    want = fp.shift_and_saturate(acc, fp.along_axis(shifts, 1, 3), bits)
    assert got.dtype == want.dtype and np.array_equal(got, want)


# --- registry ---------------------------------------------------------------------------------


def test_registry_mirrors_cpu_and_hands_uncovered_configurations_to_it(rng):
    layer = Layer("c3", c.Conv(), ("x", "w"), ("y",))
    for scheme in SCHEMES:
        assert opencl_int.kernel_for(scheme, layer) is not None
        # the CPU integer runtime has a kernel for BatchNorm; the device does not
        bn = Layer("bn", e.BatchNorm(), ("x", "g", "b", "m", "v"), ("y",))
        assert opencl_int.kernel_for(scheme, bn) is None and cpu_int.kernel_for(scheme, bn) is not None
    # A 3-D convolution runs on the CPU kernel inside the call, and says so.
    x, w = codes(rng, (1, 2, 3, 4, 4), 8), codes(rng, (2, 2, 2, 2, 2), 8)
    call = IntCall(layer, [x, w], [QFormat(4, 8), QFormat(6, 8)], [QFormat(5, 8)], 8, roles=["act", "weight"])
    got = opencl_int.kernel_for("q8", layer)(call)
    want = cpu_int.kernel_for("q8", layer)(IntCall(layer, [x, w], call.params, call.out, 8, roles=call.roles))
    assert not opencl_int.ran_on_device(call) and np.array_equal(got, want)
    from lwnn.backends.opencl_int.device import context

    xd = context().upload(x, "x")
    call = IntCall(layer, [xd, w], call.params, call.out, 8, roles=call.roles)
    assert np.array_equal(opencl_int.kernel_for("q8", layer)(call), want)
    xd.release()


# --- a whole quantized model ------------------------------------------------------------------


@pytest.fixture(scope="module")
def bundled(bundled_model, bundled_samples):
    return bundled_model, bundled_samples[0][:32]


@pytest.mark.parametrize("scheme,headroom",
                         [("s8", "full"), ("q8", "full"), ("q16", "full"), ("q16", "lwnn")])
def test_bundled_model_integer_tensors_equal(bundled, scheme, headroom):
    """The bundled CNN quantized and run with ``backend="cpu"``, then ``backend="opencl"``: every
    integer tensor (``raw``), every recorded tensor and the per-layer overflow counts are equal
    (q16 full range overflows), and the layers with device kernels ran on the device."""
    model, images = bundled
    q = lwnn.quantize(model, {"image": images}, scheme, "minmax", q16_headroom=headroom, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # q16 full range: the overflow warning, checked below
        want = q.run({"image": images}, record=True)
        want_raw, want_overflow = dict(q._last_raw), dict(q.overflow)
        q.reset_overflow()
        got = q.run({"image": images}, backend="opencl", record=True)
    assert set(q._last_raw) == set(want_raw)
    for key, value in want_raw.items():
        assert q._last_raw[key].dtype == value.dtype and np.array_equal(q._last_raw[key], value), key
    for name in want:
        assert np.array_equal(got[name], want[name]), name
    assert q.overflow == want_overflow
    assert bool(want_overflow) == ((scheme, headroom) == ("q16", "full"))
    on_device = [name for name, runtime in got.executed_by.items() if runtime == f"opencl/{scheme}"]
    for layer in q.qgraph.layers:
        if q.layer_scheme(layer) and opencl_int.kernel_for(scheme, layer) is not None:
            members = q.qgraph.members.get(layer.name, (layer.name,))
            assert set(members) <= set(on_device), layer.name
    assert len(on_device) >= 6


@pytest.mark.parametrize("scheme", ["s8", "q8", "q16"])
def test_quantized_run_keeps_integer_tensors_on_the_device(bundled, scheme):
    """Between two device layers an integer tensor never leaves the device: the only copies are
    the feed and host-produced tensors going up ("input"), device tensors a CPU layer reads going
    down ("fallback"), and, when the run is done, the recorded tensors and outputs; each tensor
    crosses at most once each way. The outputs are bit-identical to the CPU's."""
    model, images = bundled
    q = lwnn.quantize(model, {"image": images[:4]}, scheme, "minmax", q16_headroom="lwnn", progress=False)
    feeds = {"image": images[:4]}
    got = q.run(feeds, backend="opencl", record=True)
    want = q.run(feeds, record=True)
    for name in want:
        assert np.array_equal(got[name], want[name]), name
    unrecorded = q.run(feeds, backend="opencl")
    for name, value in q.run(feeds).items():
        assert np.array_equal(unrecorded[name], value), name

    producer = {o: layer for layer in q.qgraph.steps(model.plan({"image": images[:4].shape}).steps)
                for o in layer.outputs}
    ran = {layer.name: got.executed_by[q.qgraph.members.get(layer.name, (layer.name,))[0]]
           for layer in producer.values()}
    reader = {layer.name: layer for layer in producer.values()}
    transfers = got.transfers
    assert {t.reason for t in transfers} <= {"input", "fallback", "record", "output"}
    crossings = [(t.tensor, t.direction) for t in transfers if t.reason in ("input", "fallback")]
    assert len(crossings) == len(set(crossings))  # at most once each way
    for t in transfers:
        if t.reason == "input":  # up: a feed or what a CPU layer produced, for a device layer
            assert t.direction == "to_device" and ran[t.layer].startswith("opencl/"), t
            assert t.tensor in feeds or ran[producer[t.tensor].name].startswith("cpu/"), t
        elif t.reason == "fallback":  # down: what a device layer produced, for a CPU layer
            assert t.direction == "to_host" and ran[t.layer].startswith("cpu/"), t
            assert ran[producer[t.tensor].name].startswith("opencl/"), t
            assert t.tensor in reader[t.layer].inputs
    device_edges = [(n, layer.name) for layer in producer.values() if ran[layer.name].startswith("opencl/")
                    for n in layer.inputs if n in producer and ran[producer[n].name].startswith("opencl/")]
    # the claim is not vacuous: tensors passed from device layer to device layer
    assert len(device_edges) >= 4
    moved = {t.tensor for t in transfers if t.reason in ("input", "fallback")}
    assert not moved & {n for n, _ in device_edges if all(
        ran[r.name].startswith("opencl/") for r in producer.values() if n in r.inputs)}
