"""The Mann-Whitney confidence interval for a location shift, as Kayenta computes it.

Kayenta's ``MannWhitneyClassifier`` reproduces R's ``wilcox.test(x, y, conf.int = TRUE,
exact = FALSE, correct = TRUE)``; scipy offers the test's p-value (``mannwhitneyu``) but not this
interval, so it is written here from the published algorithm (reference notes §1):

* for a shift ``mu``, rank ``x - mu`` together with ``y`` (average ties);
  ``dz = Σ ranks(x) - n_x(n_x + 1)/2 - n_x·n_y/2``;
* ``sigma = sqrt(n_x·n_y/12 · [(n_x + n_y + 1) - Σ(t³ - t) / ((n_x + n_y)(n_x + n_y - 1))])``
  with ``t`` the tie-group sizes;
* ``f(mu, z) = (dz - sign(dz)·0.5)/sigma - z``; the interval's ends are the roots of
  ``f(mu, ±z_{1-alpha/2})``, the estimate (≈ Hodges-Lehmann) the root of ``f(mu, 0)``;
  Brent's method on ``[min x - max y, max x - min y]``, clamped to that range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import brentq
from scipy.stats import norm


@dataclass(frozen=True, slots=True)
class ShiftInterval:
    """The shift of x (canary) over y (baseline): estimate and confidence interval."""

    lower: float
    estimate: float
    upper: float


def _statistic(
    x: NDArray[np.float64], y: NDArray[np.float64], mu: float, y_ties: bool
) -> tuple[float, float]:
    """(dz, sigma) for the shift ``mu``, with ``x`` and ``y`` sorted (``y_ties``: y has ties).

    ``Σ ranks(x) - n_x(n_x + 1)/2`` is the number of pairs with ``x_i - mu > y_j`` plus half the
    ties (average ranks), so ``dz`` comes from two binary searches in the sorted ``y``. The tie
    groups of the pooled values are needed only when some value repeats: within ``x - mu``
    (sorted, as subtraction keeps order), within ``y``, or across. Every term is a small
    half-integer, exact in floating point, so this equals ranking the pooled values.
    """
    nx, ny = x.size, y.size
    n = nx + ny
    shifted = x - mu
    below = y.searchsorted(shifted, side="left")
    tied = int(y.searchsorted(shifted, side="right").sum()) - int(below.sum())
    pairs = float(below.sum()) + 0.5 * tied
    dz = (pairs + nx * (nx + 1) / 2) - nx * (nx + 1) / 2 - nx * ny / 2
    tie_term = 0.0
    if tied or y_ties or (shifted[1:] == shifted[:-1]).any():
        ordered = np.sort(np.concatenate([shifted, y]))
        starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
        sizes = np.diff(np.append(starts, n)).astype(np.float64)
        tie_term = float(np.sum(sizes**3 - sizes)) / (n * (n - 1))
    sigma = math.sqrt(nx * ny / 12 * ((n + 1) - tie_term))
    return dz, sigma


def z_statistic(x: NDArray[np.float64], y: NDArray[np.float64], mu: float = 0.0) -> float:
    """The continuity-corrected normal statistic at shift ``mu`` (NaN when sigma is 0)."""
    y = np.sort(y)
    return _z(np.sort(x), y, mu, _has_ties(y))


def _has_ties(values: NDArray[np.float64]) -> bool:
    """Whether sorted ``values`` repeat a value."""
    return bool((values[1:] == values[:-1]).any())


def _z(x: NDArray[np.float64], y: NDArray[np.float64], mu: float, y_ties: bool) -> float:
    dz, sigma = _statistic(x, y, mu, y_ties)
    if sigma == 0:
        return math.nan
    return (dz - math.copysign(0.5, dz) * (dz != 0)) / sigma


def shift_interval(
    x: NDArray[np.float64], y: NDArray[np.float64], confidence: float = 0.98
) -> ShiftInterval | None:
    """Estimate and ``confidence`` interval of the shift; ``None`` when sigma is 0 (Error)."""
    if x.size == 0 or y.size == 0:
        return None
    x, y = np.sort(x), np.sort(y)
    y_ties = _has_ties(y)
    if _statistic(x, y, 0.0, y_ties)[1] == 0:
        return None
    lo, hi = float(x.min() - y.max()), float(x.max() - y.min())
    z = float(norm.ppf(1 - (1 - confidence) / 2))

    def root(target: float) -> float:
        def f(mu: float) -> float:
            value = _z(x, y, mu, y_ties)
            return 0.0 if math.isnan(value) else value - target

        f_lo, f_hi = f(lo), f(hi)
        if f_lo <= 0:
            return lo
        if f_hi >= 0:
            return hi
        return float(brentq(f, lo, hi, xtol=1e-10 + 1e-9 * (hi - lo)))

    return ShiftInterval(lower=root(z), estimate=root(0.0), upper=root(-z))
