"""B1: is the canary slower than the baseline? A sequential test of P(canary slower) by betting.

Within each interval, every canary sample is compared with ``k`` baseline samples of the same
interval, ``k = min(n_baseline // n_canary, 32)`` (at least 1: when the baseline has fewer
samples than the canary, ``n_baseline`` canary samples are used, one baseline sample each).
Each baseline sample is used at most once (evenly spaced picks; canary sample ``i`` gets the
``i``-th block of ``k`` picks), so given the interval the canary samples' scores are independent.
Comparing within the interval cancels drift over the day. For a comparison,
``d = ln(canary) - ln(baseline)``; a canary sample's score is the share of its comparisons with
``d`` above a cut (ties count 1/2, or a fair coin with ``ties="random"``), a number in [0, 1]
whose mean is ``P(canary > baseline·(1 + cut))`` and whose variance falls from 1/4 (one
comparison) towards 1/12 as ``k`` grows, which is what makes this test faster than a sign test
on pairs.

* FAIL: scores ``Z`` at the cut ``ln(1 + null_shift)``; under the null "the canary is not
  slower", ``E[Z] <= 1/2``. The e-value is a fixed mixture of bets,
  ``E = sum_j w_j prod_i (1 + lambda_j·(Z_i - 1/2))`` (:data:`BETS`, :data:`BET_WEIGHTS`): each
  product is a non-negative supermartingale under the null (``lambda < 2`` keeps every factor
  positive), so their weighted average is one too; FAIL when ``E >= 1/alpha`` (Ville's inequality).
* PASS: scores ``Z'`` at the cut ``ln(1 + margin)``; under "the canary is at least ``margin``
  slower", ``E[Z'] >= 1/2``, and the mirror bets on ``1/2 - Z'`` reject it. Rejection shows
  ``P(canary > baseline·(1 + margin)) < 1/2``, i.e. the median canary/baseline ratio is below
  ``1 + margin``; for a pure scale change this holds for any latency distribution.
* The effect is the shift ``exp(c) - 1`` at which the mean score crosses 1/2, with the shifts
  no e-value rejects as its confidence sequence; ``P(slower)`` (the mean score at cut 0) is
  reported beside it. Both are read off a fixed grid of cuts (:data:`CUTS`, every 0.005 in
  ``ln`` ratio within ±0.5, every 0.05 out to ±3, plus the two decision cuts), whose bets are
  updated per interval when an explanation is asked for: the cost of an explanation does not
  grow with the samples seen, and nothing but the grid's totals is kept. The bounds are rounded
  outwards to the grid (the confidence sequence is at most one grid step wider than exact);
  the FAIL and PASS decisions themselves use the exact cuts.

References: Waudby-Smith & Ramdas, "Estimating means of bounded random variables by betting"
(JRSS B, 2024) for betting e-processes and mixtures of fixed bets.

Where batches carry only histograms (Prometheus), latency is tested on exceedances over the bucket
bound nearest the baseline's median (see :class:`~stageless.analysis.tail.ExceedanceTest`).
"""

from __future__ import annotations

import math

import numpy as np

from stageless.analysis.evalue import FloatArray
from stageless.analysis.pairing import Interval
from stageless.analysis.tail import ExceedanceTest
from stageless.analysis.verdict import Evidence, Verdict, fmt_count, fmt_level, fmt_shift

_FLOOR_MS = 1e-3  # a latency of 0 ms is read as 1 µs so that its logarithm exists
#: The bets (lambda) of the fixed mixture and their weights. Growth per sample is largest near
#: lambda = (mean score - 1/2) / variance: about 0.6 for +10 %, 1.1 for +20 % and 2 for +50 %
#: (lognormal sigma 0.5, where the variance is near 1/12), so those bets carry 80 % of the
#: weight; the small ones let the confidence sequence keep narrowing as samples accumulate
#: (a bet lambda cannot reject a cut whose mean score is within about lambda·variance/2 of 1/2).
#: lambda < 2 keeps every factor positive.
BETS: tuple[float, ...] = (0.05, 0.1, 0.2, 0.4, 0.8, 1.3, 1.9)
BET_WEIGHTS: tuple[float, ...] = (0.2 / 3, 0.2 / 3, 0.2 / 3, 0.2, 0.2, 0.2, 0.2)
#: At most this many baseline samples per canary sample (little variance is left to remove).
MAX_COMPARISONS = 32
#: The cuts (``ln`` canary/baseline ratios) at which the confidence sequence and the estimate
#: are read: fine near 0, where margins and decisions are, coarse far out.
CUTS: FloatArray = np.unique(
    np.concatenate(
        [
            np.round(np.linspace(-0.5, 0.5, 201), 6),
            np.round(np.linspace(-3.0, -0.5, 51), 6),
            np.round(np.linspace(0.5, 3.0, 51), 6),
        ]
    )
)


