"""The layer registry and the helpers every op family shares.

Each family module (one per ``kernels/*.cl`` file) registers its functions in ``LAYERS`` through
``layer(...)``. The stride helpers (``coalesce``, ``broadcast_strides``) live here rather than in
``eltwise`` because ``movement`` needs them and ``eltwise`` needs ``movement.copy``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from lwnn.backends.opencl.context import CLTensor
from lwnn.backends.runtime import NotOnDevice  # noqa: F401  (the layers raise it)
from lwnn.graph import Layer

LAYERS: dict[str, Callable] = {}

LOCAL_1D = 128


def layer(*op_types: str):
    def register(fn):
        for t in op_types:
            LAYERS[t] = fn
        return fn

    return register


def _i(v) -> np.int32:
    return np.int32(v)


def _f(v) -> np.float32:
    return np.float32(v)


def _groups(n: int, local: int = LOCAL_1D) -> tuple[int]:
    return (max(1, -(-n // local)) * local,)


_INT8 = None


def _vec8(values) -> np.ndarray:
    """An OpenCL ``int8`` vector argument (unused lanes 1)."""
    global _INT8
    if _INT8 is None:
        import pyopencl.cltypes as ct

        _INT8 = ct.int8
    vals = [int(v) for v in values]
    return np.array(tuple(vals + [1] * (8 - len(vals))), dtype=_INT8)


NO_CHAIN = ()


def _chain_args(chain) -> list:
    """Kernel arguments of a fused element-wise epilogue: count, int4 codes, float4 a, float4 b."""
    import pyopencl.cltypes as ct

    codes = [c for c, _, _ in chain] + [0] * (4 - len(chain))
    a = [x for _, x, _ in chain] + [0.0] * (4 - len(chain))
    b = [x for _, _, x in chain] + [0.0] * (4 - len(chain))
    return [
        np.int32(len(chain)),
        np.array(tuple(codes), dtype=ct.int4),
        np.array(tuple(a), dtype=ct.float4),
        np.array(tuple(b), dtype=ct.float4),
    ]


def _contiguous_strides(shape) -> list[int]:
    strides, acc = [], 1
    for d in reversed(shape):
        strides.append(acc)
        acc *= int(d)
    return strides[::-1]


def device(rt, value, what: str) -> CLTensor:
    """A device tensor for an argument: itself, or the cached upload of a host constant."""
    if isinstance(value, CLTensor):
        return value
    array = np.asarray(value)
    if array.dtype != np.float32:
        if array.dtype.kind not in "fiub":
            raise NotOnDevice(f"{what} has dtype {array.dtype}")
        converted = array.astype(np.float32)
        return rt.ctx.derived(("f32", id(array)), lambda: ((array,), converted, what))
    return rt.ctx.constant(array, what)


def _out(rt, layer: Layer, out_shapes, i: int = 0) -> CLTensor:
    return rt.ctx.empty(out_shapes[i], layer.outputs[i])


def broadcast_strides(shape, out_shape) -> list[int]:
    shape = (1,) * (len(out_shape) - len(shape)) + tuple(shape)
    strides = _contiguous_strides(shape)
    return [0 if d == 1 and o != 1 else s for d, o, s in zip(shape, out_shape, strides)]


def coalesce(shape, *stride_lists):
    """Merge adjacent dims that every operand walks contiguously, so kernels see a low rank."""
    dims = [(int(d), [s[i] for s in stride_lists]) for i, d in enumerate(shape) if d != 1]
    if not dims:
        return [1], [[0] for _ in stride_lists]
    merged = [dims[0]]
    for d, strides in dims[1:]:
        pd, ps = merged[-1]
        if all(p == s * d for p, s in zip(ps, strides)):
            merged[-1] = (pd * d, strides)
        else:
            merged.append((d, strides))
    return [d for d, _ in merged], [[s[i] for _, s in merged] for i in range(len(stride_lists))]


def _spatial2d(shape4_or_3):
    """(H, W) of an NCHW or NCW shape (1-D as H = 1)."""
    return (1, shape4_or_3[2]) if len(shape4_or_3) == 3 else tuple(shape4_or_3[2:4])


def _geom2d(values, n_spatial: int, fill: int):
    return (fill, values[0]) if n_spatial == 1 else tuple(values)


# The fused dispatcher goes through the registry for its head, whatever family that is.
@layer("OpenCLFused")
def fused(rt, layer, args, out_shapes):
    """A head layer (Conv, a binary op, or a bare chain) with element-wise layers fused after it."""
    op = layer.op
    head = Layer(layer.name, op.head, layer.inputs, layer.outputs)
    return LAYERS[op.head.type](rt, head, args, out_shapes, chain=op.chain)
