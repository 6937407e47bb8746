"""Sample ratio mismatch: does the split of new users match the configured share?

Assignment is sticky per user, so requests cluster and a request-level check would cry wolf. A
per-interval count of distinct users (the batch's ``users``) clusters too: a user active over
many intervals is counted in each, so the interval counts are strongly dependent and a count test
on them mistakes chance for a broken split (the canary benchmark saw 40-85 % INVALID in A/A runs).

So the check counts each user once per step: the batch's ``new_users``, the users first seen in
the current step (since it started or the split last changed) in that interval. Under a sound
split each new user is an independent draw that is the canary's with probability
``configured_canary / (configured_canary + configured_baseline)`` (each batch's own
``configured_share``), whatever the user does later, and whether it arrives does not depend on
its version; so given an interval's total of new users, the canary's count is binomial and the
two-sided A1 test of ``ratio = 1`` is valid, checked after every interval. A rejection makes the
comparison INVALID: the verdict says so with this evidence, and the rollout's policy decides.

Without ``new_users`` (Prometheus, an older proxy) there is no valid count to test: the check
gathers no evidence, says so in its sentence ("split check off"), and never blocks a PASS.
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
        self.skipped = 0  # intervals whose batches carry no new_users count

    @property
    def failed(self) -> bool:
        return self.test.failed

    passed = False

    def add(self, interval: Interval) -> None:
        base, canary = interval.baseline, interval.canary
        if base is None or canary is None:
            return  # a missing batch is a delivery problem, not evidence of a broken split
        if base.new_users is None or canary.new_users is None:
            # Per-interval ``users`` repeat long-lived users: counting them would be invalid.
            self.skipped += 1
            return
        total = base.configured_share + canary.configured_share
        if total <= 0:
            return
        share = canary.configured_share / total
        self.configured_sum += share
        self.configured_n += 1
        self.test.add_share(canary.new_users, base.new_users, share)
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
        if self.configured_n == 0 and self.skipped:
            sentence = "split check off: batches carry no new_users count"
        else:
            sentence = (
                f"users' split {fmt_percent(observed, 2)} canary vs {fmt_percent(configured, 2)} "
                f"configured over {fmt_count(users)} new users (odds ratio "
                f"{fmt_ratio(s.estimate)}, {fmt_level(level)} CS {fmt_ratio(s.lower)} to "
                f"{fmt_ratio(s.upper)}): {status}"
            )
            if self.skipped:
                sentence += (
                    f"; {fmt_count(self.skipped)} intervals without a new_users count not checked"
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
