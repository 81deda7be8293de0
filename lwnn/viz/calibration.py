"""Calibration pictures: error against clipping threshold, model metric against calibration-set
size and against scheme, and reliability diagrams of float versus quantized confidences."""

from __future__ import annotations

import numpy as np

from lwnn.comparison.metrics import expected_calibration_error, reliability_bins
from lwnn.errors import LwnnError
from lwnn.numerics.params import scheme_of
from lwnn.viz._base import METHOD_COLORS, new_axes, representable, result

_MARKERS = {"minmax": "o", "percentile": "s", "kl": "^", "mse": "D"}


def calibration_curve(sweep, *, values=None, params=None, ax=None):
    """Quantization MSE (log scale) against the clipping threshold of one tensor, from a
    ``lwnn.comparison.calibration_sweep``, with each calibration method's pick marked (and
    listed in the legend with its threshold, MSE and clip rate). ``values``: the tensor's values,
    drawn as a faint |x| histogram behind the curve on a second y axis. ``params``: the tensor's
    parameters in a quantized model (``q.tensor_params(name)``), whose range is drawn as a
    vertical line (it differs from every pick when the tensor inherits another tensor's range).
    Returns the Figure (or ``ax``)."""
    fig, ax, owned = new_axes(ax, (7, 4))
    if values is not None:
        back = ax.twinx()
        a = np.abs(np.asarray(values, np.float64).reshape(-1))
        back.hist(a[np.isfinite(a)], bins=120, range=(0, sweep.absmax), color="0.85", log=True)
        back.set_ylabel("count of |x| (log)", color="0.5")
        back.tick_params(axis="y", colors="0.5")
        ax.set_zorder(back.get_zorder() + 1)
        ax.patch.set_visible(False)
    affine = scheme_of(sweep.scheme).affine
    style = "-" if affine else "-o"
    ax.plot(sweep.thresholds, sweep.mse, style, color="0.2", lw=1.5, ms=4,
            label="error at threshold" if affine else "error per Q format")
    for method, pick in sweep.picks.items():
        ax.plot([pick.threshold], [pick.mse], ls="none", marker=_MARKERS.get(method, "v"), ms=9,
                color=METHOD_COLORS.get(method, "tab:purple"), mec="k",
                label=f"{method}: t={pick.threshold:.4g}, MSE {pick.mse:.3g}, clip {pick.clip_rate:.2%}")
    ax.axvline(sweep.absmax, color="0.5", lw=0.8, ls=":", label=f"max |x| = {sweep.absmax:.4g}")
    if params is not None:
        lo, hi, _, _ = representable(params)
        used = max(-lo, hi)
        ax.axvline(used, color="tab:purple", lw=1.2, ls="--", label=f"range in the model: t={used:.4g}")
    ax.set_yscale("log")
    if not affine:
        ax.set_xscale("log", base=2)
    ax.set_xlabel("clipping threshold t (|x| kept within t)")
    ax.set_ylabel("quantization MSE (log)")
    ax.set_title(f"{sweep.tensor + ': ' if sweep.tensor else ''}{sweep.scheme} error vs clipping threshold")
    ax.legend(fontsize=7)
    return result(fig, ax, owned)


def metric_vs_calibration_size(study, *, ax=None):
    """One line per series (e.g. calibration method) of a model metric against calibration-set
    size (log x axis), from ``lwnn.comparison.calibration_size_study``. Returns the Figure (or ``ax``)."""
    fig, ax, owned = new_axes(ax, (6, 4))
    for label, values in study.series.items():
        ax.plot(study.x, values, marker=_MARKERS.get(label, "o"), color=METHOD_COLORS.get(label), label=label)
    if study.reference is not None:
        ax.axhline(study.reference, color="k", ls="--", lw=0.8, label="float")
    ax.set_xscale("log")
    ax.set_xticks(study.x, [str(v) for v in study.x])
    ax.set_xlabel(study.xlabel or "calibration samples")
    ax.set_ylabel(study.ylabel)
    ax.set_title(study.title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return result(fig, ax, owned)


def metric_vs_scheme(study, *, ax=None):
    """Grouped bars of a model metric by scheme (x) and series (e.g. method), values written on
    the bars, from ``lwnn.comparison.scheme_study``. Returns the Figure (or ``ax``)."""
    fig, ax, owned = new_axes(ax, (max(5, 1.6 * len(study.x) * max(1, len(study.series)) ** 0.5), 4))
    n = max(1, len(study.series))
    width = 0.8 / n
    pos = np.arange(len(study.x))
    for i, (label, values) in enumerate(study.series.items()):
        shown = np.where(np.isfinite(values), values, np.nan)
        bars = ax.bar(pos + (i - (n - 1) / 2) * width, shown, width, label=label,
                      color=METHOD_COLORS.get(label))
        ax.bar_label(bars, fmt="%.3g", fontsize=7)
    if study.reference is not None:
        ax.axhline(study.reference, color="k", ls="--", lw=0.8, label="float")
    ax.set_xticks(pos, [str(v) for v in study.x])
    ax.set_xlabel(study.xlabel or "scheme")
    ax.set_ylabel(study.ylabel)
    ax.set_title(study.title)
    top = ax.get_ylim()[1]
    ax.set_ylim(top=top + 0.08 * abs(top))  # room for the value labels
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=n + 1, frameon=False)
    return result(fig, ax, owned)


def reliability_diagram(float_probs, quant_probs, labels, *, bins: int = 10, ax=None):
    """Accuracy against confidence (top-class probability) in ``bins`` bins, for the float model
    and each quantized one (``quant_probs``: an array, or {label: array}); the diagonal is perfect
    calibration; the legend gives each model's expected calibration error. Returns the Figure (or
    ``ax``)."""
    labels = np.asarray(labels)
    series = {"float": float_probs}
    series.update(quant_probs if isinstance(quant_probs, dict) else {"quantized": quant_probs})
    for name, probs in series.items():
        if np.shape(probs)[:1] != labels.shape[:1] or np.ndim(probs) != 2:
            raise LwnnError(f"reliability_diagram: {name} probabilities must be [samples, classes] with "
                            f"{labels.shape[0]} samples. Received shape {np.shape(probs)}.")
    fig, ax, owned = new_axes(ax, (4.8, 4.8))
    ax.plot([0, 1], [0, 1], color="0.5", ls=":", lw=1, label="perfectly calibrated")
    for i, (name, probs) in enumerate(series.items()):
        conf, acc, counts = reliability_bins(probs, labels, bins)
        used = counts > 0
        ece = expected_calibration_error(probs, labels, bins)
        ax.plot(conf[used], acc[used], marker="os^Dv"[i % 5], ls="-" if i == 0 else "--",
                color="k" if i == 0 else None, label=f"{name} (ECE {ece:.3f})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("confidence (top-class probability, bin mean)")
    ax.set_ylabel("accuracy in bin")
    ax.set_title(f"reliability diagram ({len(labels)} samples, {bins} bins)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    return result(fig, ax, owned)
