"""The fail-only extreme-tail test (exceedances of the baseline's p99.9) in a verdict."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from stageless.analysis import JudgeConfig, SequentialJudge
from stageless.analysis.batch import Histogram, Version
from stageless.analysis.judge import build_tests
from stageless.analysis.tail import EXTREME_SCALE, ExceedanceTest, ExtremeTailTest
from stageless.analysis.verdict import Verdict
from stageless.errors import ValidationError

from .factories import batch, interval, latency_interval


def lognormal(rng: np.random.Generator, size: int) -> np.ndarray:
    return 100.0 * np.exp(0.5 * rng.standard_normal(size))


def extreme(
    threshold_ms: float | None = None, *, tail: ExceedanceTest | None = None
) -> ExtremeTailTest:
    exceedance = ExceedanceTest(
        0.00375, quantile=0.999, margin=None, threshold_ms=threshold_ms, scale=EXTREME_SCALE
    )
    return ExtremeTailTest(exceedance, tail)


def test_the_threshold_waits_for_ten_thousand_baseline_latencies() -> None:
    # 10 / (1 - 0.999) = 10,000 observations: the 60 s warm-up is extended until then.
    rng = np.random.default_rng(30)
    test = extreme()
    warm = []
    for i in range(12):
        base = lognormal(rng, 900)
        warm.append(base)
        test.add(latency_interval(lognormal(rng, 10), base, ts=10.0 * i))
        assert test.exceedance.ready is (sum(b.size for b in warm) >= 10_000)
        if not test.exceedance.ready:
            assert "p99.9 from at least 10,000 latencies over at least 60 s" in (
                test.evidence().sentence
            )
    assert test.exceedance.threshold_ms == np.quantile(np.concatenate(warm), 0.999)
    assert test.exceedance.test.canary_n == 0  # the warm-up is not judged


def test_a_regression_that_hits_a_few_requests_hard_fails_and_reads_clearly() -> None:
    rng = np.random.default_rng(31)
    slow, clean = extreme(), extreme()
    for i in range(60):
        base = lognormal(rng, 990)
        canary = lognormal(rng, 10)
        hit = canary + 500.0 * (rng.random(10) < 0.02) if i >= 12 else canary
        slow.add(latency_interval(hit, base, ts=10.0 * i))
        clean.add(latency_interval(canary, base, ts=10.0 * i))
    assert slow.failed
    assert not clean.failed
    evidence = slow.evidence()
    assert evidence.metric == "tail_extreme"
    assert evidence.verdict is Verdict.FAIL
    assert evidence.margin is None
    assert evidence.e_value is not None
    assert evidence.e_value >= 1 / 0.00375
    assert evidence.sentence.startswith("p99.9 exceedances (> ")
    assert evidence.estimate is not None
    assert evidence.estimate > 5.0  # about 2.1 % of canary latencies against 0.1 %
    assert "fail after" in evidence.sentence


def test_a_clean_canary_is_never_passed_by_it_and_the_sentence_says_why() -> None:
    rng = np.random.default_rng(32)
    test = extreme()
    for i in range(400):
        test.add(latency_interval(lognormal(rng, 100), lognormal(rng, 900), ts=10.0 * i))
    assert not test.failed
    assert not test.passed
    evidence = test.evidence()
    assert evidence.verdict is Verdict.CONTINUE
    assert "no regression shown after" in evidence.sentence
    assert "fail-only: a PASS does not wait for it" in evidence.sentence


def test_from_histograms_it_snaps_to_a_bound_and_stops_when_that_is_the_p99_bound() -> None:
    le = (50.0, 100.0, 200.0, 400.0, 800.0, float("inf"))
    base = Histogram(le, (3000, 4000, 2890, 90, 15, 5))  # p99: 200 ms bound; p99.9: 800 ms
    # Prometheus-like bounds: cumulative 0.97 at 250 ms and 0.9994 at 500 ms, so the bound
    # nearest both the p99 and the p99.9 is 500 ms.
    coarse = Histogram((50.0, 100.0, 250.0, 500.0, float("inf")), (3000, 4000, 2700, 294, 6))

    def warm(test: ExtremeTailTest, tail: ExceedanceTest, hist: Histogram) -> None:
        for i in range(6):  # 60 s and 60,000 latencies: both thresholds fixed at the last
            stable = batch(Version.STABLE, ts=10.0 * i, requests=10_000, histogram=hist)
            tail.add(interval(None, stable, ts=10.0 * i))
            test.add(interval(None, stable, ts=10.0 * i))

    tail = ExceedanceTest(0.00375, quantile=0.99)
    fine = extreme(tail=tail)
    warm(fine, tail, base)
    assert (tail.threshold_ms, fine.exceedance.threshold_ms) == (200.0, 800.0)
    assert not fine.duplicate
    canary = Histogram(le, (10, 20, 10, 5, 3, 2))
    fine.add(
        interval(
            batch(Version.CANDIDATE, ts=60.0, requests=50, histogram=canary),
            batch(Version.STABLE, ts=60.0, requests=10_000, histogram=base),
            ts=60.0,
        )
    )
    counted = fine.exceedance.test
    assert (counted.canary_events, counted.baseline_events) == (2, 5)

    tail = ExceedanceTest(0.00375, quantile=0.99)
    same = extreme(tail=tail)
    warm(same, tail, coarse)
    assert tail.threshold_ms == same.exceedance.threshold_ms == 500.0
    assert same.duplicate
    evidence = same.evidence()
    assert evidence.verdict is Verdict.CONTINUE
    assert "not run, its threshold is the tail test's (500 ms" in evidence.sentence


def test_the_judge_fails_on_it_passes_without_it_and_can_switch_it_off() -> None:
    rng = np.random.default_rng(33)
    # These batches carry no errors, so judge latency and tail (and the split).
    config = JudgeConfig(metrics=("latency", "tail"), min_duration_s=0.0, min_canary_requests=1)
    hit, clean = SequentialJudge(config), SequentialJudge(config)
    for i in range(360):
        ts = 1_764_000_000.0 + 10.0 * i
        base = lognormal(rng, 990)
        canary = lognormal(rng, 10)
        slow = canary + 2_000.0 * (rng.random(10) < 0.05)
        for judge, samples in ((hit, slow), (clean, canary)):
            if judge.verdict().final:
                continue
            for version, arm, n in ((Version.STABLE, base, 990), (Version.CANDIDATE, samples, 10)):
                judge.observe(
                    batch(
                        version,
                        ts=ts,
                        requests=n,
                        users=n,
                        new_users=n // 10,
                        share=0.01 if version is Version.CANDIDATE else 0.99,
                        samples=arm.tolist(),
                    )
                )
    failed = hit.decision()
    assert failed.verdict is Verdict.FAIL
    assert "p99.9 exceedances (> " in failed.summary
    passed = clean.decision()
    assert passed.verdict is Verdict.PASS
    extreme_evidence = next(e for e in passed.metrics if e.metric == "tail_extreme")
    assert extreme_evidence.verdict is Verdict.CONTINUE  # the PASS did not wait for it

    off = replace(config, tail_extreme_quantile=None)
    assert [t.name for t in build_tests(off, None)] == ["latency", "tail", "srm"]
    no_tail = replace(config, metrics=("latency",))
    assert "tail_extreme" not in [t.name for t in build_tests(no_tail, None)]
    assert no_tail.alpha_for("tail_extreme") == 0.0


def test_its_settings_are_checked_with_their_paths() -> None:
    with pytest.raises(ValidationError) as info:
        JudgeConfig.from_mapping({"tail_extreme_quantile": 0.95}, where="plan.analysis")
    assert [(i.path, i.message) for i in info.value.issues] == [
        (
            "plan.analysis.tail_extreme_quantile",
            "0.95 is out of range; expected a quantile above tail_quantile (0.99) and below 1",
        )
    ]
    with pytest.raises(ValidationError) as info:
        JudgeConfig(tail_extreme_quantile=1.0, tail_extreme_threshold_ms=-3.0)
    assert [i.path for i in info.value.issues] == [
        "analysis.tail_extreme_quantile",
        "analysis.tail_extreme_threshold_ms",
    ]
    with pytest.raises(ValidationError) as info:
        JudgeConfig(tail_extreme_quantile=None, tail_extreme_threshold_ms=900.0)
    assert [i.path for i in info.value.issues] == ["analysis.tail_extreme_threshold_ms"]
    assert "the extreme-tail test is off" in info.value.issues[0].message
    config = JudgeConfig.from_mapping(
        {"tail_extreme_quantile": 0.9995, "tail_extreme_threshold_ms": 750}
    )
    assert (config.tail_extreme_quantile, config.tail_extreme_threshold_ms) == (0.9995, 750)
    assert JudgeConfig.from_mapping({"tail_extreme_quantile": None}).tail_extreme is False


latencies = st.lists(st.floats(min_value=1.0, max_value=5_000.0), min_size=0, max_size=30)
arms = st.lists(st.tuples(latencies, latencies), min_size=1, max_size=8)


def fixed(threshold_ms: float = 400.0) -> ExtremeTailTest:
    return extreme(threshold_ms)


@given(arms)
def test_e_values_are_non_negative_and_it_never_passes(
    intervals: list[tuple[list[float], list[float]]],
) -> None:
    test = fixed()
    for i, (canary, baseline) in enumerate(intervals):
        test.add(latency_interval(np.asarray(canary), np.asarray(baseline), ts=10.0 * i))
        evidence = test.evidence()
        assert evidence.e_value is not None
        assert evidence.e_value >= 0.0
        assert not math.isnan(evidence.e_value)
        assert evidence.verdict is not Verdict.PASS
        assert not test.passed


@given(arms)
def test_swapping_the_arms_mirrors_the_evidence_and_identical_arms_change_nothing(
    intervals: list[tuple[list[float], list[float]]],
) -> None:
    forward, swapped, same, same_swapped = fixed(), fixed(), fixed(), fixed()
    for i, (canary, baseline) in enumerate(intervals):
        y, x = np.asarray(canary), np.asarray(baseline)
        forward.add(latency_interval(y, x, ts=10.0 * i))
        swapped.add(latency_interval(x, y, ts=10.0 * i))
        same.add(latency_interval(y, y.copy(), ts=10.0 * i))
        same_swapped.add(latency_interval(y.copy(), y, ts=10.0 * i))
    grid, mirror = forward.exceedance.test.grid, swapped.exceedance.test.grid
    i0 = grid.index(1.0)
    assert grid.log_e(i0, "greater") == pytest.approx(mirror.log_e(i0, "less"), abs=1e-7)
    assert same.evidence() == same_swapped.evidence()
    assert not same.failed
