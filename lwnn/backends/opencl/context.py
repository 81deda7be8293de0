"""The OpenCL context/buffer/program trio: one device, one queue, a program cache and a buffer pool.

* Device choice: ``LWNN_CL_DEVICE`` is ``"P:D"`` (platform and device index) or a substring of a
  platform or device name; unset, the first GPU wins, else the first device.
* Programs are built once per (source, build options, device) and their kernels kept, since PoCL
  compiles with LLVM (seconds) and pyopencl creates a new kernel object on every attribute access.
* Buffers come from a pool keyed by byte size, so repeated runs of a plan reuse the same memory.
"""

from __future__ import annotations

import os
import weakref
from dataclasses import dataclass, field
from importlib import resources

import numpy as np

from lwnn.errors import BackendUnavailable, KernelError, LwnnError

FIX = (
    "Install an OpenCL driver: `sudo apt-get install pocl-opencl-icd ocl-icd-libopencl1` (CPU), or a "
    "GPU vendor's ICD (NVIDIA, AMD, Intel), and the `pyopencl` package."
)


class DeviceMemoryError(LwnnError):
    """An OpenCL buffer could not be allocated (device out of memory or over its allocation limit)."""


def _import_cl():
    try:
        import pyopencl as cl
    except ImportError as err:
        raise BackendUnavailable(
            f"The OpenCL backend needs pyopencl, which failed to import ({err}). {FIX}"
        ) from None
    return cl


def _devices(cl) -> list[tuple[int, int, object]]:
    try:
        platforms = cl.get_platforms()
    except cl.Error as err:
        raise BackendUnavailable(f"No OpenCL platform found ({err}). {FIX}") from None
    found = []
    for pi, platform in enumerate(platforms):
        try:
            devices = platform.get_devices()
        except cl.Error:
            continue
        found.extend((pi, di, d) for di, d in enumerate(devices))
    if not found:
        raise BackendUnavailable(f"OpenCL platforms exist but none has a device. {FIX}")
    return found


def describe_devices() -> list[str]:
    """One line per OpenCL device: ``"P:D platform / device"``."""
    cl = _import_cl()
    return [f"{pi}:{di} {d.platform.name.strip()} / {d.name.strip()}" for pi, di, d in _devices(cl)]


def choose_device(spec: str | None = None):
    """The device ``spec`` names (see module docstring), or the default."""
    cl = _import_cl()
    found = _devices(cl)
    spec = os.environ.get("LWNN_CL_DEVICE", "") if spec is None else spec
    spec = spec.strip()
    if not spec:
        gpus = [d for _, _, d in found if d.type & cl.device_type.GPU]
        return gpus[0] if gpus else found[0][2]
    for pi, di, d in found:
        if spec == f"{pi}:{di}":
            return d
    for _, _, d in found:
        if spec.lower() in d.platform.name.lower() or spec.lower() in d.name.lower():
            return d
    listing = "; ".join(f"{pi}:{di} {d.platform.name.strip()} / {d.name.strip()}" for pi, di, d in found)
    raise BackendUnavailable(
        f"LWNN_CL_DEVICE={spec!r} matches no OpenCL device. Expected 'platform:device' indices or a "
        f"substring of a platform or device name. Received devices: {listing}."
    )


class Storage:
    """One pooled buffer, shared by a tensor and its zero-copy views (reference counted)."""

    __slots__ = ("buffer", "nbytes", "refs", "pool")

    def __init__(self, buffer, nbytes: int, pool: BufferPool | None):
        self.buffer, self.nbytes, self.refs, self.pool = buffer, nbytes, 1, pool

    def release(self) -> None:
        self.refs -= 1
        if self.refs == 0 and self.pool is not None:
            self.pool.give_back(self)


