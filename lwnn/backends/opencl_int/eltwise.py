"""Add/Sub, Mul, ReLU/Clip, Concat, q8/q16 Max/Min/PRelu and stand-alone requantization on
OpenCL (``kernels/int_eltwise.cl``), with the arithmetic of ``lwnn.backends.cpu_int.s8`` /
``qformat``. The host derives the constants
(Q31 multipliers with ``fixedpoint.quantize_multiplier``, clamp bounds, Q moves) once per layer;
the device does every per-element step in exact integer (or, for the s8 Concat rescale, the same
float32) arithmetic. Only a q16 Mul or PRelu can overflow int32 (counted as the CPU counts it)."""

from __future__ import annotations

import numpy as np

from lwnn.backends.cpu_int.registry import INT_KERNELS, IntCall
from lwnn.backends.opencl_int import device as dev
from lwnn.backends.opencl_int.registry import cl_int_kernel, on_cpu, on_device
from lwnn.numerics import fixedpoint as fp

_ADD_LEFT_SHIFT = 20  # TFLite int8 add


def _per_tensor(call: IntCall) -> bool:
    return not any(getattr(p, "per_channel", False) for p in (*call.params, *call.out) if p is not None)


def _type_opts(s8: bool, **types) -> tuple[str, ...]:
    opts = [f"-D{name}={dev.c_type(t)}" for name, t in types.items()]
    return tuple(opts + (["-DS8"] if s8 else []))


def _broadcast_strides(shape: tuple, out_shape: tuple) -> list[int]:
    """Element strides of a C-contiguous ``shape`` read at every index of ``out_shape`` (NumPy
    broadcasting: 0 on broadcast dims)."""
    shape = (1,) * (len(out_shape) - len(shape)) + tuple(shape)
    strides, step = [], 1
    for d in reversed(shape):
        strides.append(step if d != 1 else 0)
        step *= d
    return strides[::-1]


_BINARY_CODES = {"Add": 0, "Sub": 1, "Max": 2, "Min": 3}


@cl_int_kernel("s8", "Add", "Sub")
@cl_int_kernel("qformat", "Add", "Sub", "Max", "Min")
def add(call: IntCall):
    """Two-input Add/Sub (and q8/q16 Max/Min) with NumPy broadcasting (rank <= 8)."""
    a, b = call.inputs[0], call.inputs[1]
    out_shape = np.broadcast_shapes(tuple(a.shape), tuple(b.shape))
    if not _per_tensor(call) or len(out_shape) > 8:
        return on_cpu(call)
    s8 = call.affine
    (pa, pb), out = call.params, call.out[0]

    def constants():
        if not s8:  # moves to the output Q; TFLite multipliers unused
            return [0, 0, 0, out.frac_bits - pa.frac_bits, 0, out.frac_bits - pb.frac_bits, 0, 0, 0]
        twice_max = 2 * max(float(pa.scale), float(pb.scale))
        ma, sa = fp.quantize_multiplier(float(pa.scale) / twice_max)
        mb, sb = fp.quantize_multiplier(float(pb.scale) / twice_max)
        mo, so = fp.quantize_multiplier(twice_max / ((1 << _ADD_LEFT_SHIFT) * float(out.scale)))
        return [int(pa.zero_point), int(pb.zero_point), ma, sa, mb, sb, mo, so, int(out.zero_point)]

    consts = call.memo("cl:add", constants)
    rank = max(len(out_shape), 1)
    count = int(np.prod(out_shape, dtype=np.int64))
    on_device(call)
    with dev.Staging() as st:
        ad, bd = st.put(a, "add input a"), st.put(b, "add input b")
        y = st.empty(out_shape, out.dtype, "add output")
        opts = _type_opts(s8, T_A=ad.dtype, T_B=bd.dtype, T_OUT=out.dtype)
        kern = dev.kernel("int_eltwise.cl", "add", opts)
        shape = out_shape or (1,)
        dev.launch(kern, (count,), ad.buffer, bd.buffer, y.buffer, *dev.i32(count, rank),
                   dev.vec8(shape), dev.vec8(_broadcast_strides(a.shape, shape)),
                   dev.vec8(_broadcast_strides(b.shape, shape)),
                   *dev.i32(_BINARY_CODES[call.layer.op_type], *consts, out.qmin, out.qmax))
        return st.result(y)


