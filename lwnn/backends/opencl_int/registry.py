"""The OpenCL integer kernel table, mirroring ``lwnn.backends.cpu_int.registry``: scheme family
("s8" or "qformat") -> op type -> kernel. Kernels take the same ``IntCall`` as the CPU integer
kernels (raw integer inputs, their parameters, roles, the per-layer memo) and return the same
integer arrays, bit for bit, adding the int32 overflows they detect to ``call.overflow``.

A configuration the device kernels do not cover (3-D windows, per-channel activation parameters,
run-time weights) is handed to the CPU integer kernel of the same layer inside the call; the
call's memo then says so (``ran_on_device``), so a run can record where the layer executed.
"""

from __future__ import annotations

from collections.abc import Callable

from lwnn.backends.cpu_int.registry import INT_KERNELS, IntCall
from lwnn.backends.cpu_int.registry import kernel_for as cpu_kernel_for
from lwnn.graph import Layer
from lwnn.numerics.params import scheme_of

CL_INT_KERNELS: dict[str, dict[str, Callable]] = {"s8": {}, "qformat": {}}
_RAN_ON = "opencl_int: ran on"


def cl_int_kernel(family: str, *op_types: str):
    """Register the decorated function as the OpenCL ``family`` kernel of ``op_types``."""

    def register(fn: Callable) -> Callable:
        for t in op_types:
            CL_INT_KERNELS[family][t] = fn
        return fn

    return register


def kernel_for(scheme: str, layer: Layer) -> Callable | None:
    """The OpenCL integer kernel that runs ``layer`` under ``scheme`` ("s8", "q8", "q16"), or None
    (then the CPU integer kernel, ``lwnn.backends.cpu_int.kernel_for``, is the one to use). Only
    layers the CPU integer runtime runs: the device computes the same integers, never more."""
    fn = CL_INT_KERNELS[scheme_of(scheme).family].get(layer.op_type)
    if fn is None or cpu_kernel_for(scheme, layer) is None:
        return None
    supports = getattr(fn, "supports", None)
    if supports is not None and not supports(layer):
        return None
    return fn


def on_cpu(call: IntCall):
    """Run ``call`` on the CPU integer kernel of its layer (a configuration the device kernels do
    not cover) and remember that it did. Device inputs are downloaded; the result is on the host."""
    from lwnn.backends.opencl.context import CLTensor

    call.cache[_RAN_ON] = "cpu"
    kernel = INT_KERNELS[call.family][call.layer.op_type]
    if not any(isinstance(v, CLTensor) for v in call.inputs):
        return kernel(call)
    from lwnn.backends.opencl_int.device import host

    inputs = [host(v) if isinstance(v, CLTensor) else v for v in call.inputs]
    local = IntCall(call.layer, inputs, call.params, call.out, call.bits, call.roles, cache=call.cache)
    y = kernel(local)
    call.overflow += local.overflow
    return y


def on_device(call: IntCall) -> None:
    call.cache[_RAN_ON] = "opencl"


def ran_on_device(call: IntCall | dict) -> bool:
    """Whether the last run of ``call``'s layer (or of the layer whose memo is this dict, as
    ``QuantizedModel`` keeps it) executed on the OpenCL device."""
    cache = call if isinstance(call, dict) else call.cache
    return cache.get(_RAN_ON) == "opencl"
