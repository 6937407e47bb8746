"""B1: is the canary slower than the baseline? A sequential sign test on paired latencies.

Within each interval, canary samples are paired one-to-one with baseline samples of the same
interval (evenly spaced picks from both reservoirs; ``min(n_canary, n_baseline)`` pairs), which
cancels drift over the day. For a pair, ``d = ln(canary) - ln(baseline)``.

* FAIL: ``Z = 1{d > ln(1 + null_shift)}`` (ties count 1/2, or a fair coin with ``ties="random"``);
  under the null "the canary is not slower", ``P(Z = 1) <= 1/2``. One-sided Beta-mixture e-value
  with ``theta0 = 1/2``; FAIL at 1/alpha.
* PASS: ``Z' = 1{d > ln(1 + margin)}``; under "the canary is at least ``margin`` slower",
  ``P(Z' = 1) >= 1/2``. Rejecting it (the same e-value on ``1 - Z'``) shows the median paired
  ratio is below ``1 + margin``. For a pure scale change this is exact for any distribution.
* The effect is the shift ``exp(median d) - 1`` (+10% = 10 % slower), with the shifts no
  e-value rejects as its confidence sequence; ``P(slower)`` is reported beside it.

Where batches carry only histograms (Prometheus), latency is tested on exceedances over the bucket
bound nearest the baseline's median (see :class:`~stageless.analysis.tail.ExceedanceTest`).
"""

from __future__ import annotations

import math

import numpy as np

from stageless.analysis.evalue import (
    DEFAULT_K,
    FloatArray,
    log_beta_mixture,
    log_beta_mixture_scalar,
)
from stageless.analysis.pairing import Interval
from stageless.analysis.tail import ExceedanceTest
from stageless.analysis.verdict import Evidence, Verdict, fmt_count, fmt_level, fmt_shift

_FLOOR_MS = 1e-3  # a latency of 0 ms is read as 1 µs so that its logarithm exists