add.supports = lambda layer: len(layer.inputs) == 2


def _pair_table(call: IntCall):
    """The CPU Mul kernel's output for every int8 code pair, on the device (65536 entries)."""
    codes = np.arange(-128, 128, dtype=np.int64).astype(np.int8)
    grid = IntCall(call.layer, [codes[:, None], codes[None, :]], call.params, call.out, call.bits,
                   call.roles, cache={})
    table = np.ascontiguousarray(INT_KERNELS[call.family]["Mul"](grid)).reshape(-1)
    return dev.resident(table, "mul pair table"), table.dtype


@cl_int_kernel("s8", "Mul")
@cl_int_kernel("qformat", "Mul")
def mul(call: IntCall):
    """Two-input Mul with NumPy broadcasting. Two int8 inputs (s8, q8): a lookup in the table of
    every code pair (the CPU kernel's integers; neither counts overflow there). q16: the product
    requantized as a 32-bit register, overflow counted."""
    a, b = call.inputs[0], call.inputs[1]
    out_shape = np.broadcast_shapes(tuple(a.shape), tuple(b.shape))
    if not _per_tensor(call) or len(out_shape) > 8:
        return on_cpu(call)
    out = call.out[0]
    int8 = np.dtype(a.dtype) == np.int8 and np.dtype(b.dtype) == np.int8
    if not int8 and call.affine:
        return on_cpu(call)
    rank = max(len(out_shape), 1)
    shape = out_shape or (1,)
    count = int(np.prod(out_shape, dtype=np.int64))
    on_device(call)
    with dev.Staging() as st:
        ad, bd = st.put(a, "mul input a"), st.put(b, "mul input b")
        geometry = [*dev.i32(count, rank), dev.vec8(shape), dev.vec8(_broadcast_strides(a.shape, shape)),
                    dev.vec8(_broadcast_strides(b.shape, shape))]
        if int8:
            table, dtype = call.memo("cl:mul table", lambda: _pair_table(call))
            y = st.empty(out_shape, dtype, "mul output")
            opts = _type_opts(False, T_A=ad.dtype, T_B=bd.dtype, T_OUT=dtype)
            dev.launch(dev.kernel("int_eltwise.cl", "mul_table", opts), (count,), ad.buffer, bd.buffer,
                       y.buffer, table.buffer, *geometry)
        else:
            (pa, pb) = call.params
            counter = st.counter()
            y = st.empty(out_shape, out.dtype, "mul output")
            opts = _type_opts(False, T_A=ad.dtype, T_B=bd.dtype, T_OUT=out.dtype)
            dev.launch(dev.kernel("int_eltwise.cl", "mul_q", opts), (count,), ad.buffer, bd.buffer, y.buffer,
                       counter.buffer, *geometry,
                       *dev.i32(pa.frac_bits + pb.frac_bits - out.frac_bits, out.qmin, out.qmax))
            call.overflow += dev.read_counter(counter)
        return st.result(y)


mul.supports = lambda layer: len(layer.inputs) == 2


