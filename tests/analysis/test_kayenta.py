"""The Kayenta-style judge: the Mann-Whitney interval against scipy, classification, scoring."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import mannwhitneyu

from stageless.analysis.kayenta import (
    Classification,
    KayentaConfig,
    KayentaJudge,
    KayentaMetric,
    classify,
    score,
)
from stageless.analysis.mannwhitney import shift_interval, z_statistic
from stageless.analysis.verdict import Verdict

from .simulate import Scenario, batches


def p_value(x: np.ndarray, y: np.ndarray) -> float:
    return float(mannwhitneyu(x, y, method="asymptotic", use_continuity=True).pvalue)


@pytest.mark.parametrize("seed", range(4))
def test_the_interval_ends_are_where_scipy_p_value_crosses_alpha(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(1.0, 1.0, 20 + 10 * seed)
    y = rng.normal(0.0, 1.0, 30)
    ci = shift_interval(x, y, 0.98)
    assert ci is not None
    assert ci.lower < ci.estimate < ci.upper
    eps = 1e-6
    # Outside the interval the shifted samples differ at 2 %; just inside they do not.
    assert p_value(x - (ci.lower - eps), y) < 0.02 <= p_value(x - (ci.lower + eps), y) + 1e-12
    assert p_value(x - (ci.upper + eps), y) < 0.02 <= p_value(x - (ci.upper - eps), y) + 1e-12
    # The estimate is close to Hodges-Lehmann's median of pairwise differences.
    assert ci.estimate == pytest.approx(np.median(np.subtract.outer(x, y)), abs=0.05)


def test_the_statistic_matches_scipy_with_ties() -> None:
    x = np.array([1.0, 2.0, 2.0, 3.0, 5.0])
    y = np.array([2.0, 2.0, 4.0, 4.0, 6.0, 7.0])
    z = z_statistic(x, y)
    from scipy.stats import norm

    assert 2 * norm.sf(abs(z)) == pytest.approx(p_value(x, y), rel=1e-12)


def test_a_hand_computed_case() -> None:
    # x = y + 10 exactly: every pairwise difference is 10, so is the estimate.
    y = np.arange(1.0, 9.0)
    ci = shift_interval(y + 10.0, y, 0.98)
    assert ci is not None
    assert ci.estimate == pytest.approx(10.0, abs=1e-6)
    assert ci.lower <= 10.0 <= ci.upper
    # No spread at all: sigma is 0, which Kayenta reports as an Error.
    assert shift_interval(np.ones(3), np.ones(3)) is None


def test_classification_follows_kayenta_rules() -> None:
    metric = KayentaMetric("m", "g", lambda a: a.error_rate)
    rng = np.random.default_rng(1)
    base = rng.normal(100.0, 5.0, 60)
    assert classify(metric, base + 30.0, base).outcome == "High"
    assert classify(metric, base - 30.0, base).outcome == "Pass"  # direction: increase
    either = KayentaMetric("m", "g", lambda a: a.error_rate, direction="either")
    assert classify(either, base - 30.0, base).outcome == "Low"
    assert classify(metric, base.copy(), base).outcome == "Pass"  # identical
    assert classify(metric, np.array([]), base).outcome == "Nodata"
    gated = KayentaMetric("m", "g", lambda a: a.error_rate, allowed_increase=1.5)
    assert classify(gated, base + 30.0, base).outcome == "Pass"  # mean ratio 1.3 < 1.5
    # Each series constant but different: a little noise makes the test possible.
    assert classify(metric, np.full(30, 2.0), np.full(30, 1.0)).outcome == "High"
    nan = KayentaMetric("m", "g", lambda a: a.error_rate, nan_strategy="replace")
    assert classify(nan, np.array([np.nan] * 5), np.zeros(5)).outcome == "Pass"


def test_scores_weight_groups_and_critical_failures_zero_them() -> None:
    config = KayentaConfig(group_weights={"errors": 60.0, "latency": 40.0})
    results = [
        Classification("error_rate", "Pass"),
        Classification("latency_p50", "High"),
        Classification("latency_p99", "Pass"),
    ]
    assert score(results, config) == (80.0, "")
    critical = [Classification("error_rate", "High", critical_failure=True), *results[1:]]
    assert score(critical, config) == (0.0, "a critical metric failed")
    nodata = [Classification(r.metric, "Nodata") for r in results]
    assert score(nodata, config) == (0.0, "no data")


FAST = KayentaConfig(lifetime_s=1800.0, judgment_interval_s=600.0)


def test_the_judge_fails_a_doubled_error_rate_at_its_first_judgment() -> None:
    judge = KayentaJudge(FAST)
    assert judge.observe_many(batches(Scenario(share=0.10, error_ratio=2.0), 1)) is Verdict.FAIL
    assert judge.duration_s == pytest.approx(600.0)
    decision = judge.decision()
    assert decision.summary.startswith("FAIL: score 0 (a critical metric failed) at judgment 1")
    assert decision.metrics[0].sentence.startswith("error_rate: High, shift")


def test_the_judge_passes_a_good_canary_at_the_end_of_its_lifetime() -> None:
    judge = KayentaJudge(FAST)
    assert judge.observe_many(batches(Scenario(share=0.10), 2)) is Verdict.PASS
    assert judge.duration_s == pytest.approx(1800.0)
    assert len(judge.judgments) == 3


def test_no_data_is_inconclusive_not_a_pass() -> None:
    judge = KayentaJudge(FAST)
    verdict = judge.observe_many(batches(Scenario(share=0.10, samples=False, error_rate=0.0), 3))
    assert verdict is Verdict.INCONCLUSIVE
    assert "(no data)" in judge.decision().summary
