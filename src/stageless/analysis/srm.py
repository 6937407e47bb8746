"""Sample ratio mismatch: does the split of distinct users match the configured share?

Assignment is sticky per user, so requests cluster and a request-level check would cry wolf;
the check counts distinct users per interval (the batch's ``users`` field). In each interval,
a user is the canary's with probability ``configured_canary / (configured_canary +
configured_baseline)`` (each batch's own ``configured_share``, so share changes between steps are
followed). A two-sided A1 test of ``ratio = 1`` on those counts; a rejection makes the comparison
INVALID: the verdict says so with this evidence, and the rollout's policy decides what to do.

Caveat: ``users`` counts distinct users within one interval; a user active over many intervals is
counted in each. The test treats those counts as independent, which overstates the evidence when
most traffic comes from a few long-lived users. Its share of alpha keeps it conservative.
"""

from __future__ import annotations

from stageless.analysis.counts import CountTest
from stageless.analysis.pairing import Interval
from stageless.analysis.verdict import (
    Evidence,
    Verdict,
    fmt_count,
    fmt_level,
    fmt_percent,
    fmt_ratio,
)

#: Mixing spread over ln(ratio): mismatches worth flagging are small (a 5 % share seen as 4.5 %).
SRM_SCALE = 0.25


class SampleRatioTest:
    """Two-sided, sequential check of the users' split against the configured one."""

    name = "srm"

    def __init__(self, alpha: float) -> None:
        self.test = CountTest(alpha, null_ratio=1.0, two_sided=True, scale=SRM_SCALE)
        self.configured_sum = 0.0
        self.configured_n = 0

    @property
    def failed(self) -> bool:
        return self.test.failed

    passed = False

    def add(self, interval: Interval) -> None:
        base, canary = interval.baseline, interval.canary
        if base is None or canary is None:
            return  # a missing batch is a delivery problem, not evidence of a broken split
        total = base.configured_share + canary.configured_share
        if total <= 0:
            return
        share = canary.configured_share / total
        self.configured_sum += share
        self.configured_n += 1
        self.test.add_share(canary.users, base.users, share)
        self.test.check()

    def evidence(self) -> Evidence:
        s = self.test.summary()
        users = self.test.canary_n + self.test.baseline_n
        observed = self.test.canary_n / users if users else None
        configured = self.configured_sum / self.configured_n if self.configured_n else None
        level = 1.0 - 2.0 * self.test.alpha
        verdict = Verdict.INVALID if self.test.failed else Verdict.CONTINUE
        status = (
            "the split is broken; the comparison is invalid"
            if self.test.failed
            else "no mismatch detected"
        )
        sentence = (
            f"users' split {fmt_percent(observed, 2)} canary vs {fmt_percent(configured, 2)} "
            f"configured over {fmt_count(users)} user-intervals (odds ratio "
            f"{fmt_ratio(s.estimate)}, {fmt_level(level)} CS {fmt_ratio(s.lower)} to "
            f"{fmt_ratio(s.upper)}): {status}"
        )
        return Evidence(
            metric=self.name,
            verdict=verdict,
            effect="odds ratio",
            estimate=s.estimate,
            lower=s.lower,
            upper=s.upper,
            level=level,
            margin=None,
            e_value=self.test.e_value,
            threshold=1.0 / self.test.alpha,
            p_value=self.test.p_value,
            canary=self.test.canary_n,
            baseline=self.test.baseline_n,
            canary_n=self.test.canary_n,
            baseline_n=self.test.baseline_n,
            sentence=sentence,
        )
