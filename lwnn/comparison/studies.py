"""Model-level studies behind the "metric against X" pictures: quantize a model several ways and
measure one number on held-out data for each (``Study``, drawn by ``lwnn.viz``)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from lwnn.comparison import metrics
from lwnn.errors import CalibrationError, LwnnError
from lwnn.numerics.params import SCHEMES, scheme_of
from lwnn.quant.options import (
    METHOD_OPTIONS,
    check_choice,
    check_choices,
    check_counts,
    check_keywords,
    check_method_options,
    check_model,
    check_scheme,
    checks_call,
    options_for,
)
from lwnn.quant.quantize import QUANTIZE_KEYWORDS, check_arguments, quantize
from lwnn.quant.ranges import METHODS

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
    check_choice("metric", metric, tuple(MODEL_METRICS), what="model metric", error=LwnnError)


def _take(feeds: dict, n: int) -> dict:
    return {k: np.asarray(v)[:n] for k, v in feeds.items()}


# quantize's keywords a study passes on (it sets scheme, method and progress itself)
_PASSED_ON = tuple(k for k in QUANTIZE_KEYWORDS if k not in ("scheme", "method", "progress"))


class _Evaluator:
    """Quantize ``model`` one way and measure ``metric`` of its first output on ``eval_feeds``.

    Checks every argument first (``_check``): the study fails before any work, and each
    ``quantize`` call gets the range-choice options its method and scheme use."""

    def __init__(self, where, model, calib_feeds, eval_feeds, schemes, methods, metric, labels,
                 quantize_options):
        self.calls = _check(where, model, calib_feeds, schemes, methods, metric, labels, quantize_options)
        self.model, self.eval_feeds, self.metric, self.labels = model, eval_feeds, metric, labels
        self.output = model.graph.outputs[0]
        self.float_out = model.run(eval_feeds)[self.output]

    def __call__(self, calib_feeds, scheme: str, method: str) -> float:
        q = quantize(self.model, calib_feeds, scheme, method, progress=False, **self.calls[scheme, method])
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


def _check(where, model, calib_feeds, schemes, methods, metric, labels, quantize_options) -> dict:
    """{(scheme, method): the keywords its ``quantize`` call gets}, every argument checked."""
    check_model(where, model)
    if not isinstance(calib_feeds, Mapping):
        raise CalibrationError(f"{where}: calib_feeds must be a dict {{input name: array}} (first axis = "
                               f"samples). Received {type(calib_feeds).__name__}.")
    methods = check_choices("methods", methods, METHODS, what="calibration method")
    check_choice("metric", metric, tuple(MODEL_METRICS), what="model metric", error=LwnnError)
    if metric == "top1_accuracy" and labels is None:
        raise LwnnError("top1_accuracy needs labels=.")
    check_keywords(where, quantize_options, [*_PASSED_ON, *METHOD_OPTIONS])
    passed = {k: v for k, v in quantize_options.items() if k in _PASSED_ON}
    options = {k: v for k, v in quantize_options.items() if k in METHOD_OPTIONS}
    first = check_arguments(model, schemes[0], methods[0], **passed, where=where)  # quantize's own keywords
    weight_method = first["weight_method"]
    forced = list(dict.fromkeys(m for m in (passed.get("layers") or {}).values() if m != "float"))
    check_method_options(where, options, methods=[*methods, weight_method], schemes=[*schemes, *forced],
                         other_keywords=_PASSED_ON)  # each option is used by some call
    calls = {}
    for s in schemes:
        families = {scheme_of(x).family for x in (s, *forced)}
        for m in methods:
            mine = options_for(options, methods=(m, weight_method), families=families)
            check_arguments(model, s, m, **passed, method_options=mine, where=where)
            calls[s, m] = {**passed, **mine}
    return calls


def _samples(calib_feeds: Mapping) -> int:
    lengths = {len(np.asarray(v)) if np.ndim(v) else 0 for v in calib_feeds.values()}
    return min(lengths, default=0)


@checks_call(CalibrationError)
def calibration_size_study(model, calib_feeds: dict, eval_feeds: dict, sizes: Sequence[int], *,
                           scheme: str = "s8", methods: Sequence[str] = ("minmax",), metric: str = "sqnr_db",
                           labels=None, **quantize_options) -> Study:
    """``metric`` of ``scheme`` quantizations calibrated on the first ``n`` samples of
    ``calib_feeds`` for each ``n`` in ``sizes``, per method, on ``eval_feeds`` (``labels``: of
    the eval samples, for ``top1_accuracy``). ``quantize_options`` go to ``lwnn.quantize`` (each
    call gets the range-choice options its method uses). Every argument is checked before any
    work: ``sizes`` must be integers in [1, number of calibration samples]."""
    where = "calibration_size_study"
    scheme = check_scheme(scheme)
    sizes = check_counts("sizes", sizes)
    available = _samples(calib_feeds) if isinstance(calib_feeds, Mapping) else None
    if available is not None and max(sizes) > available:
        raise CalibrationError(f"{where}: sizes must be at most the {available} calibration samples. "
                               f"Received {max(sizes)}.")
    run = _Evaluator(where, model, calib_feeds, eval_feeds, (scheme,), methods, metric, labels,
                     quantize_options)
    series = {m: [run(_take(calib_feeds, n), scheme, m) for n in sizes] for m in methods}
    return Study(list(sizes), series, "calibration samples", MODEL_METRICS[metric],
                 f"{model.name}: {scheme} against calibration-set size", run.reference)


@checks_call(CalibrationError)
def scheme_study(model, calib_feeds: dict, eval_feeds: dict, schemes: Sequence[str] = ("s8", "q8", "q16"), *,
                 methods: Sequence[str] = ("minmax",), metric: str = "sqnr_db", labels=None,
                 **quantize_options) -> Study:
    """``metric`` on ``eval_feeds`` of each scheme (x) and calibration method (series);
    ``quantize_options`` as ``calibration_size_study``'s."""
    schemes = check_choices("schemes", schemes, SCHEMES, what="scheme")
    run = _Evaluator("scheme_study", model, calib_feeds, eval_feeds, schemes, methods, metric, labels,
                     quantize_options)
    series = {m: [run(calib_feeds, s, m) for s in schemes] for m in methods}
    return Study(list(schemes), series, "scheme", MODEL_METRICS[metric],
                 f"{model.name}: {MODEL_METRICS[metric]} by scheme", run.reference)
