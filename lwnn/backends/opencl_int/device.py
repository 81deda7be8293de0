"""The integer kernels' side of the OpenCL runtime: the float runtime's context (one device, queue,
program cache and buffer pool for both), integer programs built from ``kernels/*.cl`` with the
shared ``int_common.h``, and host/device tensor plumbing.

Every op function accepts host NumPy arrays or device ``CLTensor``s; with any device input it
returns a device tensor, else a host array (so the integer layers of a quantized run can be called
exactly as the CPU integer kernels are, or chained on the device).
"""

from __future__ import annotations

import numpy as np

from lwnn.backends.opencl.context import CLContext, CLTensor, default_context

_C_TYPES = {np.dtype(np.int8): "char", np.dtype(np.int16): "short", np.dtype(np.int32): "int"}


def context() -> CLContext:
    """The default device's context, shared with the float runtime (``backend="opencl"``)."""
    return default_context()


def kernel(file: str, name: str, options: tuple[str, ...]):
    """Kernel ``name`` of ``file`` in ``kernels/`` here (after ``int_common.h``) built with
    ``options``, from the context's one program and kernel cache."""
    return context().kernel(file, name, tuple(options), package=__package__, prelude=("int_common.h",))


def c_type(dtype) -> str:
    """The OpenCL C type of integer codes of ``dtype``."""
    try:
        return _C_TYPES[np.dtype(dtype)]
    except KeyError:
        raise TypeError("Integer OpenCL kernels take int8, int16 or int32 codes. "
                        f"Received {np.dtype(dtype)}.") from None


def launch(k, global_size: tuple, *args) -> None:
    """Enqueue ``k`` over ``global_size`` (the implementation picks the work-group size)."""
    context().launch(k, tuple(max(int(g), 1) for g in global_size), None, *args)


class Staging:
    """The device tensors of one call: copies of host inputs and scratch, released when the call is
    done; outputs too, unless ``result`` hands them out."""

    def __init__(self):
        self.device_in = False
        self._owned: list[CLTensor] = []

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc) -> None:
        for t in self._owned:
            t.release()

    def put(self, value, what: str) -> CLTensor:
        """``value`` on the device (uploaded when it is a host array)."""
        if isinstance(value, CLTensor):
            self.device_in = True
            return value
        t = context().upload(np.ascontiguousarray(value), what)
        self._owned.append(t)
        return t

    def empty(self, shape: tuple, dtype, what: str) -> CLTensor:
        t = context().empty(tuple(shape), what, dtype)
        self._owned.append(t)
        return t

    def counter(self) -> CLTensor:
        """A zeroed int32 counter for ``atomic_inc``."""
        t = context().upload(np.zeros(1, np.int32), "overflow counter")
        self._owned.append(t)
        return t

    def result(self, t: CLTensor):
        """``t`` as the caller wants it: device tensor with a device input, else a host array."""
        if self.device_in:
            self._owned.remove(t)  # the caller's now
            return t
        return context().download(t)  # released with the rest on exit


def read_counter(t: CLTensor) -> int:
    return int(context().download(t)[0])


def resident(value: np.ndarray, what: str) -> CLTensor:
    """A device copy of a constant (weights, multipliers, tables), kept by the caller's memo."""
    return context().resident(np.ascontiguousarray(value), what)


def host(value) -> np.ndarray:
    """A host array of ``value`` (downloaded when it lives on the device)."""
    return context().download(value) if isinstance(value, CLTensor) else np.asarray(value)


def vec8(values) -> np.ndarray:
    """An OpenCL ``int8`` vector argument (unused lanes 1)."""
    import pyopencl.cltypes as ct

    vals = [int(v) for v in values]
    return np.array(tuple(vals + [1] * (8 - len(vals))), dtype=ct.int8)


def i32(*values) -> list:
    return [np.int32(v) for v in values]
