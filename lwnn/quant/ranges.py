"""Range choice: pure functions from a ``TensorObserver`` to a clipping range or a Q format.

Methods (docs/architecture.md, "Quantization schemes"):

* ``minmax``: the observed range (LWNN's only method); never clips.
* ``percentile``: the ``percentile``-th percentile of |x| (symmetric), or the
  ``100 - percentile``-th and ``percentile``-th percentiles of x, read off the histogram with
  values spread uniformly inside each bin (so within one bin of the exact percentile).
* ``kl``: TensorRT's entropy calibration on the |x| histogram: for every candidate threshold of
  ``i`` bins (``i`` from the number of levels up to the last used bin), the reference distribution
  P is bins ``0..i-1`` with every count beyond folded into bin ``i-1``; the candidate Q is the same
  ``i`` bins (without the outliers) merged into ``levels`` groups of consecutive bins (group
  ``j`` holds bins ``j*i//levels`` to ``(j+1)*i//levels - 1``), each group's count spread evenly
  over the bins where P is nonzero. Empty Q bins where P is not get a count of 1e-4 (smoothing),
  both are normalised, and the ``i`` with the least KL(P || Q) gives the threshold ``i`` bin
  widths (the upper edge of the last reference bin; TensorRT's slides take the bin middle).
  Ties go to the largest threshold (sparse tensors, where P and Q often match exactly), and a
  threshold below every value is never chosen. ``levels`` is ``2**(bits-1)`` (128 for int8) on a
  symmetric grid; ``kl_bins`` caps the bins searched. Exact zeros are taken out
  of bin 0 first: every grid represents them exactly, and left in, a ReLU output's spike at 0
  dominates the divergence and drags the threshold far down (NVIDIA's pytorch-quantization
  flattens bin 0 for the same reason).
* ``mse``: the threshold minimising the expected squared error of a uniform ``bits`` grid over
  the range: rounding noise ``step**2 / 12`` for each nonzero value inside (exact zeros are exact
  on every grid) plus ``(|x| - t)**2`` for each clipped value, both from the histogram (values
  uniform within their bin). Candidates are the bin edges up to the maximum, except those
  within half a step of it (see ``_edge_candidates``).
  KL and MSE both clip spiky or saturated tensors in their own way (KL notably clips part of a
  sigmoid output's spike near 1); comparing them per layer is what the workbench is for.

Every range contains 0 (so that zero padding and ReLU outputs are exact) and lies within the
observed ``[min, max]`` widened to 0. Asymmetric ranges (``symmetric=False``): ``minmax`` and
``percentile`` take each side separately; ``mse`` searches (lo, hi) pairs jointly since both share
the step; ``kl``, defined on |x| only, uses ``2**bits`` levels on the one side of a tensor of one
sign, and for a tensor of both signs chooses each side on its own half histogram with
``2**(bits-1)`` levels.

Zero-range tensors (every value 0, or no values) get ``[-1, 1]`` (``ZERO_RANGE_DEFAULT``) and a
note: any grid represents 0 exactly, and a unit range is a harmless scale if the tensor turns out
nonzero at run time. A tensor whose values are all NaN/Inf raises ``CalibrationError``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lwnn.errors import CalibrationError
from lwnn.numerics.params import frac_bits_for
from lwnn.quant.observers import TensorObserver
from lwnn.quant.options import (
    METHOD_OPTIONS,
    check_bool,
    check_method,
    check_percentile,
    checks_call,
    received,
)
from lwnn.quant.options import METHODS as METHODS  # the methods, defined with their options

ZERO_RANGE_DEFAULT = 1.0
DEFAULT_KL_BINS = 2048
_KL_EPS = 1e-4  # smoothing count for empty candidate bins (as MXNet's calibration does)
# Scores closer than these are ties. The histograms are integer counts, but the float reference
# that fills them differs in its last bits between BLAS kernels (docs/architecture.md,
# "Portability"): a value crossing a bin edge moves a score by rounding noise, and two candidates
# that are equal in exact arithmetic (q16's KL is ~0 for every range that clips nothing) must not
# be told apart by that noise. KL is in nats: one count in N values moves it by ~1/N >> 1e-12.
_KL_TIE = 1e-12
_MSE_TIE = 1e-9  # relative: the error's unit is the tensor's squared unit


@dataclass(frozen=True)
class RangeChoice:
    """A clipping range ``[lo, hi]`` (``lo <= 0 <= hi``) chosen by ``method`` for one tensor
    (``lo`` and ``hi`` are arrays, one entry per channel, when made by ``channel_ranges``).

    ``clip_rate``: estimated fraction of the observed finite values outside ``[lo, hi]``.
    ``notes``: what a report should say (zero range, constant tensor, ignored NaN/Inf, ...).
    """

    lo: float | np.ndarray
    hi: float | np.ndarray
    method: str
    clip_rate: float
    notes: tuple[str, ...] = ()
    name: str = ""

    @property
    def threshold(self) -> float | np.ndarray:
        """max(|lo|, hi): the symmetric range that contains this one (per channel for arrays)."""
        t = np.maximum(-np.asarray(self.lo), self.hi)
        return float(t) if t.ndim == 0 else t


@checks_call(CalibrationError)
def choose_range(
    observer: TensorObserver,
    method: str = "minmax",
    *,
    bits: int = 8,
    symmetric: bool = False,
    percentile: float = 99.99,
    kl_bins: int = DEFAULT_KL_BINS,
    kl_levels: int | None = None,
    mse_candidates: int = 512,
) -> RangeChoice:
    """Choose the clipping range of one tensor from its statistics (see the module docstring).

    ``bits`` sets the grid that ``kl`` and ``mse`` evaluate; ``kl_bins`` caps the histogram bins
    the KL search runs over (merging adjacent bins); ``kl_levels`` overrides the number of
    quantization levels per side; ``mse_candidates`` caps the thresholds tried per side by an
    asymmetric MSE search.
    """
    bits = _check_args(observer, method, bits, percentile, kl_bins=kl_bins, kl_levels=kl_levels,
                       mse_candidates=mse_candidates)
    symmetric = check_bool("symmetric", symmetric)
    notes = _data_notes(observer)
    if observer.absmax == 0.0:
        return RangeChoice(-ZERO_RANGE_DEFAULT, ZERO_RANGE_DEFAULT, method, 0.0, notes, observer.name)
    if symmetric:
        t, more = _symmetric(observer, method, bits, percentile, kl_bins, kl_levels)
        lo, hi = -t, t
    else:
        lo, hi, more = _asymmetric(observer, method, bits, percentile, kl_bins, kl_levels, mse_candidates)
    lo, hi = min(lo, 0.0) + 0.0, max(hi, 0.0)  # + 0.0 turns -0.0 into 0.0
    if hi <= lo:  # e.g. a percentile of a tensor that is almost all zeros
        more += (f"{method} chose an empty range; using minmax",)
        lo, hi = min(observer.min, 0.0), max(observer.max, 0.0)
    return RangeChoice(lo, hi, method, clip_rate(observer, lo, hi), notes + more, observer.name)


@checks_call(CalibrationError)
def choose_frac_bits(
    observer: TensorObserver,
    method: str = "minmax",
    bits: int = 8,
    *,
    percentile: float = 99.99,
    kl_bins: int = DEFAULT_KL_BINS,
    search: int = 3,
) -> int:
    """Fractional bits Q of a symmetric power-of-two format (``real = q * 2**-Q``, q in
    ``[-2**(bits-1), 2**(bits-1) - 1]``) for one tensor.

    ``minmax``: ``Q = (bits-1) - ceil(log2(max|x|))`` (docs/architecture.md; an exact power of two max
    saturates by one LSB, as in LWNN). ``percentile``: the same formula at the percentile of |x|,
    i.e. the smallest power-of-two range that clips at most ``100 - percentile`` % of the values.
    ``mse``/``kl``: the best of ``Q0 - 1 .. Q0 + search`` by that method's criterion (``mse``: the
    expected error with clipping at ``-2**(bits-1)`` and ``2**(bits-1) - 1`` steps; ``kl``: the
    divergence at threshold ``2**(bits-1-Q)`` with ``2**(bits-1)`` levels), where Q0 is the minmax
    choice; ties go to Q0, then to the larger range. Q may be negative. A zero-range tensor gets
    ``bits - 1`` (the range ``ZERO_RANGE_DEFAULT`` = 1).
    """
    bits = _check_args(observer, method, bits, percentile, kl_bins=kl_bins, search=search)
    _data_notes(observer)
    absmax = observer.absmax
    if absmax == 0.0:
        return frac_bits_for(ZERO_RANGE_DEFAULT, bits)
    q0 = frac_bits_for(absmax, bits)
    if method == "minmax":
        return q0
    if method == "percentile":
        counts, edges = observer.abs_histogram()
        return frac_bits_for(min(_quantile(counts, edges, percentile / 100), absmax), bits)
    candidates = [*range(q0, q0 + search + 1), q0 - 1]
    score = _q_kl if method == "kl" else _q_mse
    scores = [score(observer, q, bits, kl_bins) for q in candidates]
    return candidates[_first_best(scores, *((_KL_TIE, 0.0) if method == "kl" else (0.0, _MSE_TIE)))]


def channel_ranges(observer: TensorObserver, *, symmetric: bool = True) -> RangeChoice:
    """Per-channel minmax ranges (e.g. conv weights, observed with ``channel_axis=0``): a
    ``RangeChoice`` whose ``lo`` and ``hi`` are arrays with one entry per channel. Zero-range
    channels get ``[-1, 1]`` and are listed in the notes."""
    if observer.channel_min is None:
        raise CalibrationError(
            f"Tensor {observer.name or 'tensor'!r} has no per-channel statistics: observe it with "
            "channel_axis= set."
        )
    lo = np.minimum(observer.channel_min, 0.0)
    hi = np.maximum(observer.channel_max, 0.0)
    if symmetric:
        lo, hi = np.minimum(lo, -hi), np.maximum(hi, -lo)
    dead = ~(hi > lo)  # also true for channels with no finite value (inf, -inf)
    lo[dead], hi[dead] = -ZERO_RANGE_DEFAULT, ZERO_RANGE_DEFAULT
    notes = _data_notes(observer)
    if dead.any():
        notes += (f"zero range in channels {np.flatnonzero(dead).tolist()}: using the default range "
                  f"[-{ZERO_RANGE_DEFAULT:g}, {ZERO_RANGE_DEFAULT:g}]",)
    return RangeChoice(lo + 0.0, hi, "minmax", 0.0, notes, observer.name)


def weight_thresholds(w: np.ndarray, axis: int | None, method: str, *, bits: int = 8,
                      name: str = "", **options) -> np.ndarray | float:
    """Symmetric clipping thresholds of a constant tensor by ``method``: one per channel along
    ``axis`` (each channel observed on its own, e.g. conv weights per output channel), or one for
    the whole tensor when ``axis`` is None. An all-zero channel gets 0."""
    w = np.asarray(w, np.float64)
    if axis is None:
        observer = TensorObserver.of(w, name)
        return choose_range(observer, method, bits=bits, symmetric=True, **options).threshold \
            if observer.absmax > 0 else 0.0
    rows = np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)
    out = np.zeros(rows.shape[0])
    for c, row in enumerate(rows):  # one histogram per channel: a handful of channels per layer
        observer = TensorObserver.of(row, f"{name}[{c}]")
        if observer.absmax > 0:
            out[c] = choose_range(observer, method, bits=bits, symmetric=True, **options).threshold
    return out


def clip_rate(observer: TensorObserver, lo: float, hi: float) -> float:
    """Estimated fraction of the observed finite values outside ``[lo, hi]`` (``lo <= 0 <= hi``)."""
    if observer.count == 0:
        return 0.0
    w = observer.bin_width
    above, _ = _tail(observer.hist_pos, w, np.array([hi]), observer.max)
    below, _ = _tail(observer.hist_neg, w, np.array([-lo]), -observer.min)
    return float(above[0] + below[0]) / observer.count


# --- checks and notes -------------------------------------------------------------------------


def _check_args(observer, method: str, bits: int, percentile: float, **options) -> int:
    """The arguments of a range choice, by the rules of ``lwnn.quant.options``."""
    if not isinstance(observer, TensorObserver):
        raise CalibrationError(f"The range choice takes a TensorObserver (lwnn.quant.observers). "
                               f"Received {received(observer)}.")
    check_method(method)
    if isinstance(bits, bool) or not isinstance(bits, int | np.integer) or not 2 <= bits <= 32:
        raise CalibrationError(f"Quantization bits must be an integer in [2, 32]. "
                               f"Received: {received(bits)}.")
    check_percentile(percentile)
    for name, value in options.items():
        METHOD_OPTIONS[name].check(value)
    return int(bits)


def _data_notes(observer: TensorObserver) -> tuple[str, ...]:
    """What the statistics say about the data; raises if there is nothing usable."""
    name = observer.name or "tensor"
    bad = observer.nonfinite_count
    if observer.count == 0 and bad:
        raise CalibrationError(
            f"Tensor {name!r}: all {bad} observed values are NaN or Inf "
            f"({observer.nan_count} NaN, {observer.posinf_count + observer.neginf_count} Inf); "
            "no range can be chosen. Check the layers that produce it."
        )
    notes = []
    if bad:
        notes.append(f"{observer.nan_count} NaN and {observer.posinf_count + observer.neginf_count} "
                     f"Inf values ignored (of {observer.count + bad})")
    default = f"using the default range [-{ZERO_RANGE_DEFAULT:g}, {ZERO_RANGE_DEFAULT:g}]"
    if observer.count == 0:
        notes.append(f"zero range: no values observed; {default}")
    elif observer.absmax == 0.0:
        notes.append(f"zero range: all {observer.count} values are 0; {default}")
    elif observer.min == observer.max:
        notes.append(f"constant tensor: every value is {observer.min:.6g}; range widened to include 0")
    return tuple(notes)


# --- symmetric and asymmetric choices ---------------------------------------------------------


def _symmetric(observer, method, bits, percentile, kl_bins, kl_levels) -> tuple[float, tuple]:
    """Threshold t of the range [-t, t], and notes."""
    absmax = observer.absmax
    counts, edges = observer.abs_histogram()
    if method == "minmax":
        return absmax, ()
    if method == "percentile":
        return min(_quantile(counts, edges, percentile / 100), absmax), ()
    if method == "kl":
        nonzero = _without_zeros(counts, observer)
        return _kl_threshold(nonzero, observer.bin_width, kl_levels or 2 ** (bits - 1), absmax, kl_bins)
    step_per_t = 1.0 / (2 ** (bits - 1) - 1)  # symmetric grid of +-(2**(bits-1) - 1) steps
    return _mse_symmetric(observer, counts, step_per_t), ()


def _asymmetric(observer, method, bits, percentile, kl_bins, kl_levels, mse_candidates):
    """(lo, hi, notes) with each side chosen as the module docstring says."""
    if method == "minmax":
        return observer.min, observer.max, ()
    if method == "percentile":
        counts, edges = observer.signed_histogram()
        q = percentile / 100
        lo = max(_quantile(counts, edges, 1 - q), observer.min)
        return lo, min(_quantile(counts, edges, q), observer.max), ()
    if method == "mse":
        return (*_mse_asymmetric(observer, bits, mse_candidates), ())
    w = observer.bin_width
    if observer.min >= 0 or observer.max <= 0:  # one sign: the whole grid on that side
        counts = _without_zeros(observer.abs_histogram()[0], observer)
        t, notes = _kl_threshold(counts, w, kl_levels or 2**bits, observer.absmax, kl_bins)
        return (0.0, t, notes) if observer.min >= 0 else (-t, 0.0, notes)
    levels = kl_levels or 2 ** (bits - 1)
    positive = _without_zeros(observer.hist_pos, observer)
    hi, notes_hi = _kl_threshold(positive, w, levels, observer.max, kl_bins)
    lo, notes_lo = _kl_threshold(observer.hist_neg, w, levels, -observer.min, kl_bins)
    return -lo, hi, tuple(dict.fromkeys(notes_hi + notes_lo))


# --- histogram arithmetic ---------------------------------------------------------------------


def _first_best(scores, atol: float, rtol: float) -> int:
    """Index of the first score within ``atol + rtol * |min|`` of the minimum: candidates are
    listed in the order their ties should be broken, and a difference below the tolerance is
    rounding noise (see ``_KL_TIE``). An infinite score wins only when every score is infinite."""
    scores = np.asarray(scores, np.float64)
    best = float(np.min(scores))
    return int(np.flatnonzero(scores <= best + atol + rtol * abs(best))[0])


def _quantile(counts: np.ndarray, edges: np.ndarray, q: float) -> float:
    """The value below which a fraction ``q`` of the histogram lies (uniform within bins)."""
    cum = np.concatenate([[0], np.cumsum(counts)])
    target = q * cum[-1]
    k = int(np.searchsorted(cum[1:], target, side="left"))  # first bin whose top reaches target
    k = min(k, counts.size - 1)
    inside = (target - cum[k]) / counts[k] if counts[k] else 0.0
    return float(edges[k] + min(max(inside, 0.0), 1.0) * (edges[k + 1] - edges[k]))


def _tail(counts: np.ndarray, w: float, t: np.ndarray, top: float) -> tuple[np.ndarray, np.ndarray]:
    """For thresholds ``t`` on a histogram of |x| with bin width ``w``: the number of values
    beyond t and the sum of ``(|x| - t)**2`` over them, values uniform within their bin.
    Nothing lies beyond ``top`` (the side's max), which the last used bin may overstate."""
    n = counts.astype(np.float64)
    size = n.size
    centers = (np.arange(size) + 0.5) * w

    def suffix(v):  # suffix[k] = sum of v[k:]
        return np.concatenate([np.cumsum(v[::-1])[::-1], [0.0]])

    s0, s1, s2 = suffix(n), suffix(n * centers), suffix(n * centers**2)
    t = np.asarray(t, np.float64)
    k = np.clip(np.floor(t / w), 0, size).astype(np.int64) if w else np.full(t.shape, size)
    full = np.minimum(k + 1, size)  # bins wholly beyond t
    count = s0[full]
    err = s2[full] - 2 * t * s1[full] + t**2 * s0[full] + w**2 / 12 * s0[full]
    in_range = k < size
    part = np.where(in_range, (k + 1) * w - t, 0.0)  # length of bin k beyond t
    n_part = np.where(in_range, n[np.minimum(k, size - 1)], 0.0) * part / (w or 1.0)
    count, err = count + n_part, err + n_part * part**2 / 3
    beyond = t < top
    return np.where(beyond, count, 0.0), np.where(beyond, np.maximum(err, 0.0), 0.0)


def _edge_candidates(counts, w: float, top: float, margin: float, limit: int | None = None) -> np.ndarray:
    """Thresholds to try: the bin edges below ``top - margin``, and ``top`` (at most ``limit``).

    ``margin`` is half a step at ``t = top``: a threshold closer to the max than that only
    "clips" values that rounding would move as far anyway, and the noise model (``step**2/12``
    for every value inside, though values at the max sit on the top grid point) would wrongly
    favour it, reporting saturated tensors (ReLU6, sigmoid) as heavily clipped.
    """
    used = int(np.flatnonzero(counts)[-1]) + 1 if counts.any() else 0
    ks = np.arange(1, used + 1)
    ks = ks[ks * w < top - margin]
    if limit and ks.size > limit:
        ks = ks[:: math.ceil(ks.size / limit)]
    return np.append(ks * w, top)


def _mse_symmetric(observer: TensorObserver, counts: np.ndarray, step_per_t: float) -> float:
    top = observer.absmax
    t = _edge_candidates(counts, observer.bin_width, top, top * step_per_t / 2)
    beyond, err = _tail(counts, observer.bin_width, t, top)
    inside = np.maximum(observer.count - observer.zero_count - beyond, 0.0)
    mse = err + (t * step_per_t) ** 2 / 12 * inside
    return float(t[_first_best(mse, 0.0, _MSE_TIE)])


def _mse_asymmetric(observer: TensorObserver, bits: int, limit: int) -> tuple[float, float]:
    w = observer.bin_width
    margin = (max(observer.max, 0.0) - min(observer.min, 0.0)) / (2**bits - 1) / 2
    sides = []
    for counts, top in ((observer.hist_pos, observer.max), (observer.hist_neg, -observer.min)):
        t = _edge_candidates(counts, w, top, margin, limit) if top > 0 else np.zeros(1)
        sides.append((t, *_tail(counts, w, t, max(top, 0.0))))
    (hi, n_hi, e_hi), (lo, n_lo, e_lo) = sides
    step = (hi[:, None] + lo[None, :]) / (2**bits - 1)
    inside = np.maximum(observer.count - observer.zero_count - n_hi[:, None] - n_lo[None, :], 0.0)
    mse = e_hi[:, None] + e_lo[None, :] + step**2 / 12 * inside
    i, j = np.unravel_index(_first_best(mse.ravel(), 0.0, _MSE_TIE), mse.shape)
    return -float(lo[j]), float(hi[i])


def _merge_bins(counts: np.ndarray, w: float, max_bins: int) -> tuple[np.ndarray, float]:
    """The used part of ``counts`` with adjacent bins merged (by an integer factor) so that at
    most ``max_bins`` remain; edges stay edges of the original histogram."""
    used = int(np.flatnonzero(counts)[-1]) + 1 if counts.any() else 0
    factor = max(1, math.ceil(used / max_bins))
    padded = np.zeros(math.ceil(used / factor) * factor, np.float64)
    padded[:used] = counts[:used]
    return padded.reshape(-1, factor).sum(axis=1), w * factor


def _without_zeros(counts: np.ndarray, observer: TensorObserver) -> np.ndarray:
    """A histogram whose bin 0 (which holds every exact zero) no longer counts the zeros."""
    counts = counts.copy()
    counts[0] -= observer.zero_count
    return counts


def _kl_threshold(counts, w, levels: int, top: float, kl_bins: int) -> tuple[float, tuple]:
    """TensorRT's entropy threshold on a histogram of |x| (see the module docstring)."""
    hist, width = _merge_bins(counts, w, kl_bins)
    if hist.size <= levels:
        return top, (f"kl: {hist.size} used bins <= {levels} levels, so no clipping",)
    candidates = np.arange(levels, hist.size + 1)
    divergences = _kl_divergences(hist, candidates, levels)[::-1]
    best = int(candidates[-1 - _first_best(divergences, _KL_TIE, 0.0)])  # ties: the largest threshold
    notes = ()
    if best == levels:
        notes = (f"kl: threshold at the smallest candidate ({levels} bins of {width:.3g}); "
                 "the histogram is too coarse to look lower",)
    return min(best * width, top), notes


def _xlogx(v: np.ndarray) -> np.ndarray:
    """v * log(v), 0 where v is 0."""
    return np.where(v > 0, v * np.log(np.where(v > 0, v, 1.0)), 0.0)


def _kl_divergences(hist: np.ndarray, candidates, levels: int) -> np.ndarray:
    """KL(P || Q) for each candidate threshold of ``i`` bins (``i`` may exceed ``hist.size``).

    All candidates at once, in closed form: with N values in all, P sums to N and Q (constant
    ``q_g = sum_g / used_g`` over the P-nonzero bins of group g) to the unclipped count, so
    ``KL = (sum p log p - sum_g S_g log q_g) / N + log(sum Q / N)``, ``S_g`` being group g's
    share of P (its unclipped count, plus the outliers for the last group).
    """
    i = np.asarray(candidates, np.int64)
    h = np.zeros(max(int(i.max()), hist.size), np.float64)
    h[: hist.size] = hist
    cum = np.concatenate([[0.0], np.cumsum(h)])
    cum_nonzero = np.concatenate([[0], np.cumsum(h != 0)])
    cum_hlogh = np.concatenate([[0.0], np.cumsum(_xlogx(h))])
    total = cum[-1]
    outliers = total - cum[i]  # folded into P's last bin
    last = h[i - 1] + outliers
    bounds = (np.arange(levels + 1)[None, :] * i[:, None]) // levels  # group g: bounds[g:g+2]
    sums = cum[bounds[:, 1:]] - cum[bounds[:, :-1]]  # Q: the unclipped bins, in levels groups
    used = cum_nonzero[bounds[:, 1:]] - cum_nonzero[bounds[:, :-1]]
    used[:, -1] += (h[i - 1] == 0) & (outliers > 0)  # the last bin is nonzero in P only by outliers
    q = np.where(sums > 0, sums / np.maximum(used, 1), 0.0)
    q_last = np.where(q[:, -1] > 0, q[:, -1], _KL_EPS)  # smoothing: the only empty Q bin P uses
    p_log_p = cum_hlogh[i - 1] + _xlogx(last)
    p_log_q = (sums * np.log(np.where(q > 0, q, 1.0))).sum(axis=1) + outliers * np.log(q_last)
    q_total = cum[i] + np.where(q[:, -1] > 0, 0.0, _KL_EPS * (outliers > 0))
    kl = (p_log_p - p_log_q) / total + np.log(q_total / total)
    # A threshold below every value leaves Q only the smoothing count, which normalises to P
    # itself (KL 0): such a Q represents nothing, so it must never win.
    return np.where(cum[i] > 0, kl, np.inf)


# --- Q-format criteria ------------------------------------------------------------------------


def _q_mse(observer: TensorObserver, q: int, bits: int, _kl_bins: int) -> float:
    """Expected squared error of Q-format ``q``: noise inside, clipping at -2**(bits-1) and
    2**(bits-1) - 1 steps."""
    step = math.ldexp(1.0, -q)
    w = observer.bin_width
    n_hi, e_hi = _tail(observer.hist_pos, w, np.array([(2 ** (bits - 1) - 1) * step]), max(observer.max, 0))
    n_lo, e_lo = _tail(observer.hist_neg, w, np.array([2 ** (bits - 1) * step]), max(-observer.min, 0))
    inside = max(observer.count - observer.zero_count - n_hi[0] - n_lo[0], 0.0)
    return float(e_hi[0] + e_lo[0] + step**2 / 12 * inside)


def _q_kl(observer: TensorObserver, q: int, bits: int, kl_bins: int) -> float:
    """KL divergence of Q-format ``q`` on the |x| histogram, threshold ``2**(bits-1-q)``."""
    counts = _without_zeros(observer.abs_histogram()[0], observer)
    hist, width = _merge_bins(counts, observer.bin_width, kl_bins)
    i = max(1, round(math.ldexp(1.0, bits - 1 - q) / width))
    return float(_kl_divergences(hist, [i], 2 ** (bits - 1))[0])
