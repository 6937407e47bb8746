"""Per-step aggregates (one point per minute, say) for the fixed-horizon comparison judges.

Kayenta and Flagger judge time series of per-interval aggregates, not requests. This module
folds the paired batches into steps of ``step_s`` seconds counted from the first interval, per
arm: requests, errors, latency samples and histogram counts, from which the error rate and
latency quantiles of a step are read. Quantiles come from samples when there are any, else from
the histogram by linear interpolation inside the bucket (as Prometheus' ``histogram_quantile``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from stageless.analysis.batch import Batch
from stageless.analysis.pairing import Interval


@dataclass(slots=True)
class Aggregate:
    """One arm's traffic over one step."""

    requests: int = 0
    errors: int = 0
    samples: list[NDArray[np.float64]] = field(default_factory=list)
    le: tuple[float, ...] = ()
    counts: NDArray[np.float64] | None = None
    _quantiles: dict[float, float] = field(default_factory=dict)
    _pooled: NDArray[np.float64] | None = None

    def add(self, batch: Batch | None, samples: NDArray[np.float64]) -> None:
        if batch is None:
            return
        self._quantiles.clear()
        self._pooled = None
        self.requests += batch.requests
        self.errors += batch.errors
        if samples.size:
            self.samples.append(samples)
        hist = batch.histogram
        if hist.counts:
            counts = np.asarray(hist.counts, dtype=np.float64)
            if self.counts is None or hist.le != self.le:
                self.le, self.counts = hist.le, counts
            else:
                self.counts += counts

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else math.nan

    def quantile(self, q: float) -> float:
        """The step's latency quantile in ms (NaN without latency data); cached until ``add``."""
        if q not in self._quantiles:
            value = math.nan
            if self.samples:
                if self._pooled is None:
                    self._pooled = np.concatenate(self.samples)  # a copy: partitioned in place
                value = linear_quantile(self._pooled, q)
            elif self.counts is not None and self.counts.sum() > 0:
                value = histogram_quantile(q, self.le, self.counts)
            self._quantiles[q] = value
        return self._quantiles[q]


def linear_quantile(values: NDArray[np.float64], q: float) -> float:
    """``np.quantile(values, q)`` (its default, linear method) for NaN-free ``values``, equal to
    it to the last bit; partitions ``values`` in place and skips numpy's general overhead.

    The virtual index is ``(n - 1)·q``; the result interpolates between its two neighbouring
    order statistics as numpy's ``_lerp`` does (``a + (b - a)·t``, or ``b - (b - a)·(1 - t)``
    when ``t >= 0.5``).
    """
    n = values.size
    virtual = (n - 1) * q
    below = math.floor(virtual)
    if virtual >= n - 1:
        below = above = n - 1
    else:
        above = below + 1
    values.partition((below, above) if above != below else below)
    a, b = float(values[below]), float(values[above])
    t = virtual - below
    diff = b - a
    return b - diff * (1.0 - t) if t >= 0.5 else a + diff * t


def histogram_quantile(q: float, le: tuple[float, ...], counts: NDArray[np.float64]) -> float:
    """Prometheus-style quantile from per-bucket counts (linear inside the bucket)."""
    cumulative = np.cumsum(counts)
    rank = q * cumulative[-1]
    i = int(np.searchsorted(cumulative, rank))
    i = min(i, len(le) - 1)
    upper = le[i]
    lower = le[i - 1] if i > 0 else 0.0
    if math.isinf(upper):
        return lower  # the +Inf bucket: the highest finite bound, as Prometheus does
    below = cumulative[i - 1] if i > 0 else 0.0
    inside = counts[i]
    if inside <= 0:
        return upper
    return float(lower + (upper - lower) * (rank - below) / inside)


class Steps:
    """Folds intervals into steps of ``step_s`` seconds, per arm."""

    def __init__(self, step_s: float) -> None:
        self.step_s = step_s
        self.start: float | None = None
        self.baseline: dict[int, Aggregate] = {}
        self.canary: dict[int, Aggregate] = {}

    def add(self, interval: Interval) -> None:
        if self.start is None:
            self.start = interval.ts
        k = int((interval.ts - self.start) // self.step_s)
        self.baseline.setdefault(k, Aggregate()).add(interval.baseline, interval.baseline_samples)
        self.canary.setdefault(k, Aggregate()).add(interval.canary, interval.canary_samples)

    def completed(self, end_ts: float) -> int:
        """How many whole steps have elapsed by ``end_ts``."""
        if self.start is None:
            return 0
        return int((end_ts - self.start + 1e-9) // self.step_s)

    def pairs(self, first: int, last: int) -> list[tuple[Aggregate, Aggregate]]:
        """(baseline, canary) aggregates of steps ``first`` to ``last - 1`` (empty when missing)."""
        return [
            (self.baseline.get(k, Aggregate()), self.canary.get(k, Aggregate()))
            for k in range(first, last)
        ]
