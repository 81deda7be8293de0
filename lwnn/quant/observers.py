"""Calibration statistics: a streaming observer per tensor, and ``observe`` to fill them.

A ``TensorObserver`` keeps, over any number of batches and without keeping the data: the count
of finite values, exact zeros, NaN and +/-Inf; the exact min and max; optionally the min and max
of every channel along one axis; and a histogram from which ``lwnn.quant.ranges`` chooses a
clipping range (percentile, KL, MSE).

Histogram layout. The histogram has ``bins`` bins of |x| for the values >= 0 (``hist_pos``) and
as many for the values < 0 (``hist_neg``); bin ``k`` of either half holds ``k*w <= |x| < (k+1)*w``
(the largest value goes in the last bin). Together they are a signed histogram over ``[-R, R]``,
``R = bins * w``, with 0 on a bin edge; their sum is the |x| histogram that symmetric methods use.
The bin width ``w`` is a power of two and ``bins`` too, so that:

* binning is exact (|x| / w only changes the float exponent);
* when a larger value arrives, the range doubles as often as needed and every group of ``2**m``
  adjacent bins merges into one: old edges are a subset of the new ones, so the result equals
  histogramming all the data at once on the final edges, with no approximation;
* R is a power of two, so the ranges of q8/q16 Q formats (``2**(bits-1-Q)``) fall on bin edges.

``w`` is the smallest power of two with ``bins * w >= max|x|``, so the data always spans more
than half of the bins. Until a nonzero value arrives ``w`` is 0 and zeros are counted in bin 0.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Iterator, Mapping

import numpy as np

from lwnn.errors import CalibrationError, FeedError, ShapeError
from lwnn.graph import _preview
from lwnn.quant.options import (
    check_batch_size,
    check_bool,
    check_int,
    check_model,
    checks_call,
    received,
)

DEFAULT_BINS = 2048
DEFAULT_BATCH_SIZE = 32
MAX_BINS = 1 << 24  # per half histogram: 256 MiB of counts per observer
_CHUNK = 1 << 22  # values binned at a time, to bound the float64 temporaries


def pow2_ceil(v: float) -> float:
    """The smallest power of two >= ``v`` (``v`` > 0), computed exactly."""
    mantissa, exponent = math.frexp(v)  # v = mantissa * 2**exponent, 0.5 <= mantissa < 1
    return v if mantissa == 0.5 else math.ldexp(1.0, exponent)


class TensorObserver:
    """Streaming statistics of one tensor over many batches (see the module docstring).

    ``channel_axis``: also track the min and max of each channel along this axis (1 for NCHW
    activations, 0 for conv weights). The channel count must be the same in every batch.
    """

    def __init__(self, name: str = "", *, bins: int = DEFAULT_BINS, channel_axis: int | None = None):
        if (not isinstance(bins, int | np.integer) or isinstance(bins, bool) or not 2 <= bins <= MAX_BINS
                or bins & (bins - 1)):
            raise CalibrationError(f"Histogram bins must be a power of two >= 2 (at most 2**24). "
                                   f"Received: {received(bins)}.")
        self.name = name
        self.bins = int(bins)
        self.channel_axis = check_int("channel_axis", channel_axis, none=True)
        self.count = 0  # finite values
        self.zero_count = 0
        self.nan_count = 0
        self.posinf_count = 0
        self.neginf_count = 0
        self.min = math.inf  # of the finite values
        self.max = -math.inf
        self.bin_width = 0.0
        self.hist_pos = np.zeros(bins, np.int64)
        self.hist_neg = np.zeros(bins, np.int64)
        self.channel_min: np.ndarray | None = None
        self.channel_max: np.ndarray | None = None

    @classmethod
    def of(cls, x: np.ndarray, name: str = "", **kwargs) -> TensorObserver:
        """An observer that has seen ``x`` (e.g. a weight tensor)."""
        observer = cls(name, **kwargs)
        observer.update(x)
        return observer

    @property
    def absmax(self) -> float:
        """max |x| over the finite values (0 before any)."""
        return max(-self.min, self.max, 0.0) if self.count else 0.0

    @property
    def nonfinite_count(self) -> int:
        return self.nan_count + self.posinf_count + self.neginf_count

    @property
    def hist_range(self) -> float:
        """R: the histogram covers [-R, R]."""
        return self.bins * self.bin_width

    def abs_histogram(self) -> tuple[np.ndarray, np.ndarray]:
        """Counts of |x| per bin and the ``bins + 1`` edges ``k * w``."""
        return self.hist_pos + self.hist_neg, np.arange(self.bins + 1) * self.bin_width

    def signed_histogram(self) -> tuple[np.ndarray, np.ndarray]:
        """Counts of x over ``[-R, R]`` in ``2 * bins`` bins, and the ``2 * bins + 1`` edges."""
        counts = np.concatenate([self.hist_neg[::-1], self.hist_pos])
        return counts, np.arange(-self.bins, self.bins + 1) * self.bin_width

    def update(self, x: np.ndarray) -> None:
        """Add one batch of values of this tensor."""
        x = np.asarray(x)
        if x.dtype.kind != "f":
            raise CalibrationError(
                f"Tensor {self.name!r}: observers take float tensors. Received dtype {x.dtype.name}."
            )
        if self.channel_axis is not None:
            self._update_channels(x)
        flat = x.reshape(-1)
        for start in range(0, flat.size, _CHUNK):
            self._update_values(flat[start:start + _CHUNK].astype(np.float64))

    def _update_values(self, a: np.ndarray) -> None:
        finite = np.isfinite(a)
        if not finite.all():
            self.nan_count += int(np.isnan(a).sum())
            self.posinf_count += int(np.isposinf(a).sum())
            self.neginf_count += int(np.isneginf(a).sum())
            a = a[finite]
        if a.size == 0:
            return
        self.count += a.size
        self.zero_count += a.size - int(np.count_nonzero(a))
        lo, hi = float(a.min()), float(a.max())
        self.min, self.max = min(self.min, lo), max(self.max, hi)
        self._grow(max(-lo, hi))
        if self.bin_width == 0.0:  # every value so far is 0
            self.hist_pos[0] += a.size
            return
        # Exact: 1/w is a power of two. The value equal to R goes in the last bin.
        idx = np.minimum((np.abs(a) * (1.0 / self.bin_width)).astype(np.int64), self.bins - 1)
        idx += self.bins * (a < 0)
        counts = np.bincount(idx, minlength=2 * self.bins)
        self.hist_pos += counts[: self.bins]
        self.hist_neg += counts[self.bins:]

    def _grow(self, absmax: float) -> None:
        """Widen the histogram (by a power of two) until it covers ``absmax``."""
        if absmax == 0.0 or absmax <= self.hist_range:
            return
        if self.bin_width == 0.0:
            self.bin_width = pow2_ceil(absmax / self.bins)  # bin 0 keeps the zeros seen so far
            return
        factor = int(pow2_ceil(absmax / self.hist_range))
        self.bin_width *= factor
        for hist in (self.hist_pos, self.hist_neg):
            merged = hist.reshape(-1, min(factor, self.bins)).sum(axis=1)
            hist[:] = 0
            hist[: merged.size] = merged

    def _update_channels(self, x: np.ndarray) -> None:
        axis = self.channel_axis
        if not -x.ndim <= axis < x.ndim:
            raise CalibrationError(
                f"Tensor {self.name!r}: per-channel statistics along axis {axis} need rank > {axis}. "
                f"Received shape {x.shape}."
            )
        per_channel = np.moveaxis(x, axis, 0).reshape(x.shape[axis], -1)
        finite = np.isfinite(per_channel)
        all_finite = finite.all()
        # initial=: a batch with no values leaves a channel at (inf, -inf), not an error
        lo = (per_channel if all_finite else np.where(finite, per_channel, np.inf)).min(1, initial=np.inf)
        hi = (per_channel if all_finite else np.where(finite, per_channel, -np.inf)).max(1, initial=-np.inf)
        if self.channel_min is None:
            self.channel_min, self.channel_max = lo.astype(np.float64), hi.astype(np.float64)
            return
        if lo.size != self.channel_min.size:
            raise CalibrationError(
                f"Tensor {self.name!r}: expected {self.channel_min.size} channels along axis {axis} "
                f"as in earlier batches. Received shape {x.shape}."
            )
        np.minimum(self.channel_min, lo, out=self.channel_min)
        np.maximum(self.channel_max, hi, out=self.channel_max)

    def __repr__(self) -> str:
        extra = f", {self.nonfinite_count} non-finite" if self.nonfinite_count else ""
        rng = f"[{self.min:.6g}, {self.max:.6g}]" if self.count else "[]"
        return f"<TensorObserver {self.name!r}: {self.count} values in {rng}{extra}>"


@checks_call(CalibrationError)
def observe(
    model,
    calib_feeds: Mapping[str, np.ndarray] | Iterable[Mapping[str, np.ndarray]],
    tensors: Iterable[str] | None = None,
    progress: bool = True,
    *,
    batch_size: int | None = None,
    bins: int = DEFAULT_BINS,
    channel_axis: int | None = None,
) -> dict[str, TensorObserver]:
    """Run ``model`` (CPU float) over a calibration set and observe its float tensors.

    ``calib_feeds``: a dict {input name: array} whose first axis is the sample axis, cut into
    batches of ``batch_size`` (default: the model's fixed batch dimension if it declares one,
    else 32); or any iterable of feed dicts, one per batch (a generator is consumed lazily).
    ``tensors``: names to observe (default: every float tensor of the recording, inputs
    included). ``channel_axis``: also track per-channel min/max along it, for tensors of
    higher rank. Returns {tensor name: TensorObserver} in execution order.

    Raises ``CalibrationError`` for an empty set, NaN/Inf in the calibration inputs, feeds that
    do not fit the model (naming the batch), unknown ``tensors``, and arguments of the wrong type
    or range (checked first).
    """
    check_model("observe", model)
    progress = check_bool("progress", progress)
    batch_size = check_batch_size(batch_size)
    TensorObserver(bins=bins)  # checks bins
    channel_axis = check_int("channel_axis", channel_axis, none=True)
    wanted = None if tensors is None else _tensor_names(tensors)
    batches, total = _batches(model, calib_feeds, batch_size)
    observers: dict[str, TensorObserver] = {}
    from tqdm.auto import tqdm  # here, not at import: tqdm.auto looks for IPython/ipywidgets

    n = 0
    for n, feeds in enumerate(tqdm(batches, total=total, desc="calibrating", unit="batch",
                                   disable=not progress), start=1):
        recording = _run_batch(model, feeds, n - 1)
        if not observers:
            observers = _make_observers(recording, wanted, bins, channel_axis)
        for name, observer in observers.items():
            observer.update(recording[name])
    if n == 0:
        raise CalibrationError(
            "The calibration set has no batches: expected at least one feed dict (or one sample "
            f"per input) for inputs {list(model.inputs)}."
        )
    return observers


def _tensor_names(tensors) -> list[str]:
    if isinstance(tensors, str | bytes) or not isinstance(tensors, Iterable):
        raise CalibrationError(f"tensors must be a list of tensor names (or None for all). Received "
                               f"{received(tensors)}.")
    names = list(tensors)
    bad = [t for t in names if not isinstance(t, str)]
    if bad:
        raise CalibrationError(f"tensors must be a list of tensor names. Received {received(bad[0])} in it.")
    return names


def _run_batch(model, feeds, index: int):
    """``model.run`` on one batch, after checking it; feed problems name the batch."""
    try:
        arrays = model.check_feeds(feeds)
        _check_finite(arrays, f"batch {index}")
        return model.run(arrays, record=True)
    except (FeedError, ShapeError) as err:
        raise CalibrationError(f"Calibration batch {index}: {err}") from err


def _make_observers(recording, wanted, bins, channel_axis) -> dict[str, TensorObserver]:
    floats = [name for name, value in recording.items() if np.asarray(value).dtype.kind == "f"]
    if wanted is not None:
        unknown = [name for name in wanted if name not in floats]
        if unknown:
            raise CalibrationError(
                f"Cannot observe {unknown}: not float tensors of this model. "
                f"Float tensors: {_preview(floats)}."
            )
        floats = [name for name in floats if name in set(wanted)]
    def axis_of(name):  # per-channel statistics only where the tensor has that axis
        ndim = recording[name].ndim
        return channel_axis if channel_axis is not None and -ndim <= channel_axis < ndim else None

    return {name: TensorObserver(name, bins=bins, channel_axis=axis_of(name)) for name in floats}


def _check_finite(arrays: Mapping[str, np.ndarray], where: str, per_sample: bool = False) -> None:
    for name, value in arrays.items():
        if value.dtype.kind != "f":
            continue
        nan = int(np.isnan(value).sum())
        inf = int(np.isinf(value).sum())
        if nan or inf:
            if per_sample:  # the first axis is the sample axis: say which samples to drop
                bad = np.flatnonzero(~np.isfinite(value.reshape(len(value), -1)).all(axis=1))
                where += f", samples {_preview(bad.tolist(), 8)}"
            raise CalibrationError(
                f"Calibration input {name!r} ({where}) has {nan} NaN and {inf} Inf values out of "
                f"{value.size}; expected finite values. Clean or drop those samples."
            )


def _batches(model, calib_feeds, batch_size: int | None) -> tuple[Iterator, int | None]:
    """The batches of feed dicts to run, and their number when known."""
    if isinstance(calib_feeds, np.ndarray):
        raise CalibrationError(
            f"Calibration feeds must be a dict {{input name: array}} or an iterable of such dicts "
            f"for inputs {list(model.inputs)}. Received a bare array of shape {calib_feeds.shape}."
        )
    if isinstance(calib_feeds, Mapping):
        return _split(model, calib_feeds, batch_size)
    if batch_size is not None:
        raise CalibrationError(
            "batch_size applies to a dict of arrays; an iterable of feeds is already in batches."
        )
    try:
        batches = iter(calib_feeds)
    except TypeError:
        raise CalibrationError(
            "Calibration feeds must be a dict {input name: array} or an iterable of such dicts. "
            f"Received {type(calib_feeds).__name__}."
        ) from None
    total = len(calib_feeds) if hasattr(calib_feeds, "__len__") else None
    return batches, total


def _split(model, arrays: Mapping[str, np.ndarray], batch_size: int | None) -> tuple[Iterator, int]:
    """Cut a dict of arrays into batches along the first (sample) axis."""
    arrays = {name: np.asarray(value) for name, value in arrays.items()}
    if any(value.ndim == 0 for value in arrays.values()):
        raise CalibrationError(
            "Calibration arrays need a first (sample) axis. Received shapes "
            f"{ {name: value.shape for name, value in arrays.items()} }."
        )
    lengths = {name: value.shape[0] for name, value in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise CalibrationError(
            f"Calibration arrays must have the same number of samples (first axis). Received {lengths}."
        )
    _check_finite(arrays, "calibration data", per_sample=True)
    samples = next(iter(lengths.values()), 0)
    fixed = _fixed_batch(model)
    size = batch_size if batch_size is not None else fixed or DEFAULT_BATCH_SIZE
    if size < 1:
        raise CalibrationError(f"batch_size must be >= 1. Received {batch_size!r}.")
    if size == fixed and samples % size:
        warnings.warn(
            f"The model fixes the batch dimension to {size}: the last {samples % size} of "
            f"{samples} calibration samples are not used.", stacklevel=4,
        )
        samples -= samples % size
    starts = range(0, samples, size)
    batches = ({name: value[s:s + size] for name, value in arrays.items()} for s in starts)
    return batches, len(starts)


def _fixed_batch(model) -> int | None:
    """The batch size every input of ``model`` declares, if they all declare the same one."""
    firsts = {shape[0] if shape else None for shape in model.inputs.values()}
    first = next(iter(firsts)) if len(firsts) == 1 else None
    return first if isinstance(first, int) else None

