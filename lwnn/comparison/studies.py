"""Model-level studies behind the "metric against X" pictures: quantize a model several ways and
measure one number on held-out data for each (``Study``, drawn by ``lwnn.viz``)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from lwnn.comparison import metrics
from lwnn.errors import LwnnError
from lwnn.quant.quantize import quantize

MODEL_METRICS = {"sqnr_db": "output SQNR (dB)", "top1_agreement": "top-1 agreement with float",
                 "top1_accuracy": "top-1 accuracy"}


@dataclass(frozen=True)
class Study:
    """One model-level number per (series, x): ``series`` maps a label (e.g. a calibration method)
    to one value per entry of ``x`` (calibration-set sizes, or schemes)."""

    x: list
    series: dict[str, list[float]] = field(default_factory=dict)
    xlabel: str = ""
    ylabel: str = ""
    title: str = ""
    reference: float | None = None  # the float model's value, when the metric has one


def model_metric(float_out: np.ndarray, quant_out: np.ndarray, metric: str = "sqnr_db", labels=None) -> float:
    """One number for a quantized model's output against float: ``sqnr_db``, ``top1_agreement``,
    or ``top1_accuracy`` (needs ``labels``)."""
    if metric == "sqnr_db":
        return metrics.sqnr_db(float_out, quant_out)
    if metric == "top1_agreement":
        return metrics.top1_agreement(float_out, quant_out)
    if metric == "top1_accuracy":
        if labels is None:
            raise LwnnError("top1_accuracy needs labels=.")
        return metrics.top1_accuracy(quant_out, labels)
    raise LwnnError(f"Unknown model metric {metric!r}. Expected one of {list(MODEL_METRICS)}.")


def _take(feeds: dict, n: int) -> dict:
    return {k: np.asarray(v)[:n] for k, v in feeds.items()}


class _Evaluator:
    """Quantize ``model`` one way and measure ``metric`` of its first output on ``eval_feeds``."""

    def __init__(self, model, eval_feeds, metric, labels, quantize_options):
        self.model, self.eval_feeds, self.metric, self.labels = model, eval_feeds, metric, labels
        self.options = quantize_options
        self.output = model.graph.outputs[0]
        self.float_out = model.run(eval_feeds)[self.output]
        model_metric(self.float_out, self.float_out, metric, labels)  # bad metric names fail early

    def __call__(self, calib_feeds, scheme: str, method: str) -> float:
        q = quantize(self.model, calib_feeds, scheme, method, progress=False, **self.options)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # overflow warnings: q.overflow counts them; not the point here
            out = q.run(self.eval_feeds)[self.output]
        return model_metric(self.float_out, out, self.metric, self.labels)

    @property
    def reference(self) -> float | None:
        """The float model's own value, for metrics that have one (accuracy)."""
        if self.metric == "top1_accuracy":
            return metrics.top1_accuracy(self.float_out, self.labels)
        return None


def calibration_size_study(model, calib_feeds: dict, eval_feeds: dict, sizes: Sequence[int], *,
                           scheme: str = "s8", methods: Sequence[str] = ("minmax",), metric: str = "sqnr_db",
                           labels=None, **quantize_options) -> Study:
    """``metric`` of ``scheme`` quantizations calibrated on the first ``n`` samples of
    ``calib_feeds`` for each ``n`` in ``sizes``, per method, on ``eval_feeds`` (``labels``: of
    the eval samples, for ``top1_accuracy``)."""
    run = _Evaluator(model, eval_feeds, metric, labels, quantize_options)
    series = {m: [run(_take(calib_feeds, n), scheme, m) for n in sizes] for m in methods}
    return Study(list(sizes), series, "calibration samples", MODEL_METRICS[metric],
                 f"{model.name}: {scheme} against calibration-set size", run.reference)


def scheme_study(model, calib_feeds: dict, eval_feeds: dict, schemes: Sequence[str] = ("s8", "q8", "q16"), *,
                 methods: Sequence[str] = ("minmax",), metric: str = "sqnr_db", labels=None,
                 **quantize_options) -> Study:
    """``metric`` on ``eval_feeds`` of each scheme (x) and calibration method (series)."""
    run = _Evaluator(model, eval_feeds, metric, labels, quantize_options)
    series = {m: [run(calib_feeds, s, m) for s in schemes] for m in methods}
    return Study(list(schemes), series, "scheme", MODEL_METRICS[metric],
                 f"{model.name}: {MODEL_METRICS[metric]} by scheme", run.reference)