class PairedLatencyTest:
    """The sequential sign test of canary-vs-baseline latency on paired samples."""

    name = "latency"

    def __init__(
        self,
        alpha: float,
        *,
        null_shift: float = 0.0,
        margin: float = 0.10,
        k: float = DEFAULT_K,
        rng: np.random.Generator | None = None,
    ) -> None:
        self.alpha = alpha
        self.log_threshold = math.log(1.0 / alpha)
        self.null_shift = null_shift
        self.margin = margin
        self.k = k
        self.rng = rng
        self._cut_fail = math.log1p(null_shift)
        self._cut_pass = math.log1p(margin)
        self.n = 0.0
        self.s_fail = 0.0
        self.s_pass = 0.0
        self.s_slower = 0.0
        self._log_ratios: list[FloatArray] = []  # kept for the estimate and the bounds
        self.log_e_now = 0.0
        self.log_e_max = 0.0
        self.failed = False
        self.passed = False

    def add(self, interval: Interval) -> None:
        if interval.canary is None or interval.baseline is None:
            return
        y, x = interval.canary_samples, interval.baseline_samples
        m = min(y.size, x.size)
        if m == 0:
            return
        ys = y[(np.arange(m) * y.size) // m]
        xs = x[(np.arange(m) * x.size) // m]
        d = np.log(np.maximum(ys, _FLOOR_MS)) - np.log(np.maximum(xs, _FLOOR_MS))
        self.n += m
        self.s_fail += self._above(d, self._cut_fail)
        self.s_pass += self._above(d, self._cut_pass)
        self.s_slower += self._above(d, 0.0) if self._cut_fail != 0.0 else 0.0
        self._log_ratios.append(d)
        self._check()

    def _above(self, d: FloatArray, cut: float) -> float:
        above = float(np.count_nonzero(d > cut))
        ties = int(np.count_nonzero(d == cut))
        if ties == 0:
            return above
        if self.rng is not None:
            return above + float(np.count_nonzero(self.rng.random(ties) < 0.5))
        return above + 0.5 * ties

    def _check(self) -> None:
        self.log_e_now = log_beta_mixture_scalar(self.s_fail, self.n, 0.5, self.k)
        self.log_e_max = max(self.log_e_max, self.log_e_now)
        if self.log_e_now >= self.log_threshold:
            self.failed = True
        if not self.passed:
            log_e_pass = log_beta_mixture_scalar(self.n - self.s_pass, self.n, 0.5, self.k)
            self.passed = log_e_pass >= self.log_threshold

    def bounds(self) -> tuple[float | None, float, float]:
        """(estimate, lower, upper) of the shift ``exp(d) - 1``, from every paired log-ratio.

        The lower bound is the smallest shift ``c`` the FAIL-side e-value (on ``d > ln(1 + c)``)
        does not reject, the upper the largest one the PASS-side e-value does not reject; both
        are evaluated at the observed ``d`` values (ties at a cut are counted as above it).
        """
        if self.n == 0:
            return None, -1.0, math.inf
        d = np.sort(np.concatenate(self._log_ratios))
        n = d.size
        estimate = math.expm1(float(np.median(d)))
        above = n - 1 - np.arange(n, dtype=np.float64)  # pairs with d > d[i] (no ties)
        log_e_low = log_beta_mixture(above, n, 0.5, self.k)
        log_e_up = log_beta_mixture(n - above, n, 0.5, self.k)
        kept = np.flatnonzero(log_e_low < self.log_threshold)
        lower = math.expm1(float(d[kept[0]])) if kept.size and kept[0] > 0 else -1.0
        kept_up = np.flatnonzero(log_e_up < self.log_threshold)
        last = int(kept_up[-1]) + 1 if kept_up.size else 0  # shifts below d[last] are kept
        upper = math.expm1(float(d[last])) if last < n else math.inf
        return estimate, lower, upper

    def evidence(self) -> Evidence:
        estimate, lower, upper = self.bounds()
        level = 1.0 - 2.0 * self.alpha
        slower = (
            (self.s_slower if self._cut_fail != 0.0 else self.s_fail) / self.n if self.n else None
        )
        verdict = Verdict.FAIL if self.failed else Verdict.PASS if self.passed else Verdict.CONTINUE
        n = fmt_count(self.n)
        if verdict is Verdict.FAIL:
            status = f"fail after {n} canary samples"
        elif verdict is Verdict.PASS:
            status = f"within the tolerated {fmt_shift(self.margin)} after {n} canary samples"
        else:
            status = f"no decision after {n} canary samples"
        p_slower = "n/a" if slower is None else f"{slower:.2f}"
        sentence = (
            f"latency {fmt_shift(estimate)} (median paired ratio; {fmt_level(level)} CS "
            f"{fmt_shift(lower)} to {fmt_shift(upper)}), P(canary slower) {p_slower}: {status}"
        )
        return Evidence(
            metric=self.name,
            verdict=verdict,
            effect="shift",
            estimate=estimate,
            lower=lower,
            upper=upper,
            level=level,
            margin=self.margin,
            e_value=math.exp(min(self.log_e_now, 700.0)),
            threshold=1.0 / self.alpha,
            p_value=min(1.0, math.exp(-self.log_e_max)),
            canary=self.s_fail,
            baseline=self.n - self.s_fail,
            canary_n=self.n,
            baseline_n=self.n,
            sentence=sentence,
        )


class LatencyTest:
    """Latency from samples when batches carry them, else from histograms (fixed on first data)."""

    name = "latency"

    def __init__(self, paired: PairedLatencyTest, histogram: ExceedanceTest) -> None:
        self.paired = paired
        self.histogram = histogram
        self.mode: str | None = None

    @property
    def failed(self) -> bool:
        return self._active().failed if self.mode else False

    @property
    def passed(self) -> bool:
        return self._active().passed if self.mode else False

    def _active(self) -> PairedLatencyTest | ExceedanceTest:
        return self.paired if self.mode == "samples" else self.histogram

    def add(self, interval: Interval) -> None:
        if self.mode is None:
            self.mode = _mode(interval)
            if self.mode is None:
                return
        self._active().add(interval)

    def evidence(self) -> Evidence:
        if self.mode == "histogram":
            return self.histogram.evidence(self.name, "latency above the baseline median")
        return self.paired.evidence()


def _mode(interval: Interval) -> str | None:
    batches = [b for b in (interval.baseline, interval.canary) if b is not None]
    if any(b.samples for b in batches):
        return "samples"
    if any(sum(b.histogram.counts) for b in batches):
        return "histogram"
    return None
