"""Element-wise functions of one integer code on OpenCL, as a table lookup (``lookup`` in
``kernels/int_eltwise.cl``): TFLite's int8 LUT activations (s8), CMSIS's direct Sigmoid/Tanh
tables and the q-format function tables (q8/q16), and folded element-wise chains (every scheme).

The table is the CPU integer kernel's own output over every input code, computed once per layer:
these kernels are pure functions of the code under per-tensor parameters (none counts overflow),
so the device gathers exactly the integers the CPU computes, 256 (q16: 65536) entries.
"""

from __future__ import annotations

import numpy as np

from lwnn.backends.cpu_int import qformat as cpu_qformat
from lwnn.backends.cpu_int import s8 as cpu_s8
from lwnn.backends.cpu_int.registry import INT_KERNELS, IntCall
from lwnn.backends.opencl_int import device as dev
from lwnn.backends.opencl_int.registry import cl_int_kernel, on_cpu, on_device


def _table(call: IntCall):
    px = call.params[0]
    codes = np.arange(px.qmin, px.qmax + 1, dtype=np.int64).astype(px.dtype)
    grid = IntCall(call.layer, [codes], call.params, call.out, call.bits, call.roles, cache={})
    table = np.ascontiguousarray(INT_KERNELS[call.family][call.layer.op_type](grid))
    return dev.resident(table, "lookup table"), table.dtype


@cl_int_kernel("s8", *cpu_s8.LUT_OPS, "ElementwiseChain")
@cl_int_kernel("qformat", *cpu_qformat.LUT_OPS, "Sigmoid", "Tanh", "ElementwiseChain")
def lookup(call: IntCall):
    x, px = call.inputs[0], call.params[0]
    if getattr(px, "per_channel", False) or np.dtype(x.dtype) != np.dtype(px.dtype):
        return on_cpu(call)
    table, dtype = call.memo("cl:table", lambda: _table(call))
    count = int(np.prod(x.shape, dtype=np.int64))
    on_device(call)
    with dev.Staging() as st:
        xd = st.put(x, "lookup input")
        y = st.empty(tuple(x.shape), dtype, "lookup output")
        opts = (f"-DT_A={dev.c_type(xd.dtype)}", f"-DT_OUT={dev.c_type(dtype)}")
        kern = dev.kernel("int_eltwise.cl", "lookup", opts)
        dev.launch(kern, (count,), xd.buffer, y.buffer, table.buffer, *dev.i32(count, px.qmin))
        return st.result(y)


lookup.supports = lambda layer: len(layer.inputs) == 1
