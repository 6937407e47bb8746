"""B3: exceedances of a latency threshold fixed before the test starts, judged with A1.

The threshold ``L`` comes from the baseline's own traffic: its ``quantile`` (p99 by default) over
the first ``warmup_s`` seconds of baseline data, which are then not used by the test (so ``L``
does not depend on the data it judges), or a value given up front. From samples, ``L`` is the
empirical quantile; from histograms only, it is the bucket bound nearest the quantile, and
exceedances are the counts of the buckets above it. Each interval then gives exceedances per arm
out of the samples (or histogram counts) per arm, and the count test (A1) asks whether the
canary exceeds ``L`` more often than the baseline: strong on tail-only regressions.

:class:`TailTest` is the tail metric (the p99 by default), with a FAIL and a PASS side.
:class:`ExtremeTailTest` runs the same count test at a rarer threshold (the baseline's p99.9 by
default) and is **fail-only**: exceedances that rare cannot bound a ratio below a margin within a
canary's budget, so it never takes part in a PASS, but a regression that hits a few requests
hard (timeouts, stalls) raises them twenty-fold where the p99's rise three-fold, and it fails
such a candidate sooner.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
from numpy.typing import NDArray

from stageless.analysis.batch import Batch, Histogram
from stageless.analysis.counts import CountTest
from stageless.analysis.error_rate import count_evidence
from stageless.analysis.evalue import DEFAULT_SCALE
from stageless.analysis.pairing import Interval
from stageless.analysis.verdict import Evidence, Verdict

#: Baseline observations needed to fix the threshold, in units of 1 / (1 - quantile).
_WARMUP_TAIL_EVENTS = 10
#: Spread of the extreme-tail test's mixture over ln(ratio): ratios of 10 to 30 are its usual
#: alternatives (an exceedance rate of 0.1 % rising to 1-3 %), which the count tests' default
#: spread (0.5) all but ignores.
EXTREME_SCALE = 1.5


class ExceedanceTest:
    """A1 on counts of latencies above a threshold, learnt from the baseline or given."""

    def __init__(  # noqa: PLR0913 (the test's settings, keyword-only)
        self,
        alpha: float,
        *,
        quantile: float,
        null_ratio: float = 1.0,
        margin: float | None = 1.5,
        threshold_ms: float | None = None,
        warmup_s: float = 60.0,
        pass_alpha: float | None = None,
        scale: float = DEFAULT_SCALE,
    ) -> None:
        """``margin=None`` makes the test fail-only: it never passes."""
        self.test = CountTest(
            alpha, null_ratio=null_ratio, margin=margin, pass_alpha=pass_alpha, scale=scale
        )
        self.quantile = quantile
        self.threshold_ms = threshold_ms
        self.warmup_s = warmup_s
        self.skipped = 0
        self._start: float | None = None
        self._samples: list[NDArray[np.float64]] = []
        self._hist: NDArray[np.float64] | None = None
        self._le: tuple[float, ...] = ()

    @property
    def failed(self) -> bool:
        return self.test.failed

    @property
    def passed(self) -> bool:
        return self.test.passed

    @property
    def ready(self) -> bool:
        """True once the threshold is fixed."""
        return self.threshold_ms is not None

    @property
    def needed(self) -> float:
        """Baseline latencies needed to fix the threshold: ``10 / (1 - quantile)``."""
        return _WARMUP_TAIL_EVENTS / (1.0 - self.quantile)

    def add(self, interval: Interval) -> None:
        if self.threshold_ms is None:
            self._warm(interval)
            return
        counted = _exceedances(interval.canary, interval.canary_samples, self.threshold_ms)
        base = _exceedances(interval.baseline, interval.baseline_samples, self.threshold_ms)
        if counted is None or base is None:
            if interval.canary is not None and interval.baseline is not None:
                self.skipped += 1
            return
        self.test.add(counted[0], base[0], counted[1], base[1])
        self.test.check()

    def _warm(self, interval: Interval) -> None:
        if self._start is None:
            self._start = interval.ts
        base = interval.baseline
        if base is not None:
            if interval.baseline_samples.size:
                self._samples.append(interval.baseline_samples)
            elif base.histogram.counts and sum(base.histogram.counts):
                counts = np.asarray(base.histogram.counts, dtype=np.float64)
                if self._hist is None or base.histogram.le != self._le:
                    self._hist, self._le = counts, base.histogram.le
                else:
                    self._hist += counts
        if interval.ts + interval.interval_s - self._start < self.warmup_s:
            return
        needed = self.needed
        n_samples = sum(len(s) for s in self._samples)
        if n_samples >= needed:
            self.threshold_ms = float(np.quantile(np.concatenate(self._samples), self.quantile))
        elif self._hist is not None and self._hist.sum() >= needed:
            self.threshold_ms = _nearest_bound(Histogram(self._le, ()), self._hist, self.quantile)
        if self.threshold_ms is not None:
            self._samples.clear()
            self._hist = None

    def evidence(self, metric: str, label: str) -> Evidence:
        if self.threshold_ms is None:
            return Evidence(
                metric=metric,
                verdict=Verdict.CONTINUE,
                effect="ratio",
                estimate=None,
                lower=None,
                upper=None,
                level=None,
                margin=self.test.margin,
                e_value=None,
                threshold=1.0 / self.test.alpha,
                p_value=None,
                canary=0.0,
                baseline=0.0,
                canary_n=0.0,
                baseline_n=0.0,
                sentence=f"{label}: threshold not fixed yet (learning the baseline's "
                f"p{100 * self.quantile:g} from at least {self.needed:,.0f} latencies over at "
                f"least {self.warmup_s:g} s)",
            )
        return count_evidence(
            self.test, metric, f"{label} (> {self.threshold_ms:.4g} ms)", "observations"
        )


def _exceedances(
    batch: Batch | None, samples: NDArray[np.float64], threshold: float
) -> tuple[float, float] | None:
    """(latencies above threshold, latencies observed) from samples, else from the histogram."""
    if batch is None:
        return 0.0, 0.0
    if samples.size:
        return float(np.count_nonzero(samples > threshold)), float(samples.size)
    le, counts = batch.histogram.le, batch.histogram.counts
    if counts:
        for i, bound in enumerate(le):
            if math.isclose(bound, threshold, rel_tol=1e-9):
                return float(sum(counts[i + 1 :])), float(sum(counts))
        return None  # the threshold is not a bucket bound of this histogram
    if batch.requests == 0:
        return 0.0, 0.0
    return None  # traffic but no latency data


def _nearest_bound(hist: Histogram, counts: NDArray[np.float64], quantile: float) -> float | None:
    """The finite bucket bound whose cumulative share is nearest ``quantile``."""
    cumulative = np.cumsum(counts) / counts.sum()
    finite = [i for i, bound in enumerate(hist.le) if math.isfinite(bound)]
    if not finite:
        return None
    best = min(finite, key=lambda i: abs(float(cumulative[i]) - quantile))
    return float(hist.le[best])


class TailTest:
    """The tail metric: exceedances of the baseline's p99 (by default)."""

    name = "tail"

    def __init__(self, exceedance: ExceedanceTest) -> None:
        self.exceedance = exceedance

    @property
    def failed(self) -> bool:
        return self.exceedance.failed

    @property
    def passed(self) -> bool:
        return self.exceedance.passed

    def add(self, interval: Interval) -> None:
        self.exceedance.add(interval)

    def evidence(self) -> Evidence:
        return self.exceedance.evidence(self.name, "tail latency")


