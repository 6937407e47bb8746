"""A Flagger-style threshold judge, for comparison and for users who want plain thresholds.

Every ``check_interval_s`` (60 s) the canary's traffic over that interval is checked against
fixed limits: success rate (share of non-5xx answers, in %) at least ``success_rate_min`` and
latency p99 at most ``p99_max_ms`` (and, optionally, at most ``p99_max_ratio`` times the
baseline's p99 over the same interval). An interval without canary traffic counts as a failed
check, as in Flagger. Failed checks are cumulative; at ``threshold`` failed checks the verdict is
FAIL (Flagger rolls back); after ``checks_to_pass`` successful checks it is PASS (Flagger's
promotion after maxWeight/stepWeight steps). The baseline plays no part unless
``p99_max_ratio`` is set: that is the weakness the sequential judge answers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from stageless.analysis.pairing import Interval, Pairer
from stageless.analysis.protocol import IntervalJudge
from stageless.analysis.steps import Aggregate, Steps
from stageless.analysis.verdict import Decision, Evidence, Verdict


@dataclass(frozen=True, slots=True)
class ThresholdConfig:
    """Settings of :class:`ThresholdJudge` (Flagger's defaults and examples)."""

    check_interval_s: float = 60.0
    success_rate_min: float = 99.0
    p99_max_ms: float | None = 500.0
    p99_max_ratio: float | None = None
    threshold: int = 5
    checks_to_pass: int = 25  # stepWeight 2 to maxWeight 50
    max_lag_s: float = 30.0
    service: str | None = None
    route: str | None = None


@dataclass(slots=True)
class _Check:
    name: str
    failed: int = 0
    total: int = 0
    last: float = math.nan


class ThresholdJudge(IntervalJudge):
    """Cumulative failed checks against fixed limits, per check interval."""

    def __init__(self, config: ThresholdConfig | None = None) -> None:
        self.config = config if config is not None else ThresholdConfig()
        c = self.config
        super().__init__(Pairer(c.max_lag_s, service=c.service, route=c.route))
        self.steps = Steps(c.check_interval_s)
        self.checked = 0
        self.failed_checks = 0
        self.passed_checks = 0
        self.success = _Check("success_rate")
        self.latency = _Check("latency_p99")

    def judge_interval(self, interval: Interval) -> Verdict:
        self.steps.add(interval)
        done = self.steps.completed(self.end_ts if self.end_ts is not None else interval.ts)
        for base, canary in self.steps.pairs(self.checked, done):
            if self._check(base, canary):
                self.passed_checks += 1
            else:
                self.failed_checks += 1
            self.checked += 1
            if self.failed_checks >= self.config.threshold:
                return Verdict.FAIL
            if self.passed_checks >= self.config.checks_to_pass:
                return Verdict.PASS
        return Verdict.CONTINUE

    def _check(self, base: Aggregate, canary: Aggregate) -> bool:
        c = self.config
        ok = True
        rate = 100.0 * (1.0 - canary.error_rate) if canary.requests else math.nan
        self.success.total += 1
        self.success.last = rate
        if math.isnan(rate) or rate < c.success_rate_min:
            self.success.failed += 1
            ok = False
        if c.p99_max_ms is not None or c.p99_max_ratio is not None:
            p99 = canary.quantile(0.99)
            limit = c.p99_max_ms if c.p99_max_ms is not None else math.inf
            if c.p99_max_ratio is not None:
                limit = min(limit, c.p99_max_ratio * base.quantile(0.99))
            self.latency.total += 1
            self.latency.last = p99
            if math.isnan(p99) or not p99 <= limit:
                self.latency.failed += 1
                ok = False
        return ok

    def decision(self) -> Decision:
        c = self.config
        evidence = [
            _evidence(self.success, f"success rate (min {c.success_rate_min:g}%)", "%"),
        ]
        if self.latency.total:
            evidence.append(_evidence(self.latency, "latency p99", " ms"))
        summary = (
            f"{self.current}: {self.failed_checks} of {self.checked} checks failed "
            f"(rollback at {c.threshold}, promotion after {c.checks_to_pass} good checks) "
            f"after {self.canary_requests:,} canary requests"
        )
        return self.base_decision(self.current, tuple(evidence), summary)


def _evidence(check: _Check, label: str, unit: str) -> Evidence:
    last = "no data" if math.isnan(check.last) else f"{check.last:.4g}{unit}"
    return Evidence(
        metric=check.name,
        verdict=Verdict.FAIL if check.failed else Verdict.PASS,
        effect="failed checks",
        estimate=float(check.failed),
        lower=None,
        upper=None,
        level=None,
        margin=None,
        e_value=None,
        threshold=None,
        p_value=None,
        canary=float(check.failed),
        baseline=0.0,
        canary_n=float(check.total),
        baseline_n=0.0,
        sentence=f"{label}: {check.failed} of {check.total} checks failed; last {last}",
    )