def log_mixture(log_wealth: FloatArray, weights: FloatArray) -> float:
    """``ln(sum_j weights_j·exp(log_wealth_j))``: the log e-value of the mixture of bets."""
    top = float(log_wealth.max())
    if not math.isfinite(top):
        return top
    return top + math.log(float((weights * np.exp(log_wealth - top)).sum()))


def log_wealth(scores: FloatArray, bets: FloatArray) -> FloatArray:
    """Per bet ``lambda``, ``sum_i ln(1 + lambda·(scores_i - 1/2))`` (scores in [0, 1])."""
    return np.asarray(np.log1p(np.outer(bets, scores - 0.5)).sum(axis=1), dtype=np.float64)


def comparisons(size_canary: int, size_baseline: int) -> tuple[int, int]:
    """(canary samples used, baseline samples per canary sample) for one interval."""
    m = min(size_canary, size_baseline)
    if m == 0:
        return 0, 0
    return m, min(size_baseline // m, MAX_COMPARISONS)


def scores(d: FloatArray, cut: float, rng: np.random.Generator | None = None) -> FloatArray:
    """Per row of ``d`` (a canary sample's log-ratios), the share above ``cut`` (ties 1/2)."""
    above = np.count_nonzero(d > cut, axis=1).astype(np.float64)
    tied = d == cut
    if tied.any():
        if rng is not None:
            above += np.count_nonzero(tied & (rng.random(d.shape) < 0.5), axis=1)
        else:
            above += 0.5 * np.count_nonzero(tied, axis=1)
    return np.asarray(above / d.shape[1], dtype=np.float64)


class PairedLatencyTest:
    """The sequential test of canary-vs-baseline latency on samples of the same intervals."""

    name = "latency"

    def __init__(  # noqa: PLR0913 (the test's settings, keyword-only)
        self,
        alpha: float,
        *,
        null_shift: float = 0.0,
        margin: float = 0.10,
        rng: np.random.Generator | None = None,
        bets: tuple[float, ...] = BETS,
        weights: tuple[float, ...] = BET_WEIGHTS,
        pass_alpha: float | None = None,
    ) -> None:
        if not bets or not all(0.0 < b < 2.0 for b in bets):
            raise ValueError("bets must be in (0, 2)")
        if len(weights) != len(bets) or min(weights) <= 0 or not math.isclose(sum(weights), 1.0):
            raise ValueError("one positive weight per bet, summing to 1")
        self.alpha = alpha
        self.log_threshold = math.log(1.0 / alpha)
        self.pass_alpha = alpha if pass_alpha is None else pass_alpha
        self.pass_log_threshold = math.log(1.0 / self.pass_alpha)
        self.null_shift = null_shift
        self.margin = margin
        self.rng = rng
        self.bets: FloatArray = np.asarray(bets, dtype=np.float64)
        self.weights: FloatArray = np.asarray(weights, dtype=np.float64)
        self._cut_fail = math.log1p(null_shift)
        self._cut_pass = math.log1p(margin)
        self.n = 0.0  # canary samples scored
        self.baseline_n = 0.0  # baseline samples compared
        self.s_fail = 0.0  # sum of the FAIL-side scores
        self.s_pass = 0.0
        self.s_slower = 0.0
        self._log_fail: FloatArray = np.zeros(self.bets.size)
        self._log_pass: FloatArray = np.zeros(self.bets.size)
        # The explanation's grid: the cuts (with the decision cuts), per bet and cut the log-wealth
        # of each side, per cut the sum of scores; intervals not folded in yet wait in _pending.
        self._cuts: FloatArray = np.unique(np.append(CUTS, [self._cut_fail, self._cut_pass]))
        self._grid_fail: FloatArray = np.zeros((self.bets.size, self._cuts.size))
        self._grid_pass: FloatArray = np.zeros((self.bets.size, self._cuts.size))
        self._grid_scores: FloatArray = np.zeros(self._cuts.size)
        self._pending: list[FloatArray] = []
        self.log_e_now = 0.0
        self.log_e_max = 0.0
        self.log_e_pass = 0.0
        self.failed = False
        self.passed = False

    def add(self, interval: Interval) -> None:
        if interval.canary is None or interval.baseline is None:
            return
        y, x = interval.canary_samples, interval.baseline_samples
        m, k = comparisons(y.size, x.size)
        if m == 0:
            return
        ys = y[(np.arange(m) * y.size) // m]
        xs = x[(np.arange(m * k) * x.size) // (m * k)].reshape(m, k)
        d = np.log(np.maximum(ys, _FLOOR_MS))[:, None] - np.log(np.maximum(xs, _FLOOR_MS))
        z_fail = scores(d, self._cut_fail, self.rng)
        z_pass = scores(d, self._cut_pass, self.rng)
        self.n += m
        self.baseline_n += m * k
        self.s_fail += float(z_fail.sum())
        self.s_pass += float(z_pass.sum())
        if self._cut_fail != 0.0:
            self.s_slower += float(scores(d, 0.0).sum())
        self._log_fail += log_wealth(z_fail, self.bets)
        self._log_pass += log_wealth(1.0 - z_pass, self.bets)
        self._pending.append(d)
        self._check()

    def _check(self) -> None:
        self.log_e_now = log_mixture(self._log_fail, self.weights)
        self.log_e_max = max(self.log_e_max, self.log_e_now)
        if self.log_e_now >= self.log_threshold:
            self.failed = True
        self.log_e_pass = log_mixture(self._log_pass, self.weights)
        if self.log_e_pass >= self.pass_log_threshold:
            self.passed = True

    def _fold(self) -> None:
        """Add the pending intervals' comparisons to the grid (scores at every cut, ties 1/2)."""
        cuts = self._cuts
        for d in self._pending:
            # A score is a multiple of 1/(2k): per cut, a histogram of twice the scores times a
            # table of log-bets (2k + 1 values) instead of a logarithm per sample and cut.
            k = d.shape[1]
            width = 2 * k + 1
            flat = d[:, :, None]
            twice = 2 * (flat > cuts).sum(axis=1) + (flat == cuts).sum(axis=1)  # (m, cuts)
            slots = (twice + width * np.arange(cuts.size)).ravel()
            counts = np.bincount(slots, minlength=width * cuts.size).reshape(cuts.size, width)
            z = np.arange(width) / (2.0 * k)
            centred = np.outer(self.bets, z - 0.5)  # (bets, width)
            self._grid_fail += np.log1p(centred) @ counts.T
            self._grid_pass += np.log1p(-centred) @ counts.T
            self._grid_scores += counts @ z
        self._pending.clear()

    def bounds(self) -> tuple[float | None, float, float]:
        """(estimate, lower, upper) of the shift ``exp(c) - 1``, read off the grid of cuts.

        The FAIL-side e-value falls and the PASS-side one rises as the cut ``c`` rises. The lower
        bound is the last cut below the first one the FAIL side no longer rejects, the upper the
        first cut the PASS side rejects (rounded outwards: the exact bounds lie within one grid
        step inside); -100 % and infinity when the grid's ends are still in the sequence. The
        estimate is where the mean score crosses 1/2, interpolated between cuts.
        """
        if self.n == 0:
            return None, -1.0, math.inf
        cuts, threshold = self._cuts, self.log_threshold
        fail, passing = self._sides()
        kept = int(np.argmax(fail < threshold)) if (fail < threshold).any() else cuts.size
        lower = -1.0 if kept == 0 else math.expm1(float(cuts[kept - 1]))
        upper = self._first_rejected(passing, threshold)
        mean = self._grid_scores / self.n  # falls from about 1 to about 0 as the cut rises
        below = np.flatnonzero(mean <= 0.5)
        if below.size == 0:
            estimate = math.expm1(float(cuts[-1]))
        elif below[0] == 0:
            estimate = math.expm1(float(cuts[0]))
        else:
            j = int(below[0])
            c0, c1, m0, m1 = cuts[j - 1], cuts[j], mean[j - 1], mean[j]
            c = c1 if m0 == m1 else c0 + (m0 - 0.5) * (c1 - c0) / (m0 - m1)
            estimate = math.expm1(float(c))
        return estimate, lower, upper

    def pass_upper(self) -> float:
        """The upper bound of the shift at the PASS level (``pass_alpha``, one-sided), read off
        the same grid: at most the margin once the PASS side rejects it."""
        if self.n == 0:
            return math.inf
        return self._first_rejected(self._sides()[1], self.pass_log_threshold)

    def _sides(self) -> tuple[FloatArray, FloatArray]:
        """The FAIL-side and PASS-side log e-values at every cut of the grid."""
        self._fold()
        log_weights = np.log(self.weights)[:, None]
        fail = np.logaddexp.reduce(self._grid_fail + log_weights, axis=0)
        passing = np.logaddexp.reduce(self._grid_pass + log_weights, axis=0)
        return fail, passing

    def _first_rejected(self, passing: FloatArray, threshold: float) -> float:
        rejected = np.flatnonzero(passing >= threshold)
        return math.expm1(float(self._cuts[rejected[0]])) if rejected.size else math.inf

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
            status = (
                f"within the tolerated {fmt_shift(self.margin)} after {n} canary samples "
                f"({fmt_level(1.0 - self.pass_alpha)} upper bound {fmt_shift(self.pass_upper())})"
            )
        else:
            status = f"no decision after {n} canary samples"
        p_slower = "n/a" if slower is None else f"{slower:.2f}"
        sentence = (
            f"latency {fmt_shift(estimate)} (median canary/baseline ratio; {fmt_level(level)} CS "
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
            baseline_n=self.baseline_n,
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
