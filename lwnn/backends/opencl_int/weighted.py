"""Conv (1-D/2-D, grouped, depthwise, dilated), ConvTranspose, Dense and their fused ReLU/Clip on
OpenCL, with the arithmetic of ``lwnn.backends.cpu_int.s8`` / ``qformat`` (``kernels/int_conv.cl``).

The host prepares, once per layer (``IntCall.memo``): centred int16 weights, the bias in
accumulator units as int64 (s8: the int32 codes; q8/q16: ``bias << (Qx+Qw-Qb)``, half-up when
the shift is negative), the Q31 multipliers and shifts (s8) or the output shift (q8/q16), and a
bound on every partial sum: ``max|x - zp| * max_channel sum|w| + max|bias|`` (+ NN_ROUND). When
the bound fits int32 the device accumulates in int and nothing can overflow; otherwise it
accumulates the exact sum in long and counts the outputs whose exact accumulator leaves int32,
then wraps it to 32 bits before requantizing, exactly as the CPU runtime does.
"""

from __future__ import annotations

import numpy as np

from lwnn.backends.cpu_int.registry import IntCall
from lwnn.backends.opencl_int import device as dev
from lwnn.backends.opencl_int.registry import cl_int_kernel, on_cpu, on_device, ran_on_device
from lwnn.numerics import fixedpoint as fp

INT32_MAX = (1 << 31) - 1


def _centred_weights(w: np.ndarray, pw) -> np.ndarray:
    """``w - zero_point`` (s8; per channel along the weight's axis) as int32."""
    w = np.asarray(w).astype(np.int32)
    if pw is None or not hasattr(pw, "zero_point"):
        return w
    zp = pw.zero_point.astype(np.int32)
    if pw.per_channel:
        zp = fp.along_axis(zp, pw.axis, w.ndim)
    return w - zp


def _device_ready(call: IntCall, x_ndims: tuple[int, ...], weight_axis: int) -> bool:
    """Whether the device kernels cover this call (else it runs on the CPU kernel, which also
    raises the CPU's errors, e.g. per-channel weights along another axis than ``weight_axis``)."""
    x, w, *rest = call.inputs
    px, pw = call.params[0], call.params[1]
    if len(x.shape) not in x_ndims or getattr(px, "per_channel", False):
        return False
    if getattr(pw, "per_channel", False) and pw.axis % np.ndim(w) != weight_axis:
        return False
    if call.role(1) != "weight":
        return False
    return not (rest and rest[0] is not None and call.role(2) != "bias")


def _prepare(call: IntCall, w_rows: np.ndarray, columns: bool = False) -> dict:
    """Device constants of a weighted layer: ``w_rows`` [M, K] centred weights (one row per output
    channel; on the device as [K, M] with ``columns``), the bias, multipliers or shift, and the
    accumulator choice."""
    s8 = call.affine
    px, out = call.params[0], call.out[0]
    m = w_rows.shape[0]
    rest = call.inputs[2:]
    bias = None
    if rest and rest[0] is not None:
        b = np.asarray(rest[0])
        if s8:
            bias = b.astype(np.int64)
        else:
            qx, qw = px.frac_bits, call.params[1].frac_bits
            bias = fp.q_shift(b, fp.bias_shift(qx, qw, call.params[2].frac_bits))
    w_sum = int(np.abs(w_rows.astype(np.int64)).sum(axis=1).max(initial=0))
    bias_bound = int(np.abs(bias).max(initial=0)) if bias is not None else 0
    if s8:
        pw = call.params[1]
        real = px.scale.astype(np.float64) * pw.scale.astype(np.float64) / float(out.scale)
        mult, shift = fp.quantize_multiplier(real)
        mult = np.broadcast_to(mult, (m,)).astype(np.int32)
        shift = np.broadcast_to(shift, (m,)).astype(np.int32)
        bound = (px.qmax - px.qmin) * w_sum + bias_bound
        q_out_shift = 0
    else:
        mult = shift = np.zeros(1, np.int32)
        q_out_shift = fp.out_shift(px.frac_bits, call.params[1].frac_bits, out.frac_bits)
        bound = (1 << (px.bits - 1)) * w_sum + bias_bound + int(fp.nn_round(min(q_out_shift, 31)))
    exact64 = bound > INT32_MAX
    return {
        "w": dev.resident((w_rows.T if columns else w_rows).astype(np.int16), "weights"),
        "channels": m,
        "bias_host": bias,
        "mult": dev.resident(mult, "multipliers"),
        "shift": dev.resident(shift, "shifts"),
        "q_out_shift": q_out_shift,
        "exact64": exact64,
        "s8": s8,
        "bias_cache": {},
    }


