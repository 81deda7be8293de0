"""Constant padding without ``np.pad``, whose generic machinery costs ~40 us per call and
dominated small layers: allocate the padded buffer once and copy the input into it."""

from __future__ import annotations

import numpy as np


def pad_constant(x: np.ndarray, widths: list[tuple[int, int]], value=0) -> np.ndarray:
    """``np.pad(x, widths, constant_values=value)`` for non-negative widths."""
    if all(b == 0 and e == 0 for b, e in widths):
        return x
    shape = tuple(d + b + e for d, (b, e) in zip(x.shape, widths))
    out = np.empty(shape, dtype=x.dtype) if value else np.zeros(shape, dtype=x.dtype)
    if value:
        out.fill(value)
    out[tuple(slice(b, b + d) for d, (b, _) in zip(x.shape, widths))] = x
    return out