class ExtremeTailTest:
    """Fail-only: exceedances of the baseline's p99.9 (by default), beside the tail metric.

    It can FAIL the candidate and never blocks or contributes to a PASS (its ``passed`` is always
    false and the judge does not wait for it). From histograms, its threshold is the bucket bound
    nearest its quantile; when that is the tail test's own bound (coarse buckets), it would only
    repeat that test, so it stops and says so.
    """

    name = "tail_extreme"

    def __init__(self, exceedance: ExceedanceTest, tail: ExceedanceTest | None = None) -> None:
        self.exceedance = exceedance
        self.tail = tail
        self.duplicate = False

    @property
    def label(self) -> str:
        return f"p{100 * self.exceedance.quantile:g} exceedances"

    @property
    def failed(self) -> bool:
        return self.exceedance.failed

    @property
    def passed(self) -> bool:
        return False

    def add(self, interval: Interval) -> None:
        if self.duplicate:
            return
        ready = self.exceedance.ready
        self.exceedance.add(interval)
        if not ready and self.exceedance.ready and self.tail is not None:
            mine, theirs = self.exceedance.threshold_ms, self.tail.threshold_ms
            self.duplicate = mine is not None and theirs is not None and math.isclose(mine, theirs)

    def evidence(self) -> Evidence:
        evidence = self.exceedance.evidence(self.name, self.label)
        if not self.duplicate:
            return evidence
        return replace(
            evidence,
            sentence=f"{self.label}: not run, its threshold is the tail test's "
            f"({self.exceedance.threshold_ms:.4g} ms, the nearest bucket bound to both)",
        )