@dataclass
class CLTensor:
    """A float32 (or int32) tensor held on the device: C-contiguous ``shape`` at element ``offset``."""

    storage: Storage
    shape: tuple
    dtype: np.dtype = field(default_factory=lambda: np.dtype(np.float32))
    offset: int = 0  # in elements

    @property
    def buffer(self):
        return self.storage.buffer

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def view(self, shape: tuple) -> CLTensor:
        """The same elements under another shape (Reshape, Flatten, Squeeze...), without a copy."""
        self.storage.refs += 1
        return CLTensor(self.storage, tuple(int(d) for d in shape), self.dtype, self.offset)

    def release(self) -> None:
        self.storage.release()


class BufferPool:
    """Free buffers by byte size; a run gives its intermediates back and the next run reuses them."""

    def __init__(self, ctx, device):
        self.ctx, self.device = ctx, device
        self.free: dict[int, list] = {}
        self.allocated_bytes = 0

    def take(self, nbytes: int, what: str) -> Storage:
        nbytes = max(int(nbytes), 4)
        free = self.free.get(nbytes)
        if free:
            storage = free.pop()
            storage.refs = 1
            return storage
        return Storage(self.allocate(nbytes, what), nbytes, self)

    def allocate(self, nbytes: int, what: str):
        import pyopencl as cl

        limit = self.device.max_mem_alloc_size
        if nbytes > limit:
            raise DeviceMemoryError(
                f"Cannot allocate {nbytes} bytes for tensor {what!r} on OpenCL device "
                f"{self.device.name.strip()!r}: the device allocates at most {limit} bytes per buffer."
            )
        try:
            buf = cl.Buffer(self.ctx, cl.mem_flags.READ_WRITE, nbytes)
        except (cl.MemoryError, cl.Error) as err:
            raise DeviceMemoryError(
                f"Cannot allocate {nbytes} bytes for tensor {what!r} on OpenCL device "
                f"{self.device.name.strip()!r} ({self.allocated_bytes} bytes already allocated): {err}"
            ) from None
        self.allocated_bytes += nbytes
        return buf

    def give_back(self, storage: Storage) -> None:
        self.free.setdefault(storage.nbytes, []).append(storage)

    def clear(self) -> None:
        self.free.clear()


def read_source(name: str, package: str = "lwnn.backends.opencl") -> str:
    """A ``.cl`` or ``.h`` file shipped in ``package``'s ``kernels`` folder (package data: the float
    kernels', or ``lwnn.backends.opencl_int``'s)."""
    return resources.files(package).joinpath("kernels", name).read_text()


