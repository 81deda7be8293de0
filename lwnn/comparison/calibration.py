"""Data behind calibration pictures: quantization error against the clipping threshold of one
tensor, measured on its values, with each calibration method's pick.

s8: a threshold ``t`` keeps ``[max(min, -t), min(max, t)]`` of the observed range (widened to
contain 0, as s8 activation ranges are) and quantizes with that range's affine parameters.
q8/q16: the candidates are the power-of-two ranges of the Q formats near the minmax choice
(``real = q * 2**-Q``; threshold ``2**(bits-1-Q)``). Errors are measured by quantizing and
dequantizing the values themselves (at most ``samples`` of them, taken at a fixed stride, plus the
extremes), so the curve is exact for those values, not a histogram estimate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lwnn.comparison import metrics
from lwnn.errors import CalibrationError
from lwnn.numerics.params import scheme_of
from lwnn.quant.options import (
    check_choices,
    check_int,
    check_method_options,
    check_scheme,
    checks_call,
    received,
)


@dataclass(frozen=True)
class RangeError:
    """The error of quantizing a tensor's values with one clipping range."""

    threshold: float
    lo: float
    hi: float
    step: float  # one LSB
    mse: float
    sqnr_db: float
    clip_rate: float  # fraction of the values outside [lo, hi]


@dataclass(frozen=True)
class CalibrationSweep:
    """Error against clipping threshold for one tensor (``calibration_sweep``).

    ``thresholds`` and ``mse``/``sqnr_db`` are the curve; ``picks`` maps each calibration method to
    its chosen range's ``RangeError``; ``absmax`` is the largest |value| (where minmax clips nothing).
    """

    tensor: str
    scheme: str
    thresholds: np.ndarray = field(repr=False)
    mse: np.ndarray = field(repr=False)
    sqnr_db: np.ndarray = field(repr=False)
    picks: dict[str, RangeError]
    absmax: float


def _subsample(values, samples: int) -> np.ndarray:
    x = np.asarray(values, np.float64).reshape(-1)
    x = x[np.isfinite(x)]
    if x.size > samples:
        x = np.concatenate([x[:: x.size // samples], [x.min(), x.max()]])
    return x


def s8_range(vmin: float, vmax: float, threshold: float) -> tuple[float, float]:
    """What a symmetric clipping threshold leaves of the observed ``[vmin, vmax]``, containing 0."""
    return min(max(vmin, -threshold), 0.0), max(min(vmax, threshold), 0.0)


def range_error(x: np.ndarray, params, lo: float, hi: float) -> RangeError:
    """Quantize ``x`` with ``params`` (AffineParams or QFormat) whose range is ``[lo, hi]``."""
    y = params.dequantize(params.quantize(x))
    step = float(getattr(params, "step", None) or np.max(params.scale))
    return RangeError(max(-lo, hi), lo, hi, step, metrics.mse(x, y), metrics.sqnr_db(x, y),
                      metrics.clip_rate(x, lo, hi))


def _s8_error(x, lo, hi) -> RangeError:
    from lwnn.numerics.params import affine_from_range

    return range_error(x, affine_from_range(lo, hi, 8), lo, hi)


def _q_error(x, q: int, bits: int) -> RangeError:
    from lwnn.numerics.params import QFormat

    p = QFormat(int(q), bits)
    return range_error(x, p, p.qmin * p.step, p.qmax * p.step)


@checks_call(CalibrationError)
def calibration_sweep(values, scheme: str = "s8", *, name: str = "", points: int = 80,
                      methods=None, samples: int = 200_000, q_span: int = 6, **options) -> CalibrationSweep:
    """Error against clipping threshold for the float ``values`` of one tensor, and each method's
    pick (``lwnn.quant.ranges``: ``choose_range`` for s8, ``choose_frac_bits`` for q8/q16).

    ``points``: thresholds on the s8 curve (``absmax/points`` to ``absmax``); ``q_span``: Q values
    below and above the minmax Q for q8/q16; ``options`` go to the range choice (e.g.
    ``percentile=99.9``; each must be used by one of ``methods`` and taken by ``scheme``'s range
    function). Every argument is checked first; a bad one raises ``CalibrationError`` naming it.
    """
    from lwnn.numerics.params import frac_bits_for
    from lwnn.quant.observers import TensorObserver
    from lwnn.quant.ranges import METHODS, choose_frac_bits, choose_range

    scheme = check_scheme(scheme)
    if not isinstance(name, str):
        raise CalibrationError(f"name must be a string. Received {received(name)}.")
    points = check_int("points", points, lo=1, hi=100_000)
    samples = check_int("samples", samples, lo=1)
    q_span = check_int("q_span", q_span, lo=0, hi=64)
    methods = METHODS if methods is None else check_choices("methods", methods, METHODS,
                                                            what="calibration method")
    options = check_method_options("calibration_sweep", options, methods=methods, schemes=[scheme],
                                   other_keywords=("scheme", "name", "points", "methods", "samples",
                                                   "q_span"))
    if np.asarray(values).dtype.kind not in "fiu":
        raise CalibrationError(f"values must be an array of real numbers. Received {received(values)}.")
    spec = scheme_of(scheme)
    x = _subsample(values, samples)
    absmax = float(np.max(np.abs(x), initial=0.0))
    if absmax == 0.0:
        raise CalibrationError(f"Tensor {name or 'tensor'!r} is all zeros: there is no threshold to sweep.")
    observer = TensorObserver.of(np.asarray(values, np.float32), name)
    bits = spec.bits
    picks: dict[str, RangeError] = {}
    if spec.affine:
        vmin, vmax = float(x.min()), float(x.max())
        curve = [_s8_error(x, *s8_range(vmin, vmax, t)) for t in absmax * np.arange(1, points + 1) / points]
        for method in methods:
            choice = choose_range(observer, method, bits=8, **options)
            picks[method] = _s8_error(x, float(choice.lo), float(choice.hi))
    else:
        q0 = frac_bits_for(absmax, bits)
        curve = [_q_error(x, q, bits) for q in range(q0 + q_span, q0 - 2, -1)]
        for method in methods:
            picks[method] = _q_error(x, choose_frac_bits(observer, method, bits, **options), bits)
    column = {k: np.array([getattr(e, k) for e in curve]) for k in ("threshold", "mse", "sqnr_db")}
    return CalibrationSweep(name, scheme, column["threshold"], column["mse"], column["sqnr_db"], picks,
                            absmax)
