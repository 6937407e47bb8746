"""A1: the conditional count test, shared by the error-rate, tail, histogram-latency and SRM tests.

Per batch, the events of both arms (errors, exceedances, users...) and the canary's share of the
exposure in that batch (the observed request split, the sample split, the configured share).
Conditional on the batch's event total, each event is the canary's with probability
``theta = share·r / (share·r + 1 - share)``, where ``r`` is the ratio of the canary's rate to the
baseline's. The e-values are finite mixtures over ``r`` (see :class:`RatioGrid`):

* FAIL side: null ``r <= null_ratio``, mixture over ratios above it;
* PASS side: null ``r >= margin``, mixture over ratios below it (its rejection is the PASS, at
  its own level ``pass_alpha``, which the judge does not split among metrics);
* two-sided (SRM): null ``r = 1``.

The test is valid whatever the share does between batches and however load moves, because
every batch is judged on its own split; under ``r = 1`` the within-batch count is
hypergeometric, which is less spread than the binomial the e-value assumes, so the e-value stays
a supermartingale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from stageless.analysis.evalue import DEFAULT_SCALE, RatioGrid


@dataclass(frozen=True, slots=True)
class RatioSummary:
    """The expensive part of a count test's evidence, computed only when asked."""

    estimate: float | None
    lower: float
    upper: float
    pass_upper: float  # the upper bound at the PASS level (one-sided); inf without a margin


class CountTest:
    """Incremental A1 test of a rate ratio with a FAIL null, an optional PASS margin."""

    def __init__(
        self,
        alpha: float,
        *,
        null_ratio: float = 1.0,
        margin: float | None = None,
        two_sided: bool = False,
        scale: float = DEFAULT_SCALE,
        pass_alpha: float | None = None,
    ) -> None:
        points = [1.0, null_ratio] + ([margin] if margin is not None else [])
        self.grid = RatioGrid(points, scale)
        self.alpha = alpha
        self.log_threshold = math.log(1.0 / alpha)
        self.pass_alpha = alpha if pass_alpha is None else pass_alpha
        self.pass_log_threshold = math.log(1.0 / self.pass_alpha)
        self.null_ratio = null_ratio
        self.margin = margin
        self.side = "two" if two_sided else "greater"
        self._null = self.grid.index(null_ratio)
        self._margin = self.grid.index(margin) if margin is not None else -1
        self.canary_n = 0.0
        self.baseline_n = 0.0
        self.log_e_now = 0.0
        self.log_e_max = 0.0
        self.failed = False
        self.passed = False

    @property
    def canary_events(self) -> float:
        return self.grid.canary_events

    @property
    def baseline_events(self) -> float:
        return self.grid.baseline_events

    def add(self, canary: float, baseline: float, canary_n: float, baseline_n: float) -> None:
        """One batch: events per arm and exposure per arm (the share is ``canary_n / total``)."""
        total = canary_n + baseline_n
        self.canary_n += canary_n
        self.baseline_n += baseline_n
        self.grid.add(canary, baseline, canary_n / total if total > 0 else 0.0)

    def add_share(self, canary: float, baseline: float, share: float) -> None:
        """One batch whose canary share is known (the configured split), not observed."""
        self.canary_n += canary
        self.baseline_n += baseline
        self.grid.add(canary, baseline, share)

    def check(self) -> None:
        """Update the e-values after a batch; FAIL and PASS, once reached, stay reached."""
        self.log_e_now = self.grid.log_e(self._null, self.side)
        self.log_e_max = max(self.log_e_max, self.log_e_now)
        if self.log_e_now >= self.log_threshold:
            self.failed = True
        if self._margin >= 0 and not self.passed:
            self.passed = self.grid.log_e(self._margin, "less") >= self.pass_log_threshold

    @property
    def e_value(self) -> float:
        return math.exp(min(self.log_e_now, 700.0))

    @property
    def p_value(self) -> float:
        return min(1.0, math.exp(-self.log_e_max))

    def summary(self) -> RatioSummary:
        """Estimate and confidence-sequence bounds (each side at this test's alpha), and the
        upper bound at the PASS level (below the margin once the PASS side rejects it)."""
        upper = self.grid.upper_bound(self.log_threshold)
        if self.margin is None:
            pass_upper = math.inf
        elif self.pass_log_threshold == self.log_threshold:
            pass_upper = upper
        else:
            pass_upper = self.grid.upper_bound(self.pass_log_threshold)
        return RatioSummary(
            estimate=self.grid.estimate(),
            lower=self.grid.lower_bound(self.log_threshold),
            upper=upper,
            pass_upper=pass_upper,
        )