class CLContext:
    """One device with its context, in-order queue, program cache and buffer pool."""

    def __init__(self, device=None):
        cl = _import_cl()
        self.cl = cl
        self.device = device if device is not None else choose_device()
        self.ctx = cl.Context([self.device])
        self.queue = cl.CommandQueue(self.ctx)
        self.pool = BufferPool(self.ctx, self.device)
        self._programs: dict[tuple, object] = {}
        self._kernels: dict[tuple, object] = {}
        self._typed: set = set()  # kernels whose scalar argument types are declared
        self._constants: dict[int, tuple] = {}  # id(host array) -> (weakref, CLTensor)
        self.is_gpu = bool(self.device.type & cl.device_type.GPU)

    @property
    def name(self) -> str:
        return f"{self.device.platform.name.strip()} / {self.device.name.strip()}"

    # --- programs -------------------------------------------------------------------------------

    def program(self, source: str, options: tuple[str, ...] = ()):
        """The built program for (source, options) on this device, built on first use."""
        key = (source, tuple(options), self.device.int_ptr)
        prg = self._programs.get(key)
        if prg is None:
            cl = self.cl
            header = read_source("common.h")
            full = header + "\n" + source
            try:
                prg = cl.Program(self.ctx, full).build(options=list(options))
            except cl.Error as err:  # pyopencl's message carries the compiler's build log
                raise KernelError(
                    f"OpenCL program failed to build on {self.name!r} with options {list(options)}.\n"
                    f"Build log:\n{str(err).strip()}"
                ) from None
            self._programs[key] = prg
        return prg

    def kernel(self, file: str, name: str, options: tuple[str, ...] = (), *,
               package: str = "lwnn.backends.opencl", prelude: tuple[str, ...] = ()):
        """Kernel ``name`` of ``file`` in ``package``'s kernels (after its ``prelude`` headers, and
        ``common.h`` before everything) built with ``options``; one cache for the float and the
        integer kernels."""
        key = (package, file, name, tuple(options))
        k = self._kernels.get(key)
        if k is None:
            source = "\n".join(read_source(f, package) for f in (*prelude, file))
            k = getattr(self.program(source, options), name)
            self._kernels[key] = k
        return k

    def launch(self, kernel, global_size, local_size, *args) -> None:
        """Set ``args`` and enqueue. The first launch of a kernel declares its scalar argument types
        (from the numpy scalars and vectors given), which makes pyopencl's ``set_args`` ~50x faster."""
        if kernel not in self._typed:
            kernel.set_scalar_arg_dtypes(
                [None if isinstance(a, self.cl.MemoryObjectHolder) else np.asarray(a).dtype for a in args]
            )
            self._typed.add(kernel)
        kernel.set_args(*args)
        self.cl.enqueue_nd_range_kernel(self.queue, kernel, global_size, local_size)

    # --- memory ---------------------------------------------------------------------------------

    def empty(self, shape: tuple, what: str, dtype=np.float32) -> CLTensor:
        """A tensor from the pool (given back when released)."""
        dtype = np.dtype(dtype)
        shape = tuple(int(d) for d in shape)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        return CLTensor(self.pool.take(nbytes, what), shape, dtype)

    def resident(self, value: np.ndarray, what: str) -> CLTensor:
        """A device copy of ``value`` in its own buffer, outside the pool (constants, tables)."""
        value = np.ascontiguousarray(value)
        nbytes = max(value.nbytes, 4)
        t = CLTensor(Storage(self.pool.allocate(nbytes, what), nbytes, None), value.shape, value.dtype)
        if value.size:
            self.cl.enqueue_copy(self.queue, t.buffer, value, is_blocking=True)
        return t

    def upload(self, array: np.ndarray, what: str) -> CLTensor:
        array = np.ascontiguousarray(array)
        t = self.empty(array.shape, what, array.dtype)
        if array.size:
            self.cl.enqueue_copy(self.queue, t.buffer, array, is_blocking=True)
        return t

    def download(self, t: CLTensor) -> np.ndarray:
        out = np.empty(t.shape, dtype=t.dtype)
        if out.size:
            self.cl.enqueue_copy(
                self.queue, out, t.buffer, src_offset=t.offset * t.dtype.itemsize, is_blocking=True
            )
        return out

    def constant(self, array: np.ndarray, what: str) -> CLTensor:
        """A device copy of a host constant (weights), uploaded once while the array lives."""
        key = id(array)
        hit = self._constants.get(key)
        if hit is not None and hit[0]() is array:
            return hit[1]
        t = self.resident(array, what)
        try:
            ref = weakref.ref(array, lambda _, k=key: self._constants.pop(k, None))
        except TypeError:  # not weak-referenceable: do not cache
            return t
        self._constants[key] = (ref, t)
        return t

    def derived(self, key: tuple, make) -> CLTensor:
        """A device tensor computed once from constants (transposed weights, folded BatchNorm...),
        cached under ``key`` (which holds the source arrays' ids and must stay valid while they live)."""
        hit = self._constants.get(key)
        if hit is not None and all(r() is not None for r in hit[0]):
            return hit[1]
        arrays, value, what = make()
        t = self.resident(value, what)
        refs = tuple(weakref.ref(a) for a in arrays)
        self._constants[key] = (refs, t)
        return t

    def finish(self) -> None:
        self.queue.finish()


_default: CLContext | None = None


def default_context() -> CLContext:
    """The context of the default device (``LWNN_CL_DEVICE``, else as ``choose_device`` picks),
    opened on first use and shared by the float and integer OpenCL runtimes."""
    global _default
    if _default is None:
        _default = CLContext(None)
    return _default
