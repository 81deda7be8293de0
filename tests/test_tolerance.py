"""``lwnn.approx``: a measured number shown as the claim it satisfies, the same on every machine."""

from __future__ import annotations

import math

import pandas as pd
import pytest

import lwnn


def test_renders_the_claim_not_the_measurement():
    a, b = lwnn.approx(10.83, 10.8, 0.5, "output SQNR"), lwnn.approx(10.34, 10.8, 0.5, "output SQNR")
    assert str(a) == str(b) == "10.8 ± 0.5"
    assert f"{a:.2f}" == "10.80 ± 0.50"
    assert repr(a) == "Approx(output SQNR: 10.8 ± 0.5)"
    assert a.measured == 10.83


@pytest.mark.parametrize("tol, shown", [(2, "12 ± 2"), (0.05, "12.00 ± 0.05"), (0.001, "12.000 ± 0.001"),
                                        (0.5, "12.0 ± 0.5")])
def test_decimals_follow_the_tolerance(tol, shown):
    assert str(lwnn.approx(12.0, 12.0, tol)) == shown


@pytest.mark.parametrize("measured", [11.31, 10.29, math.nan, math.inf])
def test_outside_the_claim_names_the_quantity_and_both_values(measured):
    with pytest.raises(lwnn.ClaimError, match=r"output SQNR: measured .*outside the claimed 10.8 ± 0.5"):
        lwnn.approx(measured, 10.8, 0.5, "output SQNR")


def test_the_bounds_are_inclusive():
    assert lwnn.approx(11.0, 10.5, 0.5).measured == 11.0


@pytest.mark.parametrize("expected, tol", [(1.0, -0.1), (1.0, math.nan), (math.inf, 1.0)])
def test_a_malformed_claim_is_rejected(expected, tol):
    with pytest.raises(ValueError, match="approx"):
        lwnn.approx(1.0, expected, tol)


def test_leaders_within_a_margin_in_their_given_order():
    scores = {"minmax": 0.968, "percentile": 0.931, "kl": 0.965, "mse": 0.936}
    assert lwnn.leaders(scores, within=0.01, tol=0.003) == ["minmax", "kl"]
    assert lwnn.leaders({"a": 2.0, "b": 1.0, "c": 9.0}, within=0.5, tol=0.1, higher_is_better=False) == ["b"]


def test_leaders_accepts_a_series():
    series = pd.Series({"s8": 0.30, "q8": 0.29, "q16": 0.20})
    assert lwnn.leaders(series, within=0.02, tol=0.002) == ["s8", "q8"]


def test_leaders_refuses_a_set_that_noise_could_change():
    scores = {"kl": 0.316, "percentile": 0.311, "mse": 0.311, "minmax": 0.307}
    with pytest.raises(lwnn.ClaimError, match=r"not decided .*'minmax': 0.009"):
        lwnn.leaders(scores, within=0.01, tol=0.002, what="s8 mIoU")


@pytest.mark.parametrize("scores, within, tol", [({"a": math.nan}, 0.1, 0.01), ({}, 0.1, 0.01),
                                                 ({"a": 1.0}, 0.1, 0.05), ({"a": 1.0}, 0.1, -1)])
def test_leaders_rejects_bad_input(scores, within, tol):
    with pytest.raises((lwnn.ClaimError, ValueError), match="leaders"):
        lwnn.leaders(scores, within, tol)
