"""Weight range choice by percentile/KL/MSE, per output channel (s8) or per tensor Q (q8/q16),
on crafted Laplacian weights with outliers. Expectations come from NumPy directly on the weights:
quantiles, and the quantization error of a brute-force threshold search."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import lwnn
from lwnn.quant.observers import TensorObserver

SCALES = (0.02, 0.05, 0.1, 0.3)
OUTLIER_CHANNELS = (0, 2)


def crafted_weights() -> np.ndarray:
    """4 output channels of Laplacian 3x3 weights (1,800 each); channels 0 and 2 get four
    outliers 20x their scale, the others none."""
    rng = np.random.default_rng(11)
    w = np.stack([rng.laplace(0, s, (200, 3, 3)) for s in SCALES]).astype(np.float32)
    for c in OUTLIER_CHANNELS:
        w[c, :4, 0, 0] = np.float32(20 * SCALES[c]) * np.array([1, -1, 0.9, -0.8], np.float32)
    return w


def conv_model(w: np.ndarray):
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], name="conv", pads=[1, 1, 1, 1])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 200, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4, 6, 6])],
        [numpy_helper.from_array(w, "w")],
    )
    return lwnn.load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))


def quantization_mse(w: np.ndarray, threshold: float, levels: int = 127) -> float:
    step = threshold / levels
    q = np.clip(np.round(w / step), -levels, levels) * step
    return float(np.mean((w.astype(np.float64) - q) ** 2))


@pytest.fixture(scope="module")
def setup():
    w = crafted_weights()
    model = conv_model(w)
    x = {"x": np.random.default_rng(1).standard_normal((8, 200, 6, 6)).astype(np.float32)}
    return w, model, x


def thresholds(q) -> np.ndarray:
    return q.tensor_params("w").scale.astype(np.float64) * 127


def test_minmax_weights_keep_every_channel_range(setup):
    w, model, x = setup
    q = lwnn.quantize(model, x, "s8", progress=False)
    np.testing.assert_allclose(thresholds(q), np.abs(w).reshape(4, -1).max(axis=1), rtol=1e-6)


def test_percentile_weights_per_channel(setup):
    w, model, x = setup
    q = lwnn.quantize(model, x, "s8", weight_method="percentile", percentile=99.0, progress=False)
    channels = np.abs(w.reshape(4, -1).astype(np.float64))
    expected = np.quantile(channels, 0.99, axis=1)
    # Read off each channel's histogram of |w|: within one bin of the exact quantile, as
    # test_calibration holds the same estimator on activations.
    widths = np.array([TensorObserver.of(c).bin_width for c in channels])
    assert np.all(np.abs(thresholds(q) - expected) <= widths), (thresholds(q), expected, widths)
    assert np.all(thresholds(q) < np.abs(w).reshape(4, -1).max(axis=1))


def test_mse_weights_minimise_the_quantization_error_per_channel(setup):
    """The MSE threshold of every channel is within 10% of a brute-force search's error on the
    weights themselves. (At 8 bits a lone outlier costs more clipped than rounded, so the optimum
    sits just below max|w|: MSE does not clip these outliers, and must not.)"""
    w, model, x = setup
    t = thresholds(lwnn.quantize(model, x, "s8", weight_method="mse", progress=False))
    for c, row in enumerate(w.reshape(4, -1).astype(np.float64)):
        absmax = np.abs(row).max()
        best = min(quantization_mse(row, g) for g in np.linspace(absmax / 200, absmax, 400))
        assert quantization_mse(row, t[c]) <= 1.1 * best, c


def test_kl_weights_clip_outlier_channels(setup):
    """KL matches the distribution's shape, not its squared error: it clips the four outliers
    of channels 0 and 2 (and keeps every threshold inside (0, max|w|])."""
    w, model, x = setup
    q = lwnn.quantize(model, x, "s8", weight_method="kl", progress=False)
    t = thresholds(q)
    absmax = np.abs(w).reshape(4, -1).max(axis=1)
    assert np.all((t > 0) & (t <= absmax * (1 + 1e-6)))
    assert all(t[c] < 0.6 * absmax[c] for c in OUTLIER_CHANNELS), (t, absmax)
    # The weights the device holds are the clipped codes, and the layer still tracks float.
    assert np.abs(q.raw("w").astype(np.int64)).max() == 127
    y, ref = q.run({"x": x["x"][:1]})["y"], model.run({"x": x["x"][:1]})["y"]
    assert np.corrcoef(y.ravel(), ref.ravel())[0, 1] > 0.95


@pytest.mark.parametrize("scheme", ["q8", "q16"])
def test_qformat_weights_search_integer_q(setup, scheme):
    w, model, x = setup
    minmax = lwnn.quantize(model, x, scheme, progress=False).tensor_params("w").frac_bits
    mse = lwnn.quantize(model, x, scheme, weight_method="mse", progress=False).tensor_params("w").frac_bits
    bits = 16 if scheme == "q16" else 8
    assert minmax == (bits - 1) - int(np.ceil(np.log2(np.abs(w).max())))
    assert mse >= minmax  # clipping the outliers buys finer steps, never coarser ones
    assert mse in range(minmax - 1, minmax + 4)  # the search range of choose_frac_bits


def test_unknown_weight_method(setup):
    _, model, x = setup
    with pytest.raises(lwnn.CalibrationError, match=r"Unknown weight_method 'max'. Expected one of"):
        lwnn.quantize(model, x, "s8", weight_method="max", progress=False)
