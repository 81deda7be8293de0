"""What the famous models' notebooks compare, written once: one quantized model per scheme,
a runner fixed to a backend, and a task score per scheme and calibration method.

A *score* is any function of a runner (an object with ``run(feeds)``: a float ``Model``, a
``QuantizedModel``, or ``on_backend(...)`` of either), e.g. ``lambda r:
famous.detection_score(r, test, 1).map``.

    quantized = quantize_schemes(model, calib)             # {"s8": q, "q8": q, "q16": q}
    score(on_backend(quantized["s8"], "opencl"))
    method_scores(model, calib, score)                      # {scheme: {method: value}}
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from lwnn.numerics.params import SCHEMES
from lwnn.quant.quantize import quantize

# Full-range q16 overflows int32 accumulators on these models; LWNN's own quantizer kept 7 bits of
# headroom (q16_headroom="lwnn"), and so do the notebooks.
Q16_OPTIONS = {"q16_headroom": "lwnn"}


def scheme_options(scheme: str) -> dict:
    """The quantize options the famous models' notebooks use for ``scheme``."""
    return dict(Q16_OPTIONS) if scheme == "q16" else {}


def quantize_schemes(model, calib: dict, schemes: Sequence[str] = SCHEMES, method: str = "minmax",
                     **options) -> dict:
    """{scheme: ``lwnn.quantize(model, calib, scheme, method)``} (q16 with ``scheme_options``)."""
    return {s: quantize(model, calib, s, method, progress=False, **scheme_options(s), **options)
            for s in schemes}


@dataclass(frozen=True)
class OnBackend:
    """``runner`` with ``backend`` fixed: ``run(feeds)`` is ``runner.run(feeds, backend=backend)``."""

    runner: object
    backend: str

    def run(self, feeds: dict, record: bool = False):
        return self.runner.run(feeds, backend=self.backend, record=record)


def on_backend(runner, backend: str) -> OnBackend:
    """``runner`` (a Model or QuantizedModel) running on ``backend``, for scores that call
    ``run(feeds)``."""
    return OnBackend(runner, backend)


def method_scores(model, calib: dict, score: Callable, schemes: Sequence[str] = SCHEMES,
                  methods: Sequence[str] = ("percentile", "kl", "mse")) -> dict[str, dict[str, float]]:
    """``score`` of the model quantized by each scheme and calibration method:
    {scheme: {method: value}}."""
    return {s: {m: score(quantize(model, calib, s, m, progress=False, **scheme_options(s))) for m in methods}
            for s in schemes}
