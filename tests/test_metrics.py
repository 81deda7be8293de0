"""lwnn.comparison.metrics: every metric against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lwnn.comparison import grid
from lwnn.comparison import metrics as M
from lwnn.numerics.params import AffineParams, QFormat

X = np.array([3.0, 4.0])  # |X| = 5


def test_sqnr_db():
    assert M.sqnr_db(X, [3.0, 3.0]) == pytest.approx(20 * math.log10(5 / 1))  # 13.9794 dB
    assert M.sqnr_db([1.0, 0.0], [0.9, 0.0]) == pytest.approx(20.0)  # |x|/|e| = 1/0.1
    assert M.sqnr_db(X, X) == math.inf
    assert M.sqnr_db([0.0, 0.0], [0.0, 1.0]) == -math.inf


def test_cosine():
    assert M.cosine([1.0, 0.0], [1.0, 1.0]) == pytest.approx(1 / math.sqrt(2))
    assert M.cosine([1.0, 2.0], [-1.0, -2.0]) == pytest.approx(-1.0)
    assert M.cosine([0.0, 0.0], [0.0, 0.0]) == 1.0
    assert M.cosine([0.0, 0.0], [1.0, 0.0]) == 0.0


def test_mse_max_abs_rmse_lsb():
    x, y = [1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 6.0]
    assert M.mse(x, y) == pytest.approx(1.0)  # (0 + 0 + 0 + 4) / 4
    assert M.max_abs_error(x, y) == pytest.approx(2.0)
    assert M.rmse_lsb(x, y, 0.5) == pytest.approx(2.0)  # sqrt(1) / 0.5
    assert M.rmse_lsb([0.0, 0.0], [0.5, -0.5], 0.25) == pytest.approx(2.0)  # both errors are 2 LSB


def test_clip_rate():
    assert M.clip_rate([-2.0, -1.0, 0.0, 1.0, 2.0], -1.0, 1.0) == pytest.approx(0.4)  # -2 and 2
    assert M.clip_rate([0.5], -1.0, 1.0) == 0.0


def test_per_channel_metrics_pool_every_other_axis():
    # shape [2 samples, 2 channels, 2 values]; channel 0 has x = (3, 4, 0, 0), error (0, 1, 0, 0)
    x = np.zeros((2, 2, 2))
    y = np.zeros((2, 2, 2))
    x[0, 0] = [3, 4]
    y[0, 0] = [3, 3]
    x[1, 1] = [1, 2]
    y[1, 1] = [1, 2]
    np.testing.assert_allclose(M.channel_sqnr_db(x, y), [20 * math.log10(5), math.inf])
    np.testing.assert_allclose(M.channel_mse(x, y), [1 / 4, 0.0])
    np.testing.assert_allclose(M.channel_max_abs_error(x, y), [1.0, 0.0])
    np.testing.assert_allclose(M.channel_rmse_lsb(x, y, 0.5), [math.sqrt(1 / 4) / 0.5, 0.0])
    np.testing.assert_allclose(M.channel_cosine(x, y), [(9 + 12) / (5 * math.sqrt(18)), 1.0])
    np.testing.assert_allclose(M.channel_clip_rate(x, -1.0, 3.5), [1 / 4, 0.0])  # only the 4 clips


def test_tensor_and_channel_metrics_cover_every_metric():
    x, y = np.ones((1, 3, 2, 2)), np.full((1, 3, 2, 2), 0.9)
    whole = M.tensor_metrics(x, y, 0.1, -1.0, 1.0)
    per = M.channel_metrics(x, y, 0.1, -1.0, 1.0)
    assert list(whole) == list(M.METRICS) == list(per)
    assert whole["sqnr_db"] == pytest.approx(20.0) and whole["rmse_lsb"] == pytest.approx(1.0)
    assert all(v.shape == (3,) for v in per.values())


def test_grid_of_s8_and_q_formats():
    # s8 scale 0.5, zero point -128: codes -128..127 cover 0..127.5; half a step beyond is the edge
    step, lo, hi = grid(AffineParams(0.5, -128), 4)
    assert (step, lo, hi) == (0.5, -0.25, 127.75)
    # q8 Q=4: one LSB is 1/16, codes -128..127
    assert grid(QFormat(4, 8), 4) == (1 / 16, -128.5 / 16, 127.5 / 16)
    assert grid(QFormat(-2, 16), 2)[0] == 4.0  # negative Q: steps larger than 1
    step, lo, hi = grid(AffineParams(np.array([1.0, 2.0]), 0, axis=1), 4)  # per channel along axis 1
    assert step.shape == (1, 2, 1, 1) and float(hi[0, 1, 0, 0]) == pytest.approx(2 * 127.5)
    assert math.isnan(grid(None, 4)[0])


PROBS = np.array([[0.9, 0.1], [0.6, 0.4], [0.8, 0.2], [0.3, 0.7]])
LABELS = np.array([0, 1, 0, 1])  # correct, wrong, correct, correct


def test_top1_accuracy_and_agreement():
    assert M.top1_accuracy(PROBS, LABELS) == pytest.approx(0.75)
    quant = np.array([[0.9, 0.1], [0.4, 0.6], [0.8, 0.2], [0.6, 0.4]])  # 2 of 4 top classes change
    assert M.top1_agreement(PROBS, quant) == pytest.approx(0.5)


def test_reliability_bins_and_ece():
    # 2 bins: every confidence (0.9, 0.6, 0.8, 0.7) is in [0.5, 1]: mean 0.75, accuracy 3/4
    conf, acc, counts = M.reliability_bins(PROBS, LABELS, bins=2)
    assert np.isnan(conf[0]) and np.isnan(acc[0]) and counts.tolist() == [0, 4]
    assert conf[1] == pytest.approx(0.75) and acc[1] == pytest.approx(0.75)
    assert M.expected_calibration_error(PROBS, LABELS, bins=2) == pytest.approx(0.0)
    # 10 bins: one sample each in bins 6, 7, 8, 9; |acc - conf| = 0.6, 0.3, 0.2, 0.1
    conf, acc, counts = M.reliability_bins(PROBS, LABELS, bins=10)
    assert counts.tolist() == [0, 0, 0, 0, 0, 0, 1, 1, 1, 1]
    assert M.expected_calibration_error(PROBS, LABELS, bins=10) == pytest.approx((0.6 + 0.3 + 0.2 + 0.1) / 4)
    conf, acc, counts = M.reliability_bins([[1.0, 0.0]], [0], bins=10)  # confidence 1 is in the last bin
    assert counts[-1] == 1 and acc[-1] == 1.0
