"""Rounding, defined once for every scheme (docs/architecture.md, "Quantization schemes").

* ``round_half_away``: nearest, ties away from zero: C's ``round`` and TFLite's ``TfLiteRound``,
  used by s8 quantization, zero points, multipliers and the float-to-code conversions.
* ``round_half_up``: ``floor(v + 1/2)``, the q-format rounding (CMSIS-NN's ``NN_ROUND`` added
  before a right shift rounds ties up).
* ``integral``: integer-valued floats (exact sums from BLAS) to int64.

Both roundings work from the exact fraction ``v - trunc(v)`` (or ``v - floor(v)``): the textbook
``floor(|v| + 0.5)`` misrounds 0.49999999999999994, whose sum with 0.5 rounds up to 1.0.
"""

from __future__ import annotations

import numpy as np


def round_half_away(v):
    """Nearest integer (as floats of ``v``'s precision), ties away from zero."""
    t = np.trunc(v)
    return t + np.copysign(np.abs(v - t) >= 0.5, v)


def round_half_up(v):
    """Nearest integer (as floats), ties towards +infinity: ``floor(v + 1/2)`` computed exactly."""
    f = np.floor(v)
    return f + (v - f >= 0.5)


def integral(values) -> np.ndarray:
    """Floats that hold integers exactly (integer sums through BLAS) as int64; ``rint`` only
    absorbs the sign of a negative zero."""
    return np.rint(values).astype(np.int64)
