"""Widget builders and the plain functions behind them, driven without a browser: values are
changed programmatically and the recomputed numbers and pictures are checked."""

from __future__ import annotations

import numpy as np
import pytest

from lwnn.errors import CalibrationError, LwnnError
from lwnn.widgets import ExplorerWidget, explorer
from lwnn.widgets.calibration import (
    CalibrationExplorer,
    CalibrationExplorerWidget,
    calibration_explorer,
    slider_error,
)


@pytest.fixture(scope="module")
def fashion(bundled_model, bundled_samples):
    return bundled_model, bundled_samples[0]


def gaussian(n=50_000, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(n).astype(np.float32)


# --- the numbers ----------------------------------------------------------------------------


def test_slider_error_on_values_of_the_grid_is_exact():
    x = np.arange(256, dtype=np.float32) - 128  # [-128, 127]: scale 1, zero point 0
    e = slider_error(x, 128.0)
    assert (e.lo, e.hi, e.step, e.mse, e.clip_rate) == (-128.0, 127.0, 1.0, 0.0, 0.0)
    assert e.sqnr_db == np.inf
    with pytest.raises(CalibrationError, match="Received 0"):
        slider_error(x, 0)


def test_slider_error_counts_the_clipped_values():
    x = np.arange(256, dtype=np.float32)  # 0..255, one-signed: the range is [0, t]
    e = slider_error(x, 127.0)
    assert (e.lo, e.hi, e.threshold) == (0.0, 127.0, 127.0)
    assert e.clip_rate == 0.5  # 128..255 lie above 127
    # Clipping alone costs sum_{k=1}^{128} k^2 = 707264 over 256 values; rounding on a grid of
    # step 127/255 adds at most (step/2)^2 for each of the 128 values inside.
    clipped = 128 * 129 * 257 / 6
    assert clipped / 256 <= e.mse <= (clipped + 128 * (127 / 255 / 2) ** 2) / 256
    assert e.step == pytest.approx(127 / 255)


def test_state_lists_the_slider_and_every_method():
    x = gaussian()
    state = CalibrationExplorer({"x": x}).state("x", 2.0)
    lines = state.text().splitlines()
    assert lines[0] == f"x: threshold 2 (max |x| {np.abs(x).max():.4g})"
    assert [line.split()[0] for line in lines[2:]] == ["slider", "minmax", "percentile", "kl", "mse"]
    assert state.current.clip_rate == pytest.approx(np.mean(np.abs(x) > 2.0))
    # heavy clipping at 2 sigma: far worse than the MSE method's pick
    assert state.current.mse > 10 * state.sweep.picks["mse"].mse


def test_large_tensors_are_sampled_once_for_curve_picks_and_slider():
    x = gaussian()
    explorer = CalibrationExplorer({"x": x}, samples=1000)
    sampled = explorer.values("x")
    assert sampled.size == 1002 and (sampled.min(), sampled.max()) == (x.min(), x.max())
    state = explorer.state("x", float(np.abs(x).max()))
    # At the observed maximum the slider's range is minmax's, measured on the same values.
    minmax = state.sweep.picks["minmax"]
    assert (state.current.lo, state.current.hi, state.current.mse) == (minmax.lo, minmax.hi, minmax.mse)
    assert state.sweep.mse[-1] == state.current.mse  # the curve's last point is the same range


# --- the widget -----------------------------------------------------------------------------


def test_explorer_rejects_nothing_to_explore():
    with pytest.raises(CalibrationError, match="No float tensor"):
        CalibrationExplorer({"z": np.zeros(4, np.float32), "i": np.arange(3)})
    with pytest.raises(CalibrationError, match="No tensor 'nope'"):
        CalibrationExplorer({"x": gaussian(100)}).state("nope", 1.0)


def test_moving_the_slider_updates_readout_and_plot():
    x = gaussian()
    view = CalibrationExplorerWidget(CalibrationExplorer({"x": x, "relu": np.maximum(x, 0) * 3}), "x")
    absmax = float(np.abs(x).max())
    assert view.threshold.value == pytest.approx(absmax) and view.threshold.max == pytest.approx(absmax)
    assert view.state.current.clip_rate == 0.0
    text, png = view.readout.value, bytes(view.plot.value)
    assert png.startswith(b"\x89PNG")

    view.threshold.value = 1.0
    assert view.state.current.threshold == 1.0
    assert (view.state.current.lo, view.state.current.hi) == (-1.0, 1.0)
    assert view.state.current.clip_rate == pytest.approx(np.mean(np.abs(x) > 1.0))
    assert view.readout.value != text and view.readout.value.startswith("<pre>x: threshold 1 ")
    assert bytes(view.plot.value) != png


def test_changing_the_tensor_resets_the_slider_to_its_range():
    x = gaussian()
    view = CalibrationExplorerWidget(CalibrationExplorer({"x": x, "relu": np.maximum(x, 0) * 3}), "x")
    png = bytes(view.plot.value)
    view.tensor.value = "relu"
    absmax = 3 * float(x.max())
    assert view.threshold.max == pytest.approx(absmax) and view.threshold.value == pytest.approx(absmax)
    assert view.state.tensor == "relu" and view.state.current.lo == 0.0
    assert view.readout.value.startswith("<pre>relu:")
    assert bytes(view.plot.value) != png


def test_calibration_explorer_on_the_bundled_model(fashion):
    model, images = fashion
    view = calibration_explorer(model, {"image": images}, max_samples=16)
    outputs = [n for layer in model.layers for n in layer.outputs]
    assert view.tensor.options[0] == outputs[0] and set(view.tensor.options) <= set(outputs)
    assert view.state.tensor == outputs[0]
    chosen = "/conv2/bn/BatchNormalization_output_0"
    view.tensor.value = chosen
    rec = model.run({"image": images[:16]}, record=True)
    assert view.threshold.max == pytest.approx(float(np.abs(rec[chosen]).max()))
    assert view.state.sweep.picks["minmax"].clip_rate == 0.0


# --- the per-layer explorer -----------------------------------------------------------------


@pytest.fixture(scope="module")
def fashion_explorer(fashion):
    """Built once: its quantizations and comparisons are cached across the tests."""
    model, images = fashion
    return explorer(model, {"image": images[64:80]}, {"image": images[:64]}, schemes=("s8", "q8"),
                    methods=("minmax", "mse")).explorer


@pytest.fixture
def layer_view(fashion_explorer):
    """A fresh widget on the shared explorer."""
    return ExplorerWidget(fashion_explorer)


def _sqnr_by_hand(x, y):
    x, y = np.asarray(x, np.float64).ravel(), np.asarray(y, np.float64).ravel()
    return 10 * np.log10(np.sum(x**2) / np.sum((x - y) ** 2))


def test_explorer_starts_on_the_first_compared_layer(layer_view, fashion):
    model, _ = fashion
    state = layer_view.state
    assert (state.model, state.scheme, state.method) == (model.name, "s8", "minmax")
    assert state.layer == layer_view.layer.value == layer_view.layer.options[0]
    assert "/conv1/conv/Conv" not in layer_view.layer.options  # folded into its BatchNorm: no metrics
    assert list(state.rows) == ["cumulative", "isolated"]
    assert layer_view.metrics.value.startswith(f"<pre>{model.name} s8/minmax  {state.layer} (")


def test_explorer_layer_and_channel_update_metrics_and_plot(layer_view):
    layer_view.layer.value = "/pw3/relu/Relu"
    text, png = layer_view.metrics.value, bytes(layer_view.plot.value)
    assert "/pw3/relu/Relu (Relu, all channels)" in text
    channels = layer_view.state.channels
    assert channels == 64 and len(layer_view.channel.options) == channels + 1

    layer_view.channel.value = 5
    state = layer_view.state
    assert "channel 5 of 64" in layer_view.metrics.value and bytes(layer_view.plot.value) != png
    # The shown channel SQNR is the channel's own, computed here from the recorded tensors.
    x, y = state.comparison.tensors(state.layer, mode="cumulative")
    assert state.metrics["cumulative"]["sqnr_db"] == pytest.approx(_sqnr_by_hand(x[:, 5], y[:, 5]))
    assert state.metrics["cumulative"]["sqnr_db"] != pytest.approx(_sqnr_by_hand(x, y))
    assert f"{state.metrics['isolated']['sqnr_db']:.4g}" in layer_view.metrics.value.split("SQNR dB")[1]

    layer_view.layer.value = "/fc/Gemm"  # 10 features: channel 5 still exists and stays chosen
    assert layer_view.state.channel == 5 and layer_view.state.channels == 10
    layer_view.layer.value = "/conv1/relu/Relu"
    assert layer_view.channel.value == 5 and layer_view.state.layer == "/conv1/relu/Relu"


def test_explorer_scheme_and_method_requantize_and_keep_the_layer(layer_view):
    layer_view.layer.value = "/dw3/relu/Relu"
    layer_view.channel.value = -1
    s8 = layer_view.state
    layer_view.scheme.value = "q8"
    q8 = layer_view.state
    assert (q8.scheme, q8.layer) == ("q8", "/dw3/relu/Relu")
    assert q8.metrics["cumulative"]["sqnr_db"] != s8.metrics["cumulative"]["sqnr_db"]
    assert "q8/minmax" in layer_view.metrics.value and q8.rows["cumulative"].runtime == "cpu/q8"
    layer_view.method.value = "mse"
    assert layer_view.state.method == "mse" and "q8/mse" in layer_view.metrics.value
    x, y = layer_view.state.comparison.tensors("/dw3/relu/Relu", mode="cumulative")
    assert layer_view.state.metrics["cumulative"]["sqnr_db"] == pytest.approx(_sqnr_by_hand(x, y))
    layer_view.scheme.value, layer_view.method.value = "s8", "minmax"
    assert layer_view.state.metrics == s8.metrics  # cached, same numbers


def test_explorer_of_several_models_needs_their_feeds(fashion):
    model, images = fashion
    feeds = {"image": images[:8]}
    with pytest.raises(LwnnError, match=r"no feeds for models \['b'\]"):
        explorer({"a": model, "b": model}, {"a": feeds})
    view = explorer({"a": model, "b": model}, {"a": feeds, "b": {"image": images[8:16]}}, schemes=("s8",),
                    methods=("minmax",))
    assert view.model.options == ("a", "b")
    before = view.state.metrics
    view.model.value = "b"
    assert view.state.model == "b" and view.state.metrics != before


def test_explorer_gives_a_method_option_to_that_method_only(fashion):
    """``percentile=`` applies to the percentile method; minmax runs without it, as quantize requires."""
    from lwnn.widgets.layer_explorer import Explorer, Workload

    model, images = fashion
    wl = Workload(model, {"image": images[64:72]}, {"image": images[:32]})
    ex = Explorer({"m": wl}, ("s8",), ("minmax", "percentile"), percentile=99.0)
    q_minmax, _ = ex.quantized("m", "s8", "minmax")
    q_pct, _ = ex.quantized("m", "s8", "percentile")
    assert q_minmax.config["method_options"] == {}
    assert q_pct.config["method_options"] == {"percentile": 99.0}