@cl_int_kernel("qformat", "PRelu")
def prelu(call: IntCall):
    """q8/q16 PRelu (``qformat.prelu``): the positive side moved to the output Q, the negative side
    ``x * slope`` requantized on a 32-bit register (overflow counted); the slope broadcasts."""
    x, slope = call.inputs[0], call.inputs[1]
    if np.broadcast_shapes(tuple(x.shape), tuple(slope.shape)) != tuple(x.shape) or len(x.shape) > 8:
        return on_cpu(call)
    (px, ps), out = call.params, call.out[0]
    shape = tuple(x.shape) or (1,)
    count = int(np.prod(x.shape, dtype=np.int64))
    on_device(call)
    with dev.Staging() as st:
        xd, sd = st.put(x, "prelu input"), st.put(slope, "prelu slope")
        counter = st.counter()
        y = st.empty(tuple(x.shape), out.dtype, "prelu output")
        opts = _type_opts(False, T_A=xd.dtype, T_B=sd.dtype, T_OUT=out.dtype)
        strides = [dev.vec8(_broadcast_strides(t.shape, shape)) for t in (x, slope)]
        dev.launch(dev.kernel("int_eltwise.cl", "prelu_q", opts), (count,), xd.buffer, sd.buffer, y.buffer,
                   counter.buffer, *dev.i32(count, len(shape)), dev.vec8(shape), *strides,
                   *dev.i32(px.frac_bits + ps.frac_bits - out.frac_bits, out.frac_bits - px.frac_bits,
                            out.qmin, out.qmax))
        call.overflow += dev.read_counter(counter)
        return st.result(y)


prelu.supports = lambda layer: len(layer.inputs) == 2


def _clamp_constants(call: IntCall) -> tuple:
    """(zpx, multiplier, shift, zpo, lo, hi): s8 TFLite ReLU/ReLU6 (``s8.clamp``); q8/q16: a move
    to the output Q and the bounds quantized there (``qformat.clamp``)."""
    px, out = call.params[0], call.out[0]
    relu = call.layer.op_type == "Relu"
    lo, hi = (0.0, None) if relu else (call.op.min, call.op.max)
    if call.affine:
        m, s = fp.quantize_multiplier(float(np.float32(px.scale) / np.float32(out.scale)))
        return (int(px.zero_point), int(m), int(s), int(out.zero_point),
                *out.activation_range(lo, hi))
    move = out.frac_bits - px.frac_bits
    if relu:
        return 0, 0, move, 0, 0, out.qmax
    lo_q = out.qmin if lo == float("-inf") else int(out.quantize(np.float64(lo)))
    hi_q = out.qmax if hi == float("inf") else int(out.quantize(np.float64(hi)))
    return 0, 0, move, 0, lo_q, hi_q


@cl_int_kernel("s8", "Relu", "Clip")
@cl_int_kernel("qformat", "Relu", "Clip")
def clamp(call: IntCall):
    x = call.inputs[0]
    if not _per_tensor(call):
        return on_cpu(call)
    out = call.out[0]
    zpx, m, s, zpo, lo, hi = call.memo("cl:clamp", lambda: _clamp_constants(call))
    count = int(np.prod(x.shape, dtype=np.int64))
    on_device(call)
    with dev.Staging() as st:
        xd = st.put(x, "clamp input")
        y = st.empty(tuple(x.shape), out.dtype, "clamp output")
        kern = dev.kernel("int_eltwise.cl", "rescale",
                          _type_opts(call.affine, T_A=xd.dtype, T_OUT=out.dtype))
        dev.launch(kern, (count,), xd.buffer, y.buffer,
                   *dev.i32(count, zpx, m, s, zpo, out.qmin, out.qmax, lo, hi))
        return st.result(y)


def _concat_part(call: IntCall, p) -> tuple:
    """(mode, scale, bias, shift) of one input: copy, s8 float32 rescale or q8/q16 move."""
    out = call.out[0]
    if call.affine:
        if int(p.zero_point) == int(out.zero_point) and np.float32(p.scale) == np.float32(out.scale):
            return 0, np.float32(0), np.float32(0), 0
        scale = np.float32(p.scale) * (np.float32(1) / np.float32(out.scale))
        return 1, np.float32(scale), np.float32(np.float32(-int(p.zero_point)) * scale), 0
    return 2, np.float32(0), np.float32(0), out.frac_bits - p.frac_bits


