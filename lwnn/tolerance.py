"""Numbers known only to a tolerance, rendered the same on every machine.

A float result's last bits depend on the BLAS kernel OpenBLAS picks for the CPU and on its thread
count (docs/architecture.md, "Portability"). Integer results are exact given their quantization
parameters, but a metric built on a float reference (an SQNR, an IoU, the accuracy of a model
whose calibrated ranges moved by an ulp) can move in the digits a notebook prints. Printing such a
number as measured makes a notebook's saved output a property of the machine that saved it.

``approx(measured, expected, tol)`` checks the measured value against a stated claim and renders
the claim, ``"10.8 ± 1.0"``: the same text wherever the claim holds, and an error naming the
quantity, the measured value and the claim wherever it does not::

    print(f"output SQNR {lwnn.approx(s['output_sqnr_db'], 10.8, 1.0, 'output SQNR')} dB")
"""

from __future__ import annotations

import math
from dataclasses import dataclass


class ClaimError(AssertionError):
    """A measured value lies outside the tolerance its notebook or test claims for it."""


@dataclass(frozen=True)
class Approx:
    """A checked claim ``expected ± tol`` about ``measured`` (which it holds but never prints)."""

    measured: float
    expected: float
    tol: float
    what: str = "value"

    def __format__(self, spec: str) -> str:
        spec = spec or f".{_decimals(self.tol)}f"
        return f"{format(self.expected, spec)} ± {format(self.tol, spec)}"

    def __str__(self) -> str:
        return format(self, "")

    def __repr__(self) -> str:
        return f"Approx({self.what}: {self})"


def approx(measured: float, expected: float, tol: float, what: str = "value") -> Approx:
    """``measured`` as the claim ``expected ± tol``; raises ``ClaimError`` when it lies outside.

    ``tol`` should be what the computation actually holds across machines (the spread that
    ``scripts/check_portability.sh`` shows, with a margin), not a width that makes a check pass.
    """
    if not (tol >= 0 and math.isfinite(tol) and math.isfinite(expected)):
        raise ValueError(f"approx({what}): expected a finite value and tolerance >= 0. "
                         f"Received: expected={expected!r}, tol={tol!r}.")
    measured = float(measured)
    if not abs(measured - expected) <= tol:  # also rejects NaN
        raise ClaimError(f"{what}: measured {measured:.6g}, outside the claimed {expected:g} ± {tol:g}.")
    return Approx(measured, float(expected), float(tol), what)


def _decimals(tol: float) -> int:
    """Decimals that show ``tol``'s leading digit: 0.5 -> 1, 0.005 -> 3, 2 -> 0."""
    if tol <= 0:
        return 3
    return max(0, -math.floor(math.log10(tol) + 1e-9))


def leaders(scores, within: float, tol: float, *, higher_is_better: bool = True,
            what: str = "scores") -> list:
    """The keys of ``scores`` (a mapping or a pandas Series) whose score lies within ``within`` of
    the best, in their given order, provided that moving every score by up to ``tol`` cannot change
    that set: no score's distance to the best may lie within ``2 * tol`` of ``within`` (else
    ``ClaimError``, naming the undecided keys; choose another ``within`` or show fewer digits).

    ``leaders({"kl": 0.965, "minmax": 0.968, "mse": 0.936}, within=0.01, tol=0.003)`` is
    ``["kl", "minmax"]``: the best two are 0.003 apart, the third 0.032 behind.
    """
    if not (0 <= tol and 2 * tol < within):
        raise ValueError(f"leaders({what}): expected 0 <= 2 * tol < within. Received: within={within!r}, "
                         f"tol={tol!r}.")
    items = [(key, float(value)) for key, value in scores.items()]
    if not items or not all(math.isfinite(v) for _, v in items):
        raise ClaimError(f"leaders({what}): expected finite scores. Received: {dict(items)}.")
    sign = 1.0 if higher_is_better else -1.0
    best = max(sign * v for _, v in items)
    gaps = {key: best - sign * v for key, v in items}
    undecided = {key: round(gap, 6) for key, gap in gaps.items() if abs(gap - within) <= 2 * tol}
    if undecided:
        raise ClaimError(f"leaders({what}): within {within:g} of the best is not decided at a tolerance of "
                         f"{tol:g}; distance to the best of the keys at the edge: {undecided}.")
    return [key for key, gap in gaps.items() if gap <= within]
