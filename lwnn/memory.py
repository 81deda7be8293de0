"""The memory guard: a tensor larger than the limit is refused when it is planned (shape
inference, constant folding at import), before anything is allocated.

The limit is ``LWNN_MEMORY_LIMIT`` (bytes, or with a K/M/G suffix) when set, else what
``set_memory_limit`` set, else half of this machine's physical memory: a model that asks for more
in one tensor is a broken or hostile file on the machines lwnn runs on, and allocating first would
fail late (after gigabytes) or take the machine down.
"""

from __future__ import annotations

import os
from math import prod

from lwnn.errors import LwnnError, MemoryLimitError

_limit: int | None = None
_SUFFIX = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not POSIX: a conservative 8 GiB
        return 8 << 30


def _parse(text: str) -> int:
    text = text.strip().upper().removesuffix("B").removesuffix("I")
    scale = _SUFFIX.get(text[-1:], 1)
    digits = text[:-1] if text[-1:] in _SUFFIX else text
    try:
        value = float(digits) * scale
    except ValueError:
        value = -1
    if not value > 0:
        raise LwnnError(f"LWNN_MEMORY_LIMIT must be a positive number of bytes (optionally with K, M "
                        f"or G). Received {text!r}.")
    return int(value)


def memory_limit() -> int:
    """The largest tensor, in bytes, lwnn plans."""
    env = os.environ.get("LWNN_MEMORY_LIMIT")
    if env:
        return _parse(env)
    return _limit if _limit is not None else _physical_memory() // 2


def set_memory_limit(nbytes: int | None) -> None:
    """Set the largest tensor, in bytes, lwnn plans (None: back to half the physical memory)."""
    global _limit
    if nbytes is not None and (isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes <= 0):
        raise LwnnError(f"set_memory_limit expects a positive int of bytes or None. Received {nbytes!r}.")
    _limit = nbytes


def check_size(layer: str, op_type: str, tensor: str, shape: tuple, itemsize: int) -> None:
    """MemoryLimitError, naming the layer, tensor, shape and bytes, if the tensor is too large."""
    nbytes = prod(int(d) for d in shape) * itemsize
    limit = memory_limit()
    if nbytes > limit:
        raise MemoryLimitError(
            f"Layer {layer!r} ({op_type}) would create tensor {tensor!r} of shape {tuple(shape)}: "
            f"{nbytes:,} bytes as {itemsize}-byte values, more than the memory limit of {limit:,} bytes "
            "(lwnn.set_memory_limit or LWNN_MEMORY_LIMIT to change it).")