@cl_int_kernel("s8", "Concat")
@cl_int_kernel("qformat", "Concat")
def concat(call: IntCall):
    if not _per_tensor(call):
        return on_cpu(call)
    out = call.out[0]
    shapes = [tuple(q.shape) for q in call.inputs]
    rank = len(shapes[0])
    axis = call.op.axis % rank
    parts = call.memo("cl:concat", lambda: [_concat_part(call, p) for p in call.params])
    out_shape = list(shapes[0])
    out_shape[axis] = sum(s[axis] for s in shapes)
    inner = int(np.prod(out_shape[axis + 1:], dtype=np.int64))
    on_device(call)
    with dev.Staging() as st:
        y = st.empty(tuple(out_shape), out.dtype, "concat output")
        at = 0
        for q, shape, (mode, scale, bias, shift) in zip(call.inputs, shapes, parts):
            count = int(np.prod(shape, dtype=np.int64))
            if count:
                qd = st.put(q, "concat input")
                kern = dev.kernel("int_eltwise.cl", "concat_part",
                                  _type_opts(False, T_A=qd.dtype, T_OUT=out.dtype))
                dev.launch(kern, (count,), qd.buffer, y.buffer,
                           *dev.i32(count, shape[axis], inner, out_shape[axis], at, mode), scale, bias,
                           *dev.i32(int(getattr(out, "zero_point", 0)), shift, out.qmin, out.qmax))
            at += shape[axis]
        return st.result(y)


def requantize(acc, params, multiplier=None, shift=None, axis: int | None = None,
               act_min: int | None = None, act_max: int | None = None):
    """Stand-alone requantization of int32 accumulators ``acc`` to the codes of ``params``.

    s8 (``AffineParams``): ``clamp(MultiplyByQuantizedMultiplier(acc, multiplier, shift) + zp)``
    as ``fixedpoint.requantize_s8`` (clamped to ``[act_min, act_max]``, by default the code
    range), with per-channel ``multiplier``/``shift`` along ``axis``.
    q8/q16 (``QFormat``): ``__SSAT((acc + NN_ROUND(s)) >> s)`` as ``fixedpoint.shift_and_saturate``
    with ``s = shift`` (per channel along ``axis``; ``multiplier`` unused). Host or device ``acc``.
    """
    s8 = hasattr(params, "zero_point")
    shape = tuple(acc.shape)
    count = int(np.prod(shape, dtype=np.int64))
    shifts = np.atleast_1d(np.asarray(shift, np.int32))
    mults = np.atleast_1d(np.asarray(multiplier if s8 else 0, np.int32))
    channels = max(shifts.size, mults.size)
    inner = int(np.prod(shape[axis % len(shape) + 1:], dtype=np.int64)) if axis is not None else 1
    mults, shifts = np.broadcast_to(mults, (channels,)), np.broadcast_to(shifts, (channels,))
    if not s8 and (shifts.min() < -63 or shifts.max() > 31):
        fp.shift_and_saturate(0, shifts, params.bits)  # raises CalibrationError as the CPU does
    with dev.Staging() as st:
        ad = st.put(np.asarray(acc, np.int32) if not hasattr(acc, "buffer") else acc, "accumulators")
        md, sd = st.put(mults.astype(np.int32), "multipliers"), st.put(shifts.astype(np.int32), "shifts")
        y = st.empty(shape, params.dtype, "requantized")
        kern = dev.kernel("int_eltwise.cl", "requantize", _type_opts(s8, T_OUT=params.dtype))
        zp = int(params.zero_point) if s8 else 0
        dev.launch(kern, (count,), ad.buffer, y.buffer, md.buffer, sd.buffer,
                   *dev.i32(count, inner, channels, zp, params.qmin if act_min is None else act_min,
                            params.qmax if act_max is None else act_max))
        return st.result(y)
