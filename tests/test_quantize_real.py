"""The rapidocr text detector quantized in each scheme runs end to end on a real page, with the
per-layer error reported; the integer device's text mask agrees with float."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import lwnn
from lwnn import zoo


@pytest.fixture(scope="module")
def detector():
    model = lwnn.load(zoo.rapidocr_model("det"))
    feeds = zoo.rapidocr_input("det")
    return model, feeds, model.run(feeds, record=True)


def sqnr_db(ref: np.ndarray, got: np.ndarray) -> float:
    noise = float(((ref.astype(np.float64) - got) ** 2).sum())
    signal = float((ref.astype(np.float64) ** 2).sum())
    return float("inf") if noise == 0 else 10 * np.log10(max(signal, 1e-30) / noise)


@pytest.mark.parametrize("scheme, options", [("s8", {}), ("q8", {}), ("q16", {"q16_headroom": "lwnn"})])
def test_detector_quantized_end_to_end(detector, scheme, options):
    model, feeds, ref = detector
    q = lwnn.quantize(model, feeds, scheme, "minmax", progress=False, **options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an overflow is reported in q.overflow and printed below
        rec = q.run(feeds, record=True)
    runtimes = [rec.executed_by[layer.name] for layer in model.layers if layer.name in rec.executed_by]
    assert runtimes.count(f"cpu/{scheme}") >= 0.9 * len(runtimes)
    assert set(runtimes) <= {f"cpu/{scheme}", "cpu/float", "folded"}
    per_layer = sorted(
        (sqnr_db(ref[o], rec[o]), layer.name, layer.op_type)
        for layer in model.layers for o in layer.outputs[:1]
        if o in rec and ref[o].dtype.kind == "f" and np.abs(ref[o]).max() > 0
    )
    worst = ", ".join(f"{n} ({t}) {s:.1f} dB" for s, n, t in per_layer[:3])
    print(f"\n{scheme}: worst layers by SQNR: {worst}; int32 overflows: {q.overflow or 'none'}")
    (out,) = model.outputs
    agreement = float(((ref[out] > 0.3) == (rec[out] > 0.3)).mean())
    assert agreement >= 0.95, f"{scheme}: text mask agrees on {agreement:.2%} of pixels"