def _options(call: IntCall, prep: dict, x_dtype) -> tuple[str, ...]:
    opts = [f"-DT_IN={dev.c_type(x_dtype)}", f"-DT_OUT={dev.c_type(call.out[0].dtype)}",
            f"-DACC={'long' if prep['exact64'] else 'int'}"]
    if prep["s8"]:
        opts.append("-DS8")
    if prep["exact64"]:
        opts.append("-DCHECK_OVERFLOW")
    return tuple(opts)


def _tail_args(call: IntCall, prep: dict, clamp: tuple[int, int] | None) -> list:
    px, out = call.params[0], call.out[0]
    zpx = int(px.zero_point) if prep["s8"] else 0
    zpy = int(out.zero_point) if prep["s8"] else 0
    lo, hi = clamp if clamp is not None else (out.qmin, out.qmax)
    return dev.i32(zpx, zpy, prep["q_out_shift"], out.qmin, out.qmax, lo, hi)


def conv(call: IntCall, clamp: tuple[int, int] | None = None):
    """Conv of ``call`` on the device; ``clamp``: fused activation bounds on the output codes."""
    if not _device_ready(call, (3, 4), 0):
        return on_cpu(call)
    x, w = call.inputs[0], call.inputs[1]
    op = call.op
    w_shape = np.shape(w)
    prep = call.memo(("cl:conv", len(x.shape)), lambda: _prepare(
        call, _centred_weights(w, call.params[1]).reshape(w_shape[0], -1)))
    x_shape = tuple(x.shape)
    strides, dilations, pads = op.geometry(x_shape, w_shape)
    y_shape = tuple(op.infer([x_shape, w_shape], None)[0])
    if len(x_shape) == 3:  # 1-D: a 2-D convolution of height 1
        x4, k, s, d, p, o = (x_shape[0], x_shape[1], 1, x_shape[2]), (1, w_shape[2]), (1, strides[0]), \
            (1, dilations[0]), (0, pads[0]), (1, y_shape[2])
    else:
        x4, k, s, d, p, o = x_shape, w_shape[2:], strides, dilations, pads[:2], y_shape[2:]
    n, c, h, wd = x4
    m = w_shape[0]
    bias = _bias_device(prep, 1, m, False)
    on_device(call)
    with dev.Staging() as st:
        xd = st.put(x, "conv input")
        y = st.empty(y_shape, call.out[0].dtype, "conv output")
        counter = st.counter() if prep["exact64"] else prep["w"]
        ocb = 4 if (m // op.group) % 4 == 0 else 1
        kern = dev.kernel("int_conv.cl", "conv2d", _options(call, prep, xd.dtype) + (f"-DOCB={ocb}",))
        dev.launch(kern, (-(-o[1] // 4), o[0], n * m // ocb), xd.buffer, prep["w"].buffer, bias.buffer,
                   prep["mult"].buffer, prep["shift"].buffer, counter.buffer, y.buffer,
                   *dev.i32(c, h, wd, m, o[0], o[1], k[0], k[1], s[0], s[1], p[0], p[1], d[0], d[1],
                            w_shape[1], m // op.group),
                   *_tail_args(call, prep, clamp))
        if prep["exact64"]:
            call.overflow += dev.read_counter(counter)
        return st.result(y)


def conv_transpose(call: IntCall, clamp: tuple[int, int] | None = None):
    """ConvTranspose of ``call`` on the device (1-D/2-D; grouped with per-tensor weights)."""
    op = call.op
    pw = call.params[1]
    if not _device_ready(call, (3, 4), 1) or (op.group > 1 and getattr(pw, "per_channel", False)):
        return on_cpu(call)  # which raises the CPU's error for per-channel grouped weights
    x, w = call.inputs[0], call.inputs[1]
    w_shape = np.shape(w)
    g = op.group
    cg, mg = w_shape[0] // g, w_shape[1]

    def rows():  # [C, M/g, *k] -> [M, C/g * taps]: one row per output channel, its group's inputs
        wc = _centred_weights(w, pw).reshape(g, cg, mg, -1).transpose(0, 2, 1, 3)
        return _prepare(call, np.ascontiguousarray(wc).reshape(g * mg, -1))

    prep = call.memo(("cl:conv transpose", len(x.shape)), rows)
    x_shape = tuple(x.shape)
    strides, dilations, pads, _ = op.geometry(x_shape, w_shape)
    y_shape = tuple(op.infer([x_shape, w_shape], None)[0])
    if len(x_shape) == 3:
        x4, k, s, d, p, o = (x_shape[0], x_shape[1], 1, x_shape[2]), (1, w_shape[2]), (1, strides[0]), \
            (1, dilations[0]), (0, pads[0]), (1, y_shape[2])
    else:
        x4, k, s, d, p, o = x_shape, w_shape[2:], strides, dilations, pads[:2], y_shape[2:]
    n, c, h, wd = x4
    m = g * mg
    bias = _bias_device(prep, 1, m, False)
    on_device(call)
    with dev.Staging() as st:
        xd = st.put(x, "conv transpose input")
        y = st.empty(y_shape, call.out[0].dtype, "conv transpose output")
        counter = st.counter() if prep["exact64"] else prep["w"]
        kern = dev.kernel("int_conv.cl", "conv_transpose2d", _options(call, prep, xd.dtype))
        dev.launch(kern, (o[1], o[0], n * m), xd.buffer, prep["w"].buffer, bias.buffer,
                   prep["mult"].buffer, prep["shift"].buffer, counter.buffer, y.buffer,
                   *dev.i32(c, h, wd, m, o[0], o[1], k[0], k[1], s[0], s[1], p[0], p[1], d[0], d[1], cg, mg),
                   *_tail_args(call, prep, clamp))
        if prep["exact64"]:
            call.overflow += dev.read_counter(counter)
        return st.result(y)


def _bias_device(prep: dict, rows: int, n: int, by_row: bool):
    """The bias as NumPy broadcasts it to the ``[rows, n]`` accumulators, on the device: all rows
    when it varies by row (a Gemm C), else one row; cached per shape."""
    key = (rows if by_row else 1, n)
    hit = prep["bias_cache"].get(key)
    if hit is None:
        b = prep["bias_host"]
        full = np.zeros((rows, n), np.int64) if b is None else np.broadcast_to(b, (rows, n))
        hit = prep["bias_cache"][key] = dev.resident((full if by_row else full[0]).astype(np.int64), "bias")
    return hit


def dense(call: IntCall, clamp: tuple[int, int] | None = None):
    """Dense (Gemm, alpha = beta = 1) of ``call`` on the device."""
    op = call.op
    if not _device_ready(call, (2,), 0 if op.trans_b else 1):
        return on_cpu(call)
    x, w = call.inputs[0], call.inputs[1]
    if op.trans_a:
        x = np.ascontiguousarray(dev.host(x).T)

    def rows():
        pw = call.params[1]
        wc = _centred_weights(w, pw)
        return _prepare(call, wc if op.trans_b else wc.T, columns=True)

    prep = call.memo("cl:dense", rows)
    r, k = x.shape
    nout = prep["channels"]
    b = prep["bias_host"]
    by_row = b is not None and b.ndim == 2 and b.shape[0] != 1  # else one row serves every row
    bias = _bias_device(prep, r, nout, by_row)
    on_device(call)
    with dev.Staging() as st:
        xd = st.put(x, "dense input")
        y = st.empty((r, nout), call.out[0].dtype, "dense output")
        counter = st.counter() if prep["exact64"] else prep["w"]
        kern = dev.kernel("int_conv.cl", "dense", _options(call, prep, xd.dtype))
        dev.launch(kern, (nout, r), xd.buffer, prep["w"].buffer, bias.buffer, prep["mult"].buffer,
                   prep["shift"].buffer, counter.buffer, y.buffer,
                   *dev.i32(r, k, nout, nout if by_row else 0), *_tail_args(call, prep, clamp))
        if prep["exact64"]:
            call.overflow += dev.read_counter(counter)
        return st.result(y)


@cl_int_kernel("s8", "Conv")
@cl_int_kernel("qformat", "Conv")
def conv_kernel(call: IntCall):
    return conv(call)


@cl_int_kernel("s8", "ConvTranspose")
@cl_int_kernel("qformat", "ConvTranspose")
def conv_transpose_kernel(call: IntCall):
    return conv_transpose(call)


@cl_int_kernel("s8", "Dense")
@cl_int_kernel("qformat", "Dense")
def dense_kernel(call: IntCall):
    return dense(call)


@cl_int_kernel("s8", "FusedActivation")
@cl_int_kernel("qformat", "FusedActivation")
def fused_activation(call: IntCall):
    """A Conv/Dense with its ReLU/Clip: requantized to the activation's output parameters and
    clamped to its bounds (``lwnn.backends.cpu_int.fused``) inside the same kernel."""
    from lwnn.backends.cpu_int.fused import _clamp_codes

    inner = IntCall(call.op.inner, call.inputs, call.params, call.out, call.bits, call.roles,
                    cache=call.cache)
    clamp = call.memo("cl:activation clamp", lambda: _clamp_codes(call))
    run = {"Conv": conv, "ConvTranspose": conv_transpose, "Dense": dense}[call.op.inner.op_type]
    y = run(inner, clamp)
    call.overflow += inner.overflow
    if not ran_on_device(inner):  # the CPU kernel ran the inner layer alone
        lo, hi = clamp
        y = np.clip(y, lo, hi, out=y)
    return y


fused_activation.supports = lambda layer: layer.op.inner.op_type in ("Conv", "ConvTranspose", "Dense")
