"""Error rate (A1): is the canary's 5xx rate higher than the baseline's, beyond a tolerated ratio?

Events are errors (5xx answers and connection failures; 4xx are the client's and not judged).
Each interval is conditioned on its observed request split ``n_canary / (n_canary +
n_baseline)``, not on the configured share, so the test stays valid when the share changes
between steps, when load varies, and when the router's split is noisy. FAIL when the one-sided
e-value against ``ratio <= null_ratio`` reaches 1/alpha; PASS (for this metric) when the
e-value against ``ratio >= margin`` reaches 1/pass_alpha, i.e. the upper confidence-sequence
bound at the PASS level is below it.
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


class ErrorRateTest:
    """The sequential error-rate test over paired intervals."""

    name = "errors"

    def __init__(
        self,
        alpha: float,
        *,
        null_ratio: float = 1.0,
        margin: float = 1.5,
        pass_alpha: float | None = None,
    ) -> None:
        self.test = CountTest(alpha, null_ratio=null_ratio, margin=margin, pass_alpha=pass_alpha)

    @property
    def failed(self) -> bool:
        return self.test.failed

    @property
    def passed(self) -> bool:
        return self.test.passed

    def add(self, interval: Interval) -> None:
        base, canary = interval.baseline, interval.canary
        self.test.add(
            canary.errors if canary else 0,
            base.errors if base else 0,
            canary.requests if canary else 0,
            base.requests if base else 0,
        )
        self.test.check()

    def evidence(self) -> Evidence:
        return count_evidence(self.test, self.name, "error rate", "requests")


def count_evidence(test: CountTest, metric: str, label: str, unit: str) -> Evidence:
    """Evidence and its sentence for a one-sided count test (errors, tail exceedances).

    A test without a margin is fail-only (it has no PASS side), and its sentence says so while
    it has not failed.
    """
    s = test.summary()
    rate_c = test.canary_events / test.canary_n if test.canary_n else None
    rate_b = test.baseline_events / test.baseline_n if test.baseline_n else None
    level = 1.0 - 2.0 * test.alpha
    verdict = Verdict.FAIL if test.failed else Verdict.PASS if test.passed else Verdict.CONTINUE
    n = fmt_count(test.canary_n)
    if verdict is Verdict.FAIL:
        status = f"fail after {n} canary {unit}"
    elif verdict is Verdict.PASS:
        status = (
            f"within the tolerated {fmt_ratio(test.margin)}x after {n} canary {unit} "
            f"({fmt_level(1.0 - test.pass_alpha)} upper bound {fmt_ratio(s.pass_upper)})"
        )
    elif test.margin is None:
        status = (
            f"no regression shown after {n} canary {unit} (fail-only: a PASS does not wait for it)"
        )
    else:
        status = f"no decision after {n} canary {unit}"
    sentence = (
        f"{label} {fmt_percent(rate_c)} vs {fmt_percent(rate_b)} (ratio {fmt_ratio(s.estimate)}, "
        f"{fmt_level(level)} CS {fmt_ratio(s.lower)} to {fmt_ratio(s.upper)}): {status}"
    )
    return Evidence(
        metric=metric,
        verdict=verdict,
        effect="ratio",
        estimate=s.estimate,
        lower=s.lower,
        upper=s.upper,
        level=level,
        margin=test.margin,
        e_value=test.e_value,
        threshold=1.0 / test.alpha,
        p_value=test.p_value,
        canary=test.canary_events,
        baseline=test.baseline_events,
        canary_n=test.canary_n,
        baseline_n=test.baseline_n,
        sentence=sentence,
    )
