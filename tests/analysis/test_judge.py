"""The sequential judge end to end: verdicts, minimum evidence, budgets, pairing, explanations."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest

from stageless.analysis import (
    Judge,
    JudgeConfig,
    KayentaJudge,
    SequentialJudge,
    ThresholdJudge,
    Verdict,
)
from stageless.analysis.batch import TrafficClass, Version

from .factories import batch
from .simulate import Scenario, batches


def run(scenario: Scenario, seed: int, config: JudgeConfig | None = None) -> SequentialJudge:
    judge = SequentialJudge(config)
    judge.observe_many(batches(scenario, seed))
    judge.flush()
    return judge


def test_every_judge_follows_the_protocol() -> None:
    for judge in (SequentialJudge(), KayentaJudge(), ThresholdJudge()):
        assert isinstance(judge, Judge)
        assert judge.verdict() is Verdict.CONTINUE


def test_a_good_canary_passes_and_a_a_rarely_fails() -> None:
    verdicts = Counter(run(Scenario(share=0.05), seed).verdict() for seed in range(40))
    assert verdicts[Verdict.FAIL] + verdicts[Verdict.INVALID] <= 4
    assert verdicts[Verdict.PASS] >= 36, verdicts


def test_a_doubled_error_rate_fails_with_a_sentence_a_person_can_read() -> None:
    judge = run(Scenario(share=0.10, error_ratio=2.0), 1)
    assert judge.verdict() is Verdict.FAIL
    decision = judge.decision()
    errors = next(e for e in decision.metrics if e.metric == "errors")
    assert errors.verdict is Verdict.FAIL
    assert errors.lower is not None
    assert errors.lower > 1.0
    assert errors.e_value is not None
    assert errors.e_value >= 50.0
    assert decision.summary.startswith("FAIL: error rate ")
    assert f"fail after {decision.canary_requests:,} canary requests" in decision.summary
    assert [e.metric for e in decision.metrics] == [
        "errors",
        "latency",
        "tail",
        "tail_extreme",
        "srm",
    ]


@pytest.mark.parametrize(
    ("scenario", "metric", "metrics"),
    [
        (Scenario(share=0.10, slowdown=1.5), "latency", ("errors", "latency", "tail")),
        # A tail-only regression also makes the canary slower than the baseline a little more
        # often than not, which the latency test may see first; without it, the tail test
        # catches the regression on its own.
        (Scenario(share=0.10, tail_share=0.03), "tail", ("errors", "tail")),
    ],
)
def test_latency_and_tail_regressions_fail_on_their_metric(
    scenario: Scenario, metric: str, metrics: tuple[str, ...]
) -> None:
    decision = run(scenario, 2, JudgeConfig(metrics=metrics)).decision()
    assert decision.verdict is Verdict.FAIL
    failed = [e.metric for e in decision.metrics if e.verdict is Verdict.FAIL]
    assert metric in failed


def test_a_broken_split_is_invalid_with_the_reason() -> None:
    judge = run(Scenario(share=0.05, user_share=0.04), 3)
    decision = judge.decision()
    assert decision.verdict is Verdict.INVALID
    assert decision.summary.startswith("INVALID: users' split 3.")
    assert "canary vs 5.00% configured" in decision.summary
    assert "the split is broken" in decision.summary


def test_no_data_is_never_a_pass() -> None:
    judge = SequentialJudge()
    assert judge.flush() is Verdict.CONTINUE
    assert "no data" in judge.decision().summary
    # Baseline traffic only, until the time budget ends: INCONCLUSIVE, never PASS.
    config = JudgeConfig(max_duration_s=600.0)
    judge = SequentialJudge(config)
    for i in range(100):
        judge.observe(batch(Version.STABLE, ts=10.0 * i, requests=900, users=700))
    judge.flush()
    decision = judge.decision()
    assert decision.verdict is Verdict.INCONCLUSIVE
    assert "the time budget of 600 s ended" in decision.summary
    assert "no canary traffic" in decision.summary


def test_pass_waits_for_the_minimum_evidence() -> None:
    quick = run(Scenario(share=0.10), 4, JudgeConfig(min_canary_requests=1, min_duration_s=0))
    slow = run(Scenario(share=0.10), 4, JudgeConfig(min_canary_requests=20_000))
    assert quick.verdict() is Verdict.PASS
    assert slow.verdict() is Verdict.PASS
    assert slow.canary_requests >= 20_000 > quick.canary_requests


def test_the_traffic_budget_ends_in_inconclusive_with_what_is_undecided() -> None:
    judge = run(Scenario(share=0.05), 5, JudgeConfig(max_canary_requests=300))
    decision = judge.decision()
    assert decision.verdict is Verdict.INCONCLUSIVE
    assert "the traffic budget of 300 canary requests ended" in decision.summary
    assert "undecided: errors" in decision.summary


def test_other_traffic_classes_and_routes_are_ignored_and_counted() -> None:
    judge = SequentialJudge(JudgeConfig(route="/"))
    judge.observe(batch(Version.CANDIDATE, traffic_class=TrafficClass.TESTER, errors=100))
    judge.observe(batch(Version.STABLE, traffic_class=TrafficClass.SHADOW))
    judge.observe(batch(Version.CANDIDATE, route="/admin", errors=100))
    judge.flush()
    decision = judge.decision()
    assert decision.batches == 3
    assert decision.ignored_batches == 3
    assert decision.canary_requests == 0


def test_arrival_order_does_not_matter() -> None:
    scenario = Scenario(share=0.10, error_ratio=1.6)
    in_order = list(batches(scenario, 6, 300))
    rng = np.random.default_rng(0)
    # Canary first in every interval, and intervals delivered out of order within a minute.
    shuffled = [in_order[i + 1 - j] for i in range(0, len(in_order), 2) for j in (0, 1)]
    blocks = [shuffled[i : i + 12] for i in range(0, len(shuffled), 12)]
    jumbled = [b for block in blocks for b in rng.permutation(np.array(block, dtype=object))]
    a, b = SequentialJudge(), SequentialJudge()
    a.observe_many(in_order)
    b.observe_many(jumbled)
    a.flush()
    b.flush()
    assert a.verdict() is b.verdict()
    assert a.canary_requests == b.canary_requests or a.verdict().final


def test_a_final_verdict_sticks_and_later_batches_are_only_counted() -> None:
    judge = SequentialJudge()
    stream = list(batches(Scenario(share=0.10, error_ratio=3.0), 7))
    verdict = judge.observe_many(stream)
    assert verdict is Verdict.FAIL
    before = judge.decision()
    for b in stream[-20:]:
        assert judge.observe(b) is Verdict.FAIL
    after = judge.decision()
    assert after.canary_requests == before.canary_requests
    assert judge.batches_after_decision == 20


def test_the_decision_serialises_to_json() -> None:
    decision = run(Scenario(share=0.05), 8).decision()
    data = json.loads(json.dumps(decision.to_json()))
    assert data["verdict"] == str(decision.verdict)
    assert {m["metric"] for m in data["metrics"]} == {
        "errors",
        "latency",
        "tail",
        "tail_extreme",
        "srm",
    }
    assert all(isinstance(m["sentence"], str) for m in data["metrics"])


def test_the_alpha_split_and_disabled_tests() -> None:
    config = JudgeConfig()
    shares = {t: config.alpha_for(t) for t in (*config.enabled_tests(), "tail_extreme")}
    # The fail-only extreme-tail test shares the tail's share with the p99 test.
    assert shares == pytest.approx(
        {"errors": 0.0225, "latency": 0.015, "tail": 0.00375, "tail_extreme": 0.00375, "srm": 0.005}
    )
    assert sum(shares.values()) == pytest.approx(0.05)
    no_extreme = replace(config, tail_extreme_quantile=None)
    shares = {t: no_extreme.alpha_for(t) for t in (*no_extreme.enabled_tests(), "tail_extreme")}
    assert shares == pytest.approx(
        {"errors": 0.0225, "latency": 0.015, "tail": 0.0075, "tail_extreme": 0.0, "srm": 0.005}
    )
    assert sum(shares.values()) == pytest.approx(0.05)
    only_errors = replace(config, metrics=("errors",), srm=False)
    assert only_errors.alpha_for("errors") == pytest.approx(0.05)
    judge = run(Scenario(share=0.10), 9, only_errors)
    assert [e.metric for e in judge.decision().metrics] == ["errors"]
    assert judge.verdict() is Verdict.PASS


def test_every_metric_passes_at_the_unsplit_pass_level() -> None:
    # Same batches; only the PASS level differs. Each metric's PASS test gets pass_alpha whole.
    judge = run(Scenario(share=0.05), 7)
    tests = {t.name: t for t in judge.metrics}
    assert tests["errors"].test.pass_alpha == 0.05  # type: ignore[attr-defined]
    assert tests["errors"].test.alpha == pytest.approx(0.0225)  # type: ignore[attr-defined]
    strict = run(Scenario(share=0.05), 7, JudgeConfig(pass_alpha=0.0075))
    lax = run(Scenario(share=0.05), 7)
    assert lax.verdict() is Verdict.PASS and strict.verdict() is Verdict.PASS
    assert lax.canary_requests < strict.canary_requests  # 3,393 and 8,835 on this seed
