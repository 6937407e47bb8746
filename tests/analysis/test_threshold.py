"""The Flagger-style threshold judge."""

from __future__ import annotations

from stageless.analysis.batch import Version
from stageless.analysis.threshold import ThresholdConfig, ThresholdJudge
from stageless.analysis.verdict import Verdict

from .factories import batch
from .simulate import Scenario, batches


def test_a_healthy_canary_at_low_traffic_is_rolled_back_by_absolute_thresholds() -> None:
    # At 1 % of 100 rps, a 1 % error rate often shows as < 99 % success in a minute.
    judge = ThresholdJudge()
    assert judge.observe_many(batches(Scenario(share=0.01), 1)) is Verdict.FAIL
    assert judge.failed_checks == 5
    assert "5 of" in judge.decision().summary


def test_a_canary_within_limits_is_promoted_after_enough_good_checks() -> None:
    judge = ThresholdJudge(ThresholdConfig(success_rate_min=90.0, checks_to_pass=10))
    assert judge.observe_many(batches(Scenario(share=0.10), 2)) is Verdict.PASS
    assert judge.passed_checks == 10
    evidence = judge.decision().metrics
    assert [e.metric for e in evidence] == ["success_rate", "latency_p99"]


def test_no_canary_traffic_counts_as_failed_checks() -> None:
    judge = ThresholdJudge(ThresholdConfig(threshold=3))
    for i in range(30):
        judge.observe(batch(Version.STABLE, ts=10.0 * i, requests=900))
    judge.flush()
    assert judge.verdict() is Verdict.FAIL
    assert "no data" in judge.decision().metrics[0].sentence


def test_the_p99_limit_can_be_relative_to_the_baseline() -> None:
    judge = ThresholdJudge(
        ThresholdConfig(success_rate_min=0.0, p99_max_ms=None, p99_max_ratio=1.2)
    )
    assert judge.observe_many(batches(Scenario(share=0.10, slowdown=1.5), 3)) is Verdict.FAIL
    assert judge.latency.failed == 5
