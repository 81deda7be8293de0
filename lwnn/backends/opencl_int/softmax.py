"""Softmax on OpenCL (``kernels/int_softmax.cl``), one row per work-item, along the op's axis (or
the flattened trailing dims of an opset < 13 softmax), with the arithmetic of the CPU runtime:

* s8: TFLite's int8 reference softmax (``cpu_int.s8.softmax_rows``): the exp and sum-term tables
  of every difference to the row maximum (``s8.softmax_exp_table``, computed once per layer on
  the host), the Q12.19 sum, gemmlowp's fixed-point reciprocal, the rounding shift; rows whose sum
  reaches 2**32 (the int32 sum wraps) are counted as overflows, as the CPU counts them.
* q8/q16: CMSIS ``arm_softmax_q7``/``q15`` (``cpu_int.qformat.softmax``), then the move from
  Q7/Q15 to the output Q.
"""

from __future__ import annotations

import numpy as np

from lwnn.backends.cpu_int.registry import IntCall
from lwnn.backends.opencl_int import device as dev
from lwnn.backends.opencl_int.registry import cl_int_kernel, on_cpu, on_device


def _rows(call: IntCall, shape: tuple) -> tuple[int, int, int]:
    """(rows, row length, inner stride) of the softmax rows of a tensor of ``shape``."""
    op = call.op
    axis = op.axis % len(shape)
    outer = int(np.prod(shape[:axis], dtype=np.int64))
    if op.coerce_2d:
        return outer, int(np.prod(shape[axis:], dtype=np.int64)), 1
    inner = int(np.prod(shape[axis + 1:], dtype=np.int64))
    return outer * inner, shape[axis], inner


def _s8_tables(call: IntCall):
    from lwnn.backends.cpu_int.s8 import softmax_exp_table

    exps, terms = softmax_exp_table(float(call.params[0].scale))
    return (dev.resident(exps.astype(np.int32), "softmax exps"),
            dev.resident(terms.astype(np.int32), "softmax terms"))


@cl_int_kernel("s8", "Softmax")
@cl_int_kernel("qformat", "Softmax")
def softmax(call: IntCall):
    x, out = call.inputs[0], call.out[0]
    s8 = call.affine
    if s8:
        from lwnn.backends.cpu_int.s8 import SOFTMAX_OUTPUT

        if (float(out.scale), int(out.zero_point)) != SOFTMAX_OUTPUT or np.dtype(x.dtype) != np.int8 \
                or call.params[0].per_channel:
            return on_cpu(call)  # which raises the CPU's CalibrationError for other parameters
    shape = tuple(x.shape)
    rows, length, inner = _rows(call, shape)
    on_device(call)
    with dev.Staging() as st:
        xd = st.put(x, "softmax input")
        y = st.empty(shape, out.dtype, "softmax output")
        opts = (f"-DT_A={dev.c_type(xd.dtype)}", f"-DT_OUT={dev.c_type(out.dtype)}")
        if s8:
            exps, terms = call.memo("cl:softmax tables", lambda: _s8_tables(call))
            counter = st.counter()
            dev.launch(dev.kernel("int_softmax.cl", "softmax_s8", opts), (rows,), xd.buffer, y.buffer,
                       exps.buffer, terms.buffer, counter.buffer, *dev.i32(rows, length, inner))
            call.overflow += dev.read_counter(counter)
        else:
            move = out.frac_bits - (call.bits - 1)  # from Q7/Q15 to the output's Q
            dev.launch(dev.kernel("int_softmax.cl", "softmax_q", opts), (rows,), xd.buffer, y.buffer,
                       *dev.i32(rows, length, inner, call.bits, move, out.qmin, out.qmax))
        return st.result(y)
