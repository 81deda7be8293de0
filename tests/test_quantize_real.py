"""The rapidocr text detector quantized in each scheme runs end to end on a real page: mostly on
the integer runtime, without int32 overflows, every layer's error finite, its output SQNR above a
floor per scheme, and the integer device's text mask agreeing with float."""

from __future__ import annotations

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


# Output SQNR floors, about 2 dB under what each scheme reaches on this page (s8 14.3, q8 9.5,
# q16 14.0 dB; the BLAS kernel moves them by < 0.1 dB): a scheme that gets worse fails here.
FLOORS = {"s8": 12.0, "q8": 7.5, "q16": 12.0}


@pytest.mark.parametrize("scheme, options", [("s8", {}), ("q8", {}), ("q16", {"q16_headroom": "lwnn"})])
def test_detector_quantized_end_to_end(detector, scheme, options):
    model, feeds, ref = detector
    q = lwnn.quantize(model, feeds, scheme, "minmax", progress=False, **options)
    rec = q.run(feeds, record=True)
    assert not q.overflow, f"{scheme}: int32 overflows {q.overflow}"
    runtimes = [rec.executed_by[layer.name] for layer in model.layers if layer.name in rec.executed_by]
    assert runtimes.count(f"cpu/{scheme}") >= 0.9 * len(runtimes)
    assert set(runtimes) <= {f"cpu/{scheme}", "cpu/float", "folded"}
    per_layer = {layer.name: sqnr_db(ref[o], rec[o]) for layer in model.layers for o in layer.outputs[:1]
                 if o in rec and ref[o].dtype.kind == "f" and np.abs(ref[o]).max() > 0}
    assert len(per_layer) > 100 and not any(np.isnan(v) for v in per_layer.values())
    (out,) = model.outputs
    output_db = sqnr_db(ref[out], rec[out])
    assert output_db >= FLOORS[scheme], f"{scheme}: output SQNR {output_db:.1f} dB"
    agreement = float(((ref[out] > 0.3) == (rec[out] > 0.3)).mean())
    assert agreement >= 0.97, f"{scheme}: text mask agrees on {agreement:.2%} of pixels"
