"""``lwnn.approx``: a measured number shown as the claim it satisfies, the same on every machine."""

from __future__ import annotations

import math

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
