"""q8/q16 integer kernels (``lwnn.backends.cpu_int.qformat``) against an independent reference.

The reference below is written with Python ints, one loop over output pixels and kernel taps,
transliterated from the CMSIS-NN legacy q7/q15 C code (``arm_convolve_HWC_q7_basic`` /
``arm_fully_connected_q7``/``q15``: ``acc = (bias << bias_shift) + NN_ROUND(out_shift)`` then
``acc += x*w`` in a ``q31_t``, ``__SSAT(acc >> out_shift, bits)``; the reference path of
``arm_avepool_q7_HWC``; ``arm_softmax_q7`` V1.0.1 and ``arm_softmax_q15``;
``arm_nn_activations_direct_q7``/``q15``), plus lwnn's documented extensions where the C code is
undefined or absent (negative shifts, shifts of 32 or more, Q alignment of add/concat, tables built
from the float function). It imports none of lwnn's arithmetic: every kernel is compared bit for
bit over grids of shapes and Q parameters (q8 and q16, negative Q, positive and negative shifts,
saturation, int32 overflow). End to end, the bundled model runs entirely on the integer runtime.
"""

from __future__ import annotations

import math
from functools import partial
from itertools import product

import numpy as np
import pytest

import lwnn
from lwnn.backends.cpu_int import IntCall, kernel_for
from lwnn.graph import Layer
from lwnn.numerics.params import QFormat
from lwnn.ops import conv as c
from lwnn.ops import elementwise as e
from lwnn.ops import pool as p
from lwnn.ops import shape as s

I32_MIN, I32_MAX = -(2**31), 2**31 - 1


# --- the reference: scalar C semantics with Python ints ---------------------------------------


def wrap32(v: int) -> int:
    return (v + 2**31) % 2**32 - 2**31


def ssat(v: int, bits: int) -> int:
    return min(max(v, -(2 ** (bits - 1))), 2 ** (bits - 1) - 1)


def nn_round(shift: int) -> int:
    return 1 << (shift - 1) if shift > 0 else 0


def move(v: int, d: int) -> int:
    """From Q to Q + d: exact left shift, or right shift rounding half up (NN_ROUND)."""
    return v << d if d >= 0 else (v + (1 << (-d - 1))) >> -d


def quantize(v: float, q: int, bits: int) -> int:
    """floor(v * 2**q + 1/2), saturated (the q-format rule for floats)."""
    return ssat(math.floor(v * 2.0**q + 0.5), bits)


class Accumulator:
    """A ``q31_t`` accumulator of the C kernels, with the exact sum kept beside it."""

    def __init__(self, start: int):
        self.register, self.exact = wrap32(start), start

    def add(self, v: int) -> None:
        self.register, self.exact = wrap32(self.register + v), self.exact + v

    @property
    def overflowed(self) -> bool:
        return not I32_MIN <= self.exact <= I32_MAX


def start_value(bias: int | None, bias_shift: int, out_shift: int) -> int:
    """``(bias << bias_shift) + NN_ROUND(out_shift)``. For out_shift >= 32 (undefined in C) lwnn
    defines the result as the exact rounding shift of the register, 0, and leaves NN_ROUND out."""
    b = 0 if bias is None else move(bias, bias_shift)
    return b + (nn_round(out_shift) if out_shift <= 31 else 0)


def requantize(acc: Accumulator, out_shift: int, bits: int) -> int:
    v = acc.register
    if out_shift > 31:
        return 0
    return ssat(v >> out_shift if out_shift >= 0 else v << -out_shift, bits)


def ref_conv(x, w, b, strides, pads, dilations, group, qs, bits):
    """ONNX Conv geometry, CMSIS arithmetic; ``qs = (Qx, Qw, Qb, Qy)``."""
    qx, qw, qb, qy = qs
    bias_shift, out_shift = qx + qw - qb, qx + qw - qy
    n_sp = x.ndim - 2
    n_batch, m_out, cg, k = x.shape[0], w.shape[0], w.shape[1], w.shape[2:]
    size = x.shape[2:]
    out = [(size[i] + pads[i] + pads[n_sp + i] - (k[i] - 1) * dilations[i] - 1) // strides[i] + 1
           for i in range(n_sp)]
    y = np.zeros((n_batch, m_out, *out), np.int64)
    overflow = 0
    for n, m, o in product(range(n_batch), range(m_out), product(*map(range, out))):
        g = m // (m_out // group)
        acc = Accumulator(start_value(None if b is None else int(b[m]), bias_shift, out_shift))
        for ci, tap in product(range(cg), product(*map(range, k))):
            pos = [o[i] * strides[i] + tap[i] * dilations[i] - pads[i] for i in range(n_sp)]
            if all(0 <= pos[i] < size[i] for i in range(n_sp)):
                acc.add(x.item(n, g * cg + ci, *pos) * w.item(m, ci, *tap))
        y[(n, m, *o)] = requantize(acc, out_shift, bits)
        overflow += acc.overflowed
    return y, overflow


