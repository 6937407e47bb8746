"""E-values for counts: Beta mixtures (closed form) and a finite mixture over a rate ratio.

Two building blocks, both in log space:

* :func:`log_beta_mixture` — the Beta-mixture e-value for ``s`` successes in ``n`` Bernoulli
  trials against a fixed ``theta0`` (two-sided, or one-sided with the prior truncated to
  ``theta > theta0``). Used where every trial has the same null probability (the latency sign
  test, where ``theta0 = 1/2``).
* :class:`RatioGrid` — for counts split between two arms whose share changes from batch to batch
  (the observed request split): the log-likelihood of the rate ratio ``r`` is kept on a fixed
  log grid, updated in O(grid) per batch, and e-values are finite mixtures over that grid. The
  same grid gives confidence sequences (the ratios no e-value rejects) without root finding.

These are written here because no maintained library offers incremental, varying-share count
e-values (``savvi`` solves a convex program per update and imports plotting libraries).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
from numpy.typing import NDArray
from scipy.special import betainc, betaln

FloatArray = NDArray[np.float64]

#: Beta prior concentration, as in savvi and the reference notes (a = k·theta0, b = k·(1-theta0)).
DEFAULT_K = 100.0
#: The ratio grid spans 1/32 to 32, in steps of 0.05 on the log scale (about 5 %).
GRID_SPAN = float(np.log(32.0))
GRID_STEP = 0.05
#: Spread of the mixing distribution over log r (a normal, truncated to the alternative side).
DEFAULT_SCALE = 0.5


def log_beta_mixture(
    s: float | FloatArray,
    n: float | FloatArray,
    theta0: float,
    k: float = DEFAULT_K,
    *,
    one_sided: bool = True,
) -> FloatArray:
    """Log e-value of ``s`` successes in ``n`` trials against ``theta <= theta0`` (or ``=``).

    Prior Beta(k·theta0, k·(1-theta0)); one-sided truncates it to ``theta > theta0``. ``s`` may
    be fractional (ties counted as one half), which keeps the e-value valid (the likelihood ratio
    is convex in each outcome). Vectorised over ``s`` and ``n``.
    """
    s_arr = np.asarray(s, dtype=np.float64)
    n_arr = np.asarray(n, dtype=np.float64)
    a, b = k * theta0, k * (1.0 - theta0)
    log_e = (
        betaln(a + s_arr, b + n_arr - s_arr)
        - betaln(a, b)
        - s_arr * np.log(theta0)
        - (n_arr - s_arr) * np.log1p(-theta0)
    )
    if one_sided:
        # 1 - I_x(a, b) = I_{1-x}(b, a): the posterior and prior mass above theta0.
        with np.errstate(divide="ignore"):
            log_e = (
                log_e
                + np.log(betainc(b + n_arr - s_arr, a + s_arr, 1.0 - theta0))
                - np.log(betainc(b, a, 1.0 - theta0))
            )
    return np.asarray(log_e, dtype=np.float64)


def log_beta_mixture_scalar(
    s: float, n: float, theta0: float, k: float = DEFAULT_K, *, one_sided: bool = True
) -> float:
    """:func:`log_beta_mixture` for one ``(s, n)``, on Python floats (the per-batch fast path)."""
    a, b = k * theta0, k * (1.0 - theta0)
    f = n - s
    log_e = (
        math.lgamma(a + s)
        + math.lgamma(b + f)
        - math.lgamma(a + b + n)
        - (math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b))
        - s * math.log(theta0)
        - f * math.log1p(-theta0)
    )
    if one_sided:
        upper = float(betainc(b + f, a + s, 1.0 - theta0))
        if upper <= 0.0:
            return -math.inf
        log_e += math.log(upper) - math.log(float(betainc(b, a, 1.0 - theta0)))
    return log_e


def _logsumexp(values: FloatArray) -> float:
    top = float(values.max())
    if not math.isfinite(top):
        return top
    return top + math.log(float(np.exp(values - top).sum()))


class RatioGrid:
    """Log-likelihood of a rate ratio ``r = rate_canary / rate_baseline`` on a fixed log grid.

    Each batch contributes the events of both arms and the canary's share of the exposure
    (requests, samples or users) in that batch. Conditional on the batch's event total, an event
    is the canary's with probability ``theta(r) = share·r / (share·r + 1 - share)``, so the
    batch adds ``s·log r - (s + f)·log(1 + share·(r - 1))`` (constants cancel in every ratio).

    ``points`` are ratios that must lie exactly on the grid (nulls and margins).
    """

    def __init__(self, points: Iterable[float] = (1.0,), scale: float = DEFAULT_SCALE) -> None:
        half = np.arange(GRID_STEP, GRID_SPAN + GRID_STEP / 2, GRID_STEP)
        extra = np.log(np.asarray(list(points), dtype=np.float64))
        x = np.unique(np.round(np.concatenate([-half[::-1], [0.0], half, extra]), 12))
        self.x: FloatArray = x
        self.r_minus_1: FloatArray = np.expm1(x)
        self.ll: FloatArray = np.zeros_like(x)
        self.scale = scale
        self.canary_events = 0.0
        self.baseline_events = 0.0
        self._weights: dict[tuple[int, str], tuple[slice, FloatArray]] = {}

    def index(self, ratio: float) -> int:
        """The grid index of ``ratio`` (which must be one of the ``points``)."""
        return int(np.argmin(np.abs(self.x - np.log(ratio))))

    def add(self, canary: float, baseline: float, share: float) -> None:
        """Add one batch: event counts per arm and the canary's share of the exposure."""
        self.canary_events += canary
        self.baseline_events += baseline
        if not 0.0 < share < 1.0 or canary + baseline <= 0:
            return  # all events are one arm's whatever r is: no information
        self.ll += canary * self.x - (canary + baseline) * np.log1p(share * self.r_minus_1)

    def _mixture(self, i0: int, side: str) -> tuple[slice, FloatArray]:
        key = (i0, side)
        if key not in self._weights:
            span = {"greater": slice(i0 + 1, None), "less": slice(0, i0), "two": slice(None)}
            part = span[side]
            dx = self.x[part] - self.x[i0]
            logw = -0.5 * (dx / self.scale) ** 2
            logw -= _logsumexp(logw)
            self._weights[key] = (part, logw)
        return self._weights[key]

    def log_e(self, i0: int, side: str) -> float:
        """Log e-value against ``r = x[i0]`` (and every r on the null's side).

        ``side`` is ``"greater"`` (alternatives above: valid for the null ``r <= r0``),
        ``"less"`` (alternatives below: null ``r >= r0``) or ``"two"`` (null ``r = r0``).
        """
        part, logw = self._mixture(i0, side)
        if logw.size == 0:
            return 0.0
        return _logsumexp(logw + self.ll[part]) - float(self.ll[i0])

    def _all_log_e(self, side: str) -> FloatArray:
        """``log_e(i, side)`` for every grid index ``i`` at once (G by G work: only for bounds)."""
        x = self.x
        dx = x[None, :] - x[:, None]
        mask = dx > 0 if side == "greater" else dx < 0
        with np.errstate(divide="ignore", invalid="ignore"):
            logw = np.where(mask, -0.5 * (dx / self.scale) ** 2, -np.inf)
            norm = np.log(np.sum(np.where(mask, np.exp(logw), 0.0), axis=1, keepdims=True))
            terms = np.where(mask, logw - norm + self.ll[None, :], -np.inf)
            peak = np.max(terms, axis=1, keepdims=True)
            peak = np.where(np.isfinite(peak), peak, 0.0)
            mixed = peak[:, 0] + np.log(np.sum(np.exp(terms - peak), axis=1))
        log_e = mixed - self.ll
        log_e[~mask.any(axis=1)] = 0.0  # no alternative on that side: the e-value is 1
        return np.asarray(log_e, dtype=np.float64)

    def lower_bound(self, log_threshold: float) -> float:
        """The smallest ratio the one-sided (greater) e-value does not reject; 0 if none."""
        log_e = self._all_log_e("greater")
        rejected = log_e >= log_threshold
        if not rejected[0]:
            return 0.0
        first_kept = int(np.argmin(rejected))
        if rejected[first_kept]:
            return float(np.exp(self.x[-1]))
        return float(np.exp(_cross(self.x, log_e, first_kept - 1, first_kept, log_threshold)))

    def upper_bound(self, log_threshold: float) -> float:
        """The largest ratio the one-sided (less) e-value does not reject; inf if none."""
        log_e = self._all_log_e("less")
        rejected = log_e >= log_threshold
        if not rejected[-1]:
            return float("inf")
        last_kept = len(rejected) - 1 - int(np.argmin(rejected[::-1]))
        if rejected[last_kept]:
            return float(np.exp(self.x[0]))
        return float(np.exp(_cross(self.x, log_e, last_kept + 1, last_kept, log_threshold)))

    def estimate(self) -> float | None:
        """The maximum-likelihood ratio (parabolic refinement between grid points)."""
        if self.canary_events + self.baseline_events <= 0:
            return None
        i = int(np.argmax(self.ll))
        if 0 < i < len(self.x) - 1:
            y0, y1, y2 = self.ll[i - 1], self.ll[i], self.ll[i + 1]
            x0, x1, x2 = self.x[i - 1], self.x[i], self.x[i + 1]
            denom = (x1 - x0) * (y1 - y2) - (x1 - x2) * (y1 - y0)
            if denom != 0:
                num = (x1 - x0) ** 2 * (y1 - y2) - (x1 - x2) ** 2 * (y1 - y0)
                return float(np.exp(x1 - 0.5 * num / denom))
        return float(np.exp(self.x[i]))


def _cross(x: FloatArray, log_e: FloatArray, rejected: int, kept: int, level: float) -> float:
    """Linear interpolation of where ``log_e`` crosses ``level`` between two grid points."""
    a, b = float(log_e[rejected]), float(log_e[kept])
    if a == b:
        return float(x[kept])
    t = (a - level) / (a - b)
    return float(x[rejected] + t * (x[kept] - x[rejected]))
