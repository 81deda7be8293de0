"""The CPU float kernel table: op type -> NumPy function ``f(op, *inputs) -> array | tuple``."""

from __future__ import annotations

from collections.abc import Callable

KERNELS: dict[str, Callable] = {}


def kernel(*op_types: str):
    """Register the decorated function as the CPU float kernel of ``op_types``."""

    def register(fn: Callable) -> Callable:
        for t in op_types:
            KERNELS[t] = fn
        return fn

    return register
