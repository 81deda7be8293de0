"""MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool on OpenCL (``kernels/int_pool.cl``), 1-D
and 2-D, with the arithmetic of the CPU integer runtime: max of codes (pads never win), s8 TFLite
average (zero point in counted pads, rounding division), q8/q16 CMSIS reference average (window
sum as a 32-bit register, overflow counted, C division, Q move + SSAT). The divisor of each output
comes from the float reference's ``_divisors`` (taps inside the input, plus counted pads)."""

from __future__ import annotations

import numpy as np

from lwnn.backends.cpu_int.registry import IntCall
from lwnn.backends.opencl_int import device as dev
from lwnn.backends.opencl_int.registry import cl_int_kernel, on_cpu, on_device

INT32_MAX = (1 << 31) - 1


def _window(op, x_shape: tuple):
    """(k, strides, dilations, begin pads, out) as 2-D (a 1-D window has height 1)."""
    k, s, d, pads, out = op.geometry(x_shape)
    if len(x_shape) == 3:
        return (1, k[0]), (1, s[0]), (1, d[0]), (0, pads[0]), (1, out[0])
    return tuple(k), tuple(s), tuple(d), tuple(pads[:2]), tuple(out)


def _options(call: IntCall, dtype, check: bool) -> tuple[str, ...]:
    opts = [f"-DT_CODE={dev.c_type(dtype)}"]
    if call.affine:
        opts.append("-DS8")
    elif check:
        opts.append("-DCHECK_OVERFLOW")
    return tuple(opts)


def _out_shape(x_shape: tuple, spatial: tuple) -> tuple:
    return (*x_shape[:2], *spatial)


@cl_int_kernel("s8", "MaxPool")
@cl_int_kernel("qformat", "MaxPool")
def max_pool(call: IntCall):
    x = call.inputs[0]
    if len(x.shape) not in (3, 4):
        return on_cpu(call)
    x_shape = tuple(x.shape)
    k, s, d, p, o = _window(call.op, x_shape)
    _, _, _, _, out = call.op.geometry(x_shape)
    h, w = (1, x_shape[2]) if len(x_shape) == 3 else x_shape[2:]
    nc = x_shape[0] * x_shape[1]
    on_device(call)
    with dev.Staging() as st:
        xd = st.put(x, "max pool input")
        y = st.empty(_out_shape(x_shape, out), xd.dtype, "max pool output")
        kern = dev.kernel("int_pool.cl", "max_pool", (f"-DT_CODE={dev.c_type(xd.dtype)}",))
        dev.launch(kern, (o[1], o[0], nc), xd.buffer, y.buffer,
                   *dev.i32(h, w, o[0], o[1], *k, *s, *p, *d, np.iinfo(xd.dtype).min))
        return st.result(y)


@cl_int_kernel("s8", "GlobalMaxPool")
@cl_int_kernel("qformat", "GlobalMaxPool")
def global_max_pool(call: IntCall):
    x = call.inputs[0]
    x_shape = tuple(x.shape)
    size = int(np.prod(x_shape[2:], dtype=np.int64))
    nc = x_shape[0] * x_shape[1]
    on_device(call)
    with dev.Staging() as st:
        xd = st.put(x, "global max pool input")
        y = st.empty(x_shape[:2] + (1,) * (len(x_shape) - 2), xd.dtype, "global max pool output")
        kern = dev.kernel("int_pool.cl", "global_max_pool", (f"-DT_CODE={dev.c_type(xd.dtype)}",))
        dev.launch(kern, (nc,), xd.buffer, y.buffer, *dev.i32(size, np.iinfo(xd.dtype).min))
        return st.result(y)


def _check_s8_params(call: IntCall) -> None:
    px, out = call.params[0], call.out[0]
    if int(px.zero_point) != int(out.zero_point) or np.float32(px.scale) != np.float32(out.scale):
        from lwnn.errors import CalibrationError

        raise CalibrationError(
            f"s8 {call.layer.op_type} needs output parameters equal to its input's (TFLite int8 "
            f"pooling). Received input {px!r}, output {out!r}.")


def _average_args(call: IntCall) -> tuple[int, int]:
    """(zero point, Q move) of an average pool."""
    px, out = call.params[0], call.out[0]
    if call.affine:
        _check_s8_params(call)
        return int(px.zero_point), 0
    return 0, out.frac_bits - px.frac_bits


@cl_int_kernel("s8", "AveragePool", "GlobalAveragePool")
@cl_int_kernel("qformat", "AveragePool", "GlobalAveragePool")
def average_pool(call: IntCall):
    x, out = call.inputs[0], call.out[0]
    if len(x.shape) not in (3, 4) or getattr(call.params[0], "per_channel", False):
        return on_cpu(call)
    zp, move = _average_args(call)
    x_shape = tuple(x.shape)
    nc = x_shape[0] * x_shape[1]
    bits = np.iinfo(x.dtype).bits
    on_device(call)
    with dev.Staging() as st:
        xd = st.put(x, "average pool input")
        if call.layer.op_type == "GlobalAveragePool":
            size = int(np.prod(x_shape[2:], dtype=np.int64))
            check = size << (bits - 1) > INT32_MAX
            counter = st.counter() if check else xd
            y = st.empty(x_shape[:2] + (1,) * (len(x_shape) - 2), out.dtype, "average pool output")
            kern = dev.kernel("int_pool.cl", "global_average_pool", _options(call, xd.dtype, check))
            dev.launch(kern, (nc,), xd.buffer, y.buffer, counter.buffer,
                       *dev.i32(size, move, out.qmin, out.qmax))
        else:
            k, s, d, p, o = _window(call.op, x_shape)
            _, _, _, _, spatial = call.op.geometry(x_shape)
            h, w = (1, x_shape[2]) if len(x_shape) == 3 else x_shape[2:]
            count = call.memo(("cl:divisors", x_shape[2:]), lambda: _divisors(call.op, x_shape))
            check = k[0] * k[1] << (bits - 1) > INT32_MAX
            counter = st.counter() if check else xd
            y = st.empty(_out_shape(x_shape, spatial), out.dtype, "average pool output")
            kern = dev.kernel("int_pool.cl", "average_pool", _options(call, xd.dtype, check))
            dev.launch(kern, (o[1], o[0], nc), xd.buffer, y.buffer, count.buffer, counter.buffer,
                       *dev.i32(h, w, o[0], o[1], *k, *s, *p, *d, zp, move, out.qmin, out.qmax))
        if check and not call.affine:
            call.overflow += dev.read_counter(counter)
        return st.result(y)


def _divisors(op, x_shape: tuple):
    """The divisor of each output position, as the float reference computes it, on the device."""
    from lwnn.backends.cpu.pool import _divisors as float_divisors

    count = np.rint(float_divisors(op, tuple(x_shape[2:]), "float64")).astype(np.int32)
    return dev.resident(count.reshape(-1), "average pool divisors")