def ref_conv_transpose(x, w, b, strides, pads, dilations, out_pad, group, qs, bits):
    qx, qw, qb, qy = qs
    bias_shift, out_shift = qx + qw - qb, qx + qw - qy
    n_sp = x.ndim - 2
    n_batch, c_in, size = x.shape[0], x.shape[1], x.shape[2:]
    mg, k = w.shape[1], w.shape[2:]
    out = [strides[i] * (size[i] - 1) + out_pad[i] + (k[i] - 1) * dilations[i] + 1 - pads[i] - pads[n_sp + i]
           for i in range(n_sp)]
    y = np.zeros((n_batch, mg * group, *out), np.int64)
    overflow = 0
    for n, m, o in product(range(n_batch), range(mg * group), product(*map(range, out))):
        g, mm = divmod(m, mg)
        acc = Accumulator(start_value(None if b is None else int(b[m]), bias_shift, out_shift))
        for ci, tap in product(range(c_in // group), product(*map(range, k))):
            num = [o[i] + pads[i] - tap[i] * dilations[i] for i in range(n_sp)]
            if all(v % strides[i] == 0 and 0 <= v // strides[i] < size[i] for i, v in enumerate(num)):
                pos = [v // strides[i] for i, v in enumerate(num)]
                c_ = g * (c_in // group) + ci
                acc.add(x.item(n, c_, *pos) * w.item(c_, mm, *tap))
        y[(n, m, *o)] = requantize(acc, out_shift, bits)
        overflow += acc.overflowed
    return y, overflow


def ref_matmul(a, b, bias, qs, bits):
    """``a [..., M, K] @ b [K, N] (+ bias [N])`` with the fully-connected arithmetic."""
    qx, qw, qb, qy = qs
    bias_shift, out_shift = qx + qw - qb, qx + qw - qy
    y = np.zeros((*a.shape[:-1], b.shape[1]), np.int64)
    overflow = 0
    for idx in product(*map(range, a.shape[:-1])):
        for j in range(b.shape[1]):
            acc = Accumulator(start_value(None if bias is None else int(bias[j]), bias_shift, out_shift))
            for i in range(a.shape[-1]):
                acc.add(a.item(*idx, i) * b.item(i, j))
            y[(*idx, j)] = requantize(acc, out_shift, bits)
            overflow += acc.overflowed
    return y, overflow


def ref_average_pool(x, kernel, strides, pads, include_pad, bits):
    """arm_avepool_q7_HWC reference path: int sum of the in-bounds taps, C division."""
    n_sp = x.ndim - 2
    size = x.shape[2:]
    out = [(size[i] + pads[i] + pads[n_sp + i] - kernel[i]) // strides[i] + 1 for i in range(n_sp)]
    y = np.zeros((*x.shape[:2], *out), np.int64)
    for n, ch, o in product(range(x.shape[0]), range(x.shape[1]), product(*map(range, out))):
        total = count = 0
        for tap in product(*map(range, kernel)):
            pos = [o[i] * strides[i] + tap[i] - pads[i] for i in range(n_sp)]
            if all(0 <= pos[i] < size[i] for i in range(n_sp)):
                total += x.item(n, ch, *pos)
                count += 1
        count = math.prod(kernel) if include_pad else count
        quotient = abs(total) // count
        y[(n, ch, *o)] = ssat(quotient if total >= 0 else -quotient, bits)
    return y


def ref_softmax_row(row: list[int], bits: int) -> list[int]:
    if bits == 8:  # arm_softmax_q7 V1.0.1, reference (non-DSP) path
        base = max(-128, *row) - 8
        total = sum(1 << min(max(v - base, 0), 7) for v in row)  # __USAT(v - base, 3)
        output_base = (1 << 20) // total
        return [ssat(output_base >> min(max(13 + base - v, 0), 31), 8) for v in row]
    base = max(-0x100000, *row) - 16  # arm_softmax_q15
    total = sum(1 << min(max(v - base, 0), 31) for v in row if v > base)
    output_base = wrap32((1 << 32) // total)
    return [ssat(output_base >> min(max(17 + base - v, 0), 31), 16) if v > base else 0 for v in row]


def ref_table(fn, bits: int) -> list[int]:
    """CMSIS's table layout: index uint8(k) holds f(k/16) in Q(bits-1), k in [-128, 127]."""
    table = [0] * 256
    for k in range(-128, 128):
        table[k & 0xFF] = quantize(fn(k / 16), bits - 1, bits)
    return table


def ref_activation_direct(v: int, qx: int, bits: int, table: list[int]) -> int:
    """arm_nn_activations_direct_q7/q15 on the input moved to Qt = clamp(Qx, bits-4, bits-1)."""
    qt = min(max(qx, bits - 4), bits - 1)
    t = ssat(move(v, qt - qx), bits)
    int_width = bits - 1 - qt
    if bits == 8:
        return table[(t >> (3 - int_width)) & 0xFF]
    shift_size = 8 + 3 - int_width
    bit_mask = 0x7FF >> int_width
    full_frac = bit_mask + 1
    frac = t & bit_mask
    value = table[(t >> shift_size) & 0xFF]
    if (t >> shift_size) == 0x7F:
        return value
    value2 = table[(1 + ((t >> shift_size) & 0xFF)) & 0xFF]
    return ((full_frac - frac) * value + value2 * frac) >> shift_size


def sigmoid(v: float) -> float:
    return 1 / (1 + math.exp(-v)) if v >= 0 else math.exp(v) / (1 + math.exp(v))


def frac_bits_for(absmax: float, bits: int) -> int:
    """(bits-1) - ceil(log2 absmax), exact at powers of two; 0 gets bits-1."""
    if absmax == 0:
        return bits - 1
    m, ex = math.frexp(absmax)
    return (bits - 1) - (ex - 1 if m == 0.5 else ex)


# --- running one lwnn kernel ------------------------------------------------------------------


def check_kernel(op, inputs, params, out: QFormat, expected, overflow: int | None = 0):
    """Run the q8/q16 kernel of ``op`` on raw ``inputs`` and assert it equals ``expected`` bit for
    bit (values and dtype) and counts ``overflow`` int32 overflows. Returns the IntCall."""
    bits = out.bits
    names = tuple(f"in{i}" if v is not None else "" for i, v in enumerate(inputs))
    layer = Layer("under_test", op, names, ("y",))
    kernel = kernel_for("q8" if bits == 8 else "q16", layer)
    assert kernel is not None, f"no q{bits} kernel for {op}"
    call = IntCall(layer, list(inputs), list(params), [out], bits)
    got = kernel(call)
    assert got.dtype == out.dtype, f"{op.type}: dtype {got.dtype}, expected {out.dtype}"
    expected = np.asarray(expected).reshape(got.shape)
    bad = np.flatnonzero(got.ravel() != expected.ravel())
    assert bad.size == 0, (
        f"{op.type} q{bits}: {bad.size} of {got.size} codes differ; first at {bad[0]}: "
        f"lwnn {got.ravel()[bad[0]]}, reference {expected.ravel()[bad[0]]}")
    if overflow is not None:
        assert call.overflow == overflow, f"{op.type}: overflow {call.overflow}, reference {overflow}"
    return call


def codes(rng, shape, bits, spread: float = 1.0):
    """Random codes over ``spread`` of the full range (full range: saturating products)."""
    hi = max(1, int(2 ** (bits - 1) * spread))
    values = rng.integers(max(-hi, -(2 ** (bits - 1))), hi, size=shape)
    return values.astype(np.int8 if bits == 8 else np.int16)


RNG_SEED = 20240613  # seed of the shared ``rng`` fixture (conftest.py) in this module


# Q sets (Qx, Qw, Qb, Qy) for q8: (bias_shift, out_shift) = (5, 8), (0, 4), negative Q everywhere
# (5, 7), a negative bias shift (-4, 3), a negative out shift (1, -3), and a saturating one (2, 1).
# For q16 the weights get 8 more fraction bits (out_shift + 8), except in the negative-shift set,
# so that most outputs land inside the range rather than saturate.
Q_SETS = [(4, 7, 6, 3), (2, 5, 7, 3), (-2, 3, -4, -6), (2, 3, 9, 2), (1, 2, 2, 6), (6, 5, 9, 10)]


def q_sets(bits: int):
    for qx, qw, qb, qy in Q_SETS:
        yield (qx, qw + 8, qb + 8, qy) if bits == 16 and qx + qw >= qy else (qx, qw, qb, qy)


# --- convolutions -----------------------------------------------------------------------------

# (input shape, weight shape, strides, pads, dilations, group)
CONV_CASES = [
    ((2, 3, 11), (4, 3, 3), (1,), (1, 1), (1,), 1),  # 1-D
    ((1, 4, 12), (4, 1, 3), (2,), (2, 1), (2,), 4),  # 1-D depthwise, strided, dilated
    ((1, 3, 6, 5), (4, 3, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),
    ((2, 4, 7, 6), (6, 2, 2, 3), (2, 1), (0, 1, 1, 0), (1, 1), 2),  # grouped, asymmetric pads
    ((1, 4, 7, 7), (8, 1, 3, 3), (1, 2), (1, 1, 1, 1), (1, 1), 4),  # depthwise, multiplier 2
    ((1, 3, 9, 8), (2, 3, 3, 2), (1, 1), (2, 0, 2, 1), (2, 3), 1),  # dilated
    ((1, 5, 4, 4), (3, 5, 1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1),  # pointwise
]


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("case", range(len(CONV_CASES)))
def test_conv_matches_reference(rng, bits, case):
    x_shape, w_shape, strides, pads, dilations, group = CONV_CASES[case]
    op = c.Conv(strides=strides, pads=pads, dilations=dilations, group=group)
    for i, qs in enumerate(q_sets(bits)):
        spread = 1.0 if i % 2 else 0.05  # full-range codes saturate; small ones do not
        x, w = codes(rng, x_shape, bits, spread), codes(rng, w_shape, bits)
        b = codes(rng, (w_shape[0],), bits) if i != 1 else None
        expected, overflow = ref_conv(x, w, b, strides, pads, dilations, group, qs, bits)
        params = [QFormat(qs[0], bits), QFormat(qs[1], bits), QFormat(qs[2], bits)]
        inputs = [x, w, b] if b is not None else [x, w]
        check_kernel(op, inputs, params[: len(inputs)], QFormat(qs[3], bits), expected, overflow)


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("x_shape,w_shape,strides,pads,dilations,out_pad,group", [
    ((1, 3, 4), (3, 2, 3), (2,), (1, 0), (1,), (1,), 1),
    ((1, 2, 3, 4), (2, 3, 3, 2), (2, 1), (1, 0, 0, 1), (1, 2), (0, 0), 1),
    ((2, 4, 3, 3), (4, 1, 2, 2), (2, 2), (0, 0, 0, 0), (1, 1), (1, 0), 2),
])
def test_conv_transpose_matches_reference(rng, bits, x_shape, w_shape, strides, pads, dilations, out_pad,
                                          group):
    op = c.ConvTranspose(strides=strides, pads=pads, dilations=dilations, output_padding=out_pad,
                         group=group)
    for i, qs in enumerate(q_sets(bits)):
        x, w = codes(rng, x_shape, bits, 1.0 if i % 2 else 0.05), codes(rng, w_shape, bits)
        b = codes(rng, (w_shape[1] * group,), bits)
        expected, overflow = ref_conv_transpose(x, w, b, strides, pads, dilations, out_pad, group, qs, bits)
        params = [QFormat(q, bits) for q in qs[:3]]
        check_kernel(op, [x, w, b], params, QFormat(qs[3], bits), expected, overflow)


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("trans_b", [False, True])
def test_dense_and_matmul_match_reference(rng, bits, trans_b):
    for i, qs in enumerate(q_sets(bits)):
        x, w = codes(rng, (5, 23), bits, 1.0 if i % 2 else 0.1), codes(rng, (23, 7), bits)
        b = codes(rng, (7,), bits)
        expected, overflow = ref_matmul(x, w, b, qs, bits)
        stored = np.ascontiguousarray(w.T) if trans_b else w
        check_kernel(c.Dense(trans_b=trans_b), [x, stored, b], [QFormat(q, bits) for q in qs[:3]],
                     QFormat(qs[3], bits), expected, overflow)
        a = codes(rng, (2, 3, 23), bits, 0.3)
        expected, overflow = ref_matmul(a, w, None, qs, bits)
        check_kernel(c.MatMul(), [a, w], [QFormat(qs[0], bits), QFormat(qs[1], bits)],
                     QFormat(qs[3], bits), expected, overflow)


def test_dense_declares_what_it_supports():
    layer = Layer("d", c.Dense(alpha=0.5), ("a", "b"), ("y",))
    assert kernel_for("q8", layer) is None and kernel_for("q16", layer) is None
    assert kernel_for("q8", Layer("d", c.Dense(trans_a=True), ("a", "b"), ("y",))) is None
    assert kernel_for("q16", Layer("d", c.Dense(trans_b=True), ("a", "b", "c"), ("y",))) is not None


def test_shifts_of_32_or_more_and_far_left(rng):
    """out_shift >= 32 gives 0 (the exact rounding shift of any int32); a bias moved left by 32
    or more wraps to 0 in the register and is counted as overflow; big left out_shifts saturate."""
    x, w, b = codes(rng, (3, 9), 16), codes(rng, (9, 4), 16), codes(rng, (4,), 16)
    for qs in [(15, 15, 0, -3), (15, 15, -5, 10), (0, 0, 4, 40), (-6, -6, -50, -15)]:
        expected, overflow = ref_matmul(x, w, b, qs, 16)
        check_kernel(c.Dense(), [x, w, b], [QFormat(q, 16) for q in qs[:3]], QFormat(qs[3], 16),
                     expected, overflow)


# --- int32 overflow and the q16 headroom trade-off --------------------------------------------


def test_q16_full_range_accumulator_overflow_is_counted_and_wrapped(rng):
    """64 products of full-range q15 codes overflow int32; lwnn counts each overflowing
    accumulator and wraps it exactly as the device's 32-bit register does."""
    x, w, b = codes(rng, (16, 64), 16), codes(rng, (64, 8), 16), codes(rng, (8,), 16)
    qs = (15, 15, 15, 14)
    expected, overflow = ref_matmul(x, w, b, qs, 16)
    assert overflow > 16  # the data really overflows
    check_kernel(c.Dense(), [x, w, b], [QFormat(q, 16) for q in qs[:3]], QFormat(qs[3], 16),
                 expected, overflow)
    # The rounding constant is part of the register: 2 * 32767**2 = 2**31 - 131070 fits int32,
    # plus NN_ROUND(18) = 2**17 it does not, and the wrapped value saturates low.
    x, w = np.full((1, 2), 32767, np.int16), np.full((2, 1), 32767, np.int16)
    expected, overflow = ref_matmul(x, w, None, (15, 15, 0, 12), 16)
    assert overflow == 1 and expected.item() == -8192
    check_kernel(c.MatMul(), [x, w], [QFormat(15, 16)] * 2, QFormat(12, 16), expected, 1)


def _dense_q16(x, w, q_of):
    """Quantize x, w, x@w with the Q rule ``q_of(absmax)`` and run the q16 dense kernel."""
    y = x @ w
    px, pw, py = (QFormat(q_of(float(np.abs(t).max())), 16) for t in (x, w, y))
    layer = Layer("fc", c.Dense(), ("x", "w"), ("y",))
    call = IntCall(layer, [px.quantize(x), pw.quantize(w)], [px, pw], [py], 16)
    got = py.dequantize(kernel_for("q16", layer)(call)).astype(np.float64)
    rms = float(np.sqrt(np.mean((got - y) ** 2)))
    return rms, call.overflow, float(np.abs(y).max())


def test_q16_headroom_trade_off(rng):
    """Full range (``Q = 15 - int_bits``) against LWNN's choice (``Q = 8 - int_bits`` for every
    tensor, 7 bits of headroom): on a long accumulation full range overflows int32 and its output
    is garbage, LWNN's is fine; on a short one nothing overflows and full range is ~2**7 more
    precise. The error is the RMS against the float product. (Full-range q15 products reach
    2**30: two of them of one sign already fill int32, so "short" here means K=4.)"""
    full, lwnn_q = partial(frac_bits_for, bits=16), partial(frac_bits_for, bits=9)
    x = rng.uniform(-4, 4, (64, 512))
    w = rng.normal(0, 0.15, (512, 16))
    err_full, ovf_full, scale = _dense_q16(x, w, full)
    err_lwnn, ovf_lwnn, _ = _dense_q16(x, w, lwnn_q)
    print(f"\nK=512: full range rms {err_full:.3g} ({ovf_full} overflows), "
          f"LWNN headroom rms {err_lwnn:.3g} ({ovf_lwnn} overflows), |y| max {scale:.3g}")
    assert ovf_full > 0 and ovf_lwnn == 0
    assert err_full > 20 * err_lwnn
    x, w = x[:, :4], w[:4] * 4
    err_full, ovf_full, scale = _dense_q16(x, w, full)
    err_lwnn, ovf_lwnn, _ = _dense_q16(x, w, lwnn_q)
    print(f"K=4: full range rms {err_full:.3g} ({ovf_full} overflows), "
          f"LWNN headroom rms {err_lwnn:.3g} ({ovf_lwnn} overflows), |y| max {scale:.3g}")
    assert ovf_full == 0 and ovf_lwnn == 0
    assert err_full < err_lwnn / 30


# --- element-wise ops, pooling, concat, batchnorm ---------------------------------------------

# (Qa, Qb, Qy) for q8; q16 inputs get 4 more fraction bits (products: 8 more).
ALIGN_QS = [(5, 5, 5), (7, 2, 4), (-3, 1, -1), (2, 6, 9), (12, -2, 3)]


def align_qs(bits: int):
    for qa, qb, qy in ALIGN_QS:
        yield (qa + 4, qb + 4, qy) if bits == 16 else (qa, qb, qy)


@pytest.mark.parametrize("bits", [8, 16])
def test_add_sub_max_min_mul_prelu_match_reference(rng, bits):
    for i, (qa, qb, qy) in enumerate(align_qs(bits)):
        spread = 1.0 if i % 2 else 0.2
        a, b = codes(rng, (3, 4, 5), bits, spread), codes(rng, (4, 1), bits, spread)  # broadcasting
        pa, pb, out = QFormat(qa, bits), QFormat(qb, bits), QFormat(qy, bits)
        ea, eb = (t.ravel().tolist() for t in np.broadcast_arrays(a.astype(np.int64), b.astype(np.int64)))
        aligned = [(move(u, qy - qa), move(v, qy - qb)) for u, v in zip(ea, eb)]
        check_kernel(e.Add(), [a, b], [pa, pb], out, [ssat(u + v, bits) for u, v in aligned])
        check_kernel(e.Sub(), [a, b], [pa, pb], out, [ssat(u - v, bits) for u, v in aligned])
        check_kernel(e.Max(), [a, b], [pa, pb], out, [ssat(max(u, v), bits) for u, v in aligned])
        check_kernel(e.Min(), [a, b], [pa, pb], out, [ssat(min(u, v), bits) for u, v in aligned])
        product_shift = qa + qb - qy
        products = [Accumulator(u * v + (nn_round(product_shift) if product_shift <= 31 else 0))
                    for u, v in zip(ea, eb)]
        check_kernel(e.Mul(), [a, b], [pa, pb], out, [requantize(t, product_shift, bits) for t in products],
                     sum(t.overflowed for t in products))
        prelu = [requantize(t, product_shift, bits) if u < 0 else ssat(move(u, qy - qa), bits)
                 for t, u in zip(products, ea)]
        check_kernel(e.PRelu(), [a, b], [pa, pb], out, prelu, None)


@pytest.mark.parametrize("bits", [8, 16])
def test_relu_clip_concat_match_reference(rng, bits):
    for i, (qa, qb, qy) in enumerate(align_qs(bits)):
        spread = 1.0 if i % 2 else 0.2
        x, z = codes(rng, (2, 3, 4), bits, spread), codes(rng, (2, 2, 4), bits, spread)
        px, pz, out = QFormat(qa, bits), QFormat(qb, bits), QFormat(qy, bits)
        flat = x.ravel().tolist()
        check_kernel(e.Relu(), [x], [px], out, [ssat(move(max(v, 0), qy - qa), bits) for v in flat])
        for lo, hi in [(0.0, 6.0), (-1.5, 0.75), (float("-inf"), 2.0), (-3.0, float("inf"))]:
            lo_q = -(2 ** (bits - 1)) if lo == float("-inf") else quantize(lo, qy, bits)
            hi_q = 2 ** (bits - 1) - 1 if hi == float("inf") else quantize(hi, qy, bits)
            expected = [min(max(ssat(move(v, qy - qa), bits), lo_q), hi_q) for v in flat]
            check_kernel(e.Clip(min=lo, max=hi), [x], [px], out, expected)
        parts = [np.array([ssat(move(v, qy - q), bits) for v in t.ravel().tolist()]).reshape(t.shape)
                 for t, q in ((x, qa), (z, qb))]
        check_kernel(s.Concat(axis=1), [x, z], [px, pz], out, np.concatenate(parts, axis=1))


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("shape,kernel,strides,pads,include_pad", [
    ((2, 3, 9), (3,), (2,), (1, 1), False),
    ((1, 2, 7, 6), (3, 3), (2, 2), (0, 0, 0, 0), True),
    ((1, 3, 6, 7), (2, 3), (1, 2), (1, 1, 0, 1), False),
    ((1, 2, 5, 5), (3, 3), (1, 1), (1, 1, 1, 1), True),
])
def test_average_pool_matches_cmsis_reference(rng, bits, shape, kernel, strides, pads, include_pad):
    x = codes(rng, shape, bits)
    op = p.AveragePool(kernel_shape=kernel, strides=strides, pads=pads, count_include_pad=include_pad)
    params = QFormat(3, bits)
    check_kernel(op, [x], [params], params, ref_average_pool(x, kernel, strides, pads, include_pad, bits))
    spatial = math.prod(shape[2:])
    sums = x.astype(np.int64).reshape(*shape[:2], -1).sum(-1).tolist()
    expected = [[ssat(abs(t) // spatial * (1 if t >= 0 else -1), bits) for t in row] for row in sums]
    check_kernel(p.GlobalAveragePool(), [x], [params], params, expected)


@pytest.mark.parametrize("bits", [8, 16])
def test_batch_norm_matches_reference(rng, bits):
    """BatchNorm as a depthwise 1x1 convolution: k = gamma/sqrt(var+eps), b = beta - mean*k,
    each quantized per tensor with Q = (bits-1) - ceil(log2 max|.|), then the conv formula."""
    channels, eps = 5, 1e-5
    gamma = rng.uniform(-2, 3, channels).astype(np.float32)
    beta, mean = rng.normal(0, 2, channels).astype(np.float32), rng.normal(0, 1, channels).astype(np.float32)
    var = rng.uniform(0.1, 4, channels).astype(np.float32)
    k = [float(g) / math.sqrt(float(v) + eps) for g, v in zip(gamma, var)]
    shift = [float(bb) - float(m) * kk for bb, m, kk in zip(beta, mean, k)]
    qk, qb = frac_bits_for(max(map(abs, k)), bits), frac_bits_for(max(map(abs, shift)), bits)
    k_q, b_q = [quantize(v, qk, bits) for v in k], [quantize(v, qb, bits) for v in shift]
    for qx, qy in [(4, 3), (-1, 2), (6, 9), (7, 0), (0, 12)]:
        x = codes(rng, (2, channels, 3, 4), bits)
        w = np.array(k_q).reshape(channels, 1, 1, 1)
        expected, overflow = ref_conv(x, w, b_q, (1, 1), (0, 0, 0, 0), (1, 1), channels,
                                      (qx, qk, qb, qy), bits)
        check_kernel(e.BatchNorm(epsilon=eps), [x, gamma, beta, mean, var], [QFormat(qx, bits)] + [None] * 4,
                     QFormat(qy, bits), expected, overflow)


# --- softmax and activation tables ------------------------------------------------------------


@pytest.mark.parametrize("bits", [8, 16])
def test_softmax_matches_cmsis(rng, bits):
    out = QFormat(bits - 1, bits)
    x = codes(rng, (6, 10), bits)
    x[1] = x[1] // 64  # close codes: several contribute
    x[2, :] = 3  # ties
    x[3, 4] = 2 ** (bits - 1) - 1  # one dominant code
    x[4] = -(2 ** (bits - 1))  # all at the minimum
    check_kernel(e.Softmax(axis=1), [x], [QFormat(4, bits)], out,
                 [ref_softmax_row(row, bits) for row in x.tolist()])
    # Along axis 1 of a 4-D tensor (channels, as LWNN's NHWC kernels), and opset < 13 coercion.
    y = codes(rng, (2, 5, 3, 2), bits, 0.05)
    rows = np.moveaxis(y, 1, -1).reshape(-1, 5).tolist()
    expected = np.moveaxis(np.array([ref_softmax_row(r, bits) for r in rows]).reshape(2, 3, 2, 5), -1, 1)
    check_kernel(e.Softmax(axis=1), [y], [QFormat(2, bits)], out, expected)
    rows = y.reshape(2, -1).tolist()
    check_kernel(e.Softmax(axis=1, coerce_2d=True), [y], [QFormat(2, bits)], out,
                 [ref_softmax_row(r, bits) for r in rows])


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("op,fn", [(e.Sigmoid(), sigmoid), (e.Tanh(), math.tanh)])
def test_sigmoid_tanh_match_cmsis_direct_tables(bits, op, fn):
    """Every input code, for input Q below, inside and above CMSIS's int_width range [0, 3]."""
    table = ref_table(fn, bits)
    x = np.arange(-(2 ** (bits - 1)), 2 ** (bits - 1)).astype(np.int8 if bits == 8 else np.int16)
    out = QFormat(bits - 1, bits)
    for qx in range(bits - 7, bits + 2):
        expected = [ref_activation_direct(v, qx, bits, table) for v in x.tolist()]
        check_kernel(op, [x], [QFormat(qx, bits)], out, expected)
    assert table[0] == (2 ** (bits - 2) if fn is sigmoid else 0)  # f(0) is 0.5 or 0, exactly


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("op,fn", [
    (e.HardSigmoid(alpha=0.2, beta=0.5), lambda v: min(max(v * 0.2 + 0.5, 0), 1)),
    (e.HardSwish(), lambda v: v * min(max(v / 6 + 0.5, 0), 1)),
    (e.LeakyRelu(alpha=0.1), lambda v: v if v >= 0 else v * 0.1),
])
def test_lookup_tables_over_every_code(bits, op, fn):
    x = np.arange(-(2 ** (bits - 1)), 2 ** (bits - 1), 7 if bits == 16 else 1)
    x = x.astype(np.int8 if bits == 8 else np.int16)
    for qx, qy in [(4, 5), (bits - 1, bits - 2), (-2, 1)]:
        expected = [quantize(fn(v * 2.0**-qx), qy, bits) for v in x.tolist()]
        check_kernel(op, [x], [QFormat(qx, bits)], QFormat(qy, bits), expected)


# --- end to end: the bundled model ------------------------------------------------------------


def top1(probs, labels) -> float:
    return float((probs.argmax(axis=1) == labels).mean())


# LWNN's q16 headroom keeps 9 significant bits in every blob (weights and biases too, as LWNN's
# quantizer does), so its precision is q8-like: the same bound as q8.
@pytest.mark.parametrize("scheme,headroom,tolerance", [("q8", "full", 0.03), ("q16", "lwnn", 0.03)])
def test_bundled_model_runs_integer_end_to_end(bundled_model, bundled_samples, scheme, headroom, tolerance):
    images, labels = bundled_samples
    q = lwnn.quantize(bundled_model, {"image": images[:128]}, scheme, "minmax", q16_headroom=headroom,
                      progress=False)
    assert {plan.runtime for plan in q.plan()} == {f"cpu/{scheme}"}
    rec = q.run({"image": images}, record=True)
    assert all(rec.executed_by[layer.name] == f"cpu/{scheme}" for layer in bundled_model.layers)
    dtype = np.int8 if scheme == "q8" else np.int16
    assert q.raw("probs").dtype == dtype and q.tensor_params("probs") == QFormat(7 if scheme == "q8" else 15,
                                                                                  8 if scheme == "q8" else 16)
    float_acc = top1(bundled_model.run({"image": images})["probs"], labels)
    acc = top1(rec["probs"], labels)
    print(f"\n{scheme} ({headroom}): top-1 {acc:.4f}, float {float_acc:.4f}, overflow {q.overflow}")
    assert q.overflow == {}
    assert abs(acc - float_acc) <= tolerance


def test_bundled_model_q16_full_range_reports_overflow(bundled_model, bundled_samples):
    """The other side of the trade-off: full-range q16 overflows int32 accumulators on this
    model, and the run says where and how often."""
    images, labels = bundled_samples
    q = lwnn.quantize(bundled_model, {"image": images[:128]}, "q16", "minmax", q16_headroom="full",
                      progress=False)
    with pytest.warns(UserWarning, match="int32 accumulator overflow"):
        probs = q.run({"image": images})["probs"]
    print(f"\nq16 (full): top-1 {top1(probs, labels):.4f}, overflow {q.overflow}")
    assert q.overflow and set(q.overflow) <= {layer.name for layer in bundled_model.layers}
    assert all(count > 0 for count in q.overflow.values())
