"""B1 (a betting test of P(canary slower)) and the histogram variant: validity, power, ties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stageless.analysis.batch import Histogram, Version
from stageless.analysis.latency import (
    BET_WEIGHTS,
    BETS,
    LatencyTest,
    PairedLatencyTest,
    comparisons,
    scores,
)
from stageless.analysis.tail import ExceedanceTest
from stageless.analysis.verdict import Verdict, fmt_shift

from .factories import batch, interval, latency_interval

BUCKETS = (25.0, 50.0, 75.0, 100.0, 150.0, 200.0, 300.0, 500.0, 1000.0, float("inf"))


def lognormal(rng: np.random.Generator, size: tuple[int, ...], slowdown: float = 1.0) -> np.ndarray:
    return 100.0 * slowdown * np.exp(0.5 * rng.standard_normal(size))


def samples_to_fail_vectorised(
    canary: np.ndarray, baseline: np.ndarray, alpha: float
) -> np.ndarray:
    """Per run, the canary samples seen when the test first fails (0 if never).

    ``canary`` is (runs, intervals, m), ``baseline`` (runs, intervals, m·k): each canary sample
    against its own block of k baseline samples (the class's picks when the baseline has exactly
    m·k samples). An independent, vectorised re-implementation, checked against the class.
    """
    runs, intervals, m = canary.shape
    xs = baseline.reshape(runs, intervals, m, -1)
    y = canary[..., None]
    z = ((y > xs) + 0.5 * (y == xs)).mean(axis=3)  # (runs, intervals, m)
    lam = np.asarray(BETS)[:, None, None, None]
    wealth = np.cumsum(np.log1p(lam * (z[None] - 0.5)).sum(axis=3), axis=2)  # (bets, runs, T)
    log_e = np.log((np.asarray(BET_WEIGHTS)[:, None, None] * np.exp(wealth)).sum(axis=0))
    crossed = log_e >= np.log(1 / alpha)
    first = np.where(crossed.any(axis=1), crossed.argmax(axis=1), -1)
    return np.where(first >= 0, (first + 1) * m, 0)


def samples_to_fail(canary: np.ndarray, baseline: np.ndarray, alpha: float) -> int:
    """The same through :class:`PairedLatencyTest` (arrays are (intervals, size)); 0 if never."""
    test = PairedLatencyTest(alpha)
    for i in range(canary.shape[0]):
        test.add(latency_interval(canary[i], baseline[i], ts=10.0 * i))
        if test.failed:
            return int(test.n)
    return 0


def test_comparisons_use_disjoint_blocks_of_the_baseline() -> None:
    assert comparisons(10, 990) == (10, 32)  # capped
    assert comparisons(50, 950) == (50, 19)
    assert comparisons(100, 900) == (100, 9)
    assert comparisons(100, 60) == (60, 1)  # fewer baseline samples: one each
    assert comparisons(0, 10) == (0, 0)


def test_the_e_value_of_a_hand_computed_case() -> None:
    test = PairedLatencyTest(0.05, margin=0.10)
    # One canary sample against 4 baseline samples: above 3 of them, so Z = 3/4.
    test.add(latency_interval(np.array([2.0]), np.array([1.0, 3.0, 0.5, 1.0])))
    mean_bet = sum(w * b for w, b in zip(BET_WEIGHTS, BETS, strict=True))
    assert test.s_fail == 0.75
    assert math.exp(test.log_e_now) == pytest.approx(1.0 + 0.25 * mean_bet, rel=1e-12)
    # PASS side at the cut 1.1: still above 3 of 4 (2 > 1.1, 0.55, 1.1), Z' = 3/4.
    assert math.exp(test.log_e_pass) == pytest.approx(1.0 - 0.25 * mean_bet, rel=1e-12)
    # Two canary samples (1, 1) against blocks (1, 2) and (0.5, 4): a tie and a loss give
    # Z = 1/4, a win and a loss Z = 1/2. The product per bet is (1 + l/4)(1 - l/4)(1 + 0).
    test.add(latency_interval(np.array([1.0, 1.0]), np.array([1.0, 2.0, 0.5, 4.0, 1.0]), ts=10))
    assert test.n == 3
    assert test.baseline_n == 8
    assert test.s_fail == 0.75 + 0.25 + 0.5
    mean_square = sum(w * b * b for w, b in zip(BET_WEIGHTS, BETS, strict=True))
    assert math.exp(test.log_e_now) == pytest.approx(1.0 - mean_square / 16.0, rel=1e-12)
    assert test.log_e_max == pytest.approx(math.log(1.0 + 0.25 * mean_bet), rel=1e-12)


def test_the_class_and_the_vectorised_reference_agree() -> None:
    rng = np.random.default_rng(10)
    canary = lognormal(rng, (12, 60, 4), 1.15)
    baseline = lognormal(rng, (12, 60, 4 * 8))
    expected = samples_to_fail_vectorised(canary, baseline, 0.05)
    assert (expected > 0).sum() >= 6
    assert [samples_to_fail(canary[r], baseline[r], 0.05) for r in range(12)] == expected.tolist()


def test_a_a_false_fail_rate_is_at_most_alpha() -> None:
    rng = np.random.default_rng(11)
    runs, alpha, failed = 1000, 0.05, 0
    for _ in range(4):  # in parts, to bound memory
        failed += int(
            (
                samples_to_fail_vectorised(
                    lognormal(rng, (runs // 4, 300, 2)),
                    lognormal(rng, (runs // 4, 300, 2 * 16)),
                    alpha,
                )
                > 0
            ).sum()
        )
    # Binomial(1000, 0.05) exceeds 66 with probability about 1 %.
    assert failed <= 66, failed


def test_a_a_with_one_comparison_per_sample_stays_valid() -> None:
    rng = np.random.default_rng(18)
    failed = samples_to_fail_vectorised(
        lognormal(rng, (1000, 300, 10)), lognormal(rng, (1000, 300, 10)), 0.05
    )
    assert (failed > 0).sum() <= 66, (failed > 0).sum()


def test_a_a_with_heavy_ties_stays_valid() -> None:
    rng = np.random.default_rng(12)
    runs, alpha = 1000, 0.05
    # Latencies rounded to 25 ms: about one comparison in seven ties and counts one half.
    canary = np.round(lognormal(rng, (runs, 300, 2)) / 25) * 25
    baseline = np.round(lognormal(rng, (runs, 300, 2 * 8)) / 25) * 25
    assert (canary[..., None] == baseline.reshape(runs, 300, 2, 8)).mean() > 0.12
    assert (samples_to_fail_vectorised(canary, baseline, alpha) > 0).sum() <= 66


def test_random_tie_breaking_uses_the_generator_given() -> None:
    ties = np.full((1, 10), 100.0)
    one = PairedLatencyTest(0.05, rng=np.random.default_rng(1))
    two = PairedLatencyTest(0.05, rng=np.random.default_rng(1))
    half = PairedLatencyTest(0.05)
    for test in (one, two, half):
        test.add(latency_interval(ties[0], ties[0]))
    assert one.s_fail == two.s_fail
    assert one.s_fail in range(11)
    assert half.s_fail == 5.0
    assert half.log_e_now == 0.0  # identical arms: every score 1/2, no evidence either way


def test_a_20_percent_slowdown_is_detected_in_a_median_under_150_canary_samples() -> None:
    rng = np.random.default_rng(13)
    runs = 500
    # The judge's default share of alpha for latency is 0.3 x 0.05 = 0.015; 10 canary samples
    # per interval, each against 19 baseline samples (a 5 % share's proportions).
    found = samples_to_fail_vectorised(
        lognormal(rng, (runs, 60, 10), 1.2), lognormal(rng, (runs, 60, 10 * 19)), 0.015
    )
    assert (found > 0).mean() >= 0.98
    assert np.median(found[found > 0]) <= 150, np.median(found[found > 0])


def test_more_baseline_comparisons_decide_sooner_than_one() -> None:
    rng = np.random.default_rng(19)
    canary = lognormal(rng, (300, 60, 10), 1.2)
    baseline = lognormal(rng, (300, 60, 10 * 16))
    many = samples_to_fail_vectorised(canary, baseline, 0.015)
    one = samples_to_fail_vectorised(canary, baseline[..., ::16], 0.015)
    many_median = np.median(np.where(many > 0, many, np.inf))
    one_median = np.median(np.where(one > 0, one, np.inf))
    assert many_median * 1.5 <= one_median, (many_median, one_median)


def test_a_faster_canary_almost_never_fails() -> None:
    # The guarantee is at most alpha (5 %); a canary 10 % faster fails far less often than that,
    # only through an early run of bad luck in the first few intervals.
    rng = np.random.default_rng(14)
    found = samples_to_fail_vectorised(
        lognormal(rng, (500, 300, 4), 0.9), lognormal(rng, (500, 300, 4 * 8)), 0.05
    )
    assert (found > 0).sum() <= 2
    assert (found[found > 0] <= 100).all()


positive = st.floats(min_value=1.0, max_value=1e4, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.lists(positive, min_size=1, max_size=6), st.lists(positive, max_size=40)),
        min_size=1,
        max_size=6,
    ),
    st.floats(min_value=0.0, max_value=0.5),
)
def test_e_values_are_positive_and_a_larger_slowdown_never_fails_later(
    intervals: list[tuple[list[float], list[float]]], extra: float
) -> None:
    slow, slower = PairedLatencyTest(0.05), PairedLatencyTest(0.05)
    for i, (canary, baseline) in enumerate(intervals):
        y, x = np.asarray(canary), np.asarray(baseline)
        slow.add(latency_interval(y, x, ts=10.0 * i))
        slower.add(latency_interval(y * (1.0 + extra), x, ts=10.0 * i))
        for test in (slow, slower):
            assert math.isfinite(test.log_e_now)  # the e-value is positive and finite
            assert math.isfinite(test.log_e_pass)
        # Every score can only rise with the slowdown, so every bet's wealth, and the mixture.
        assert slower.log_e_now >= slow.log_e_now - 1e-9
        assert slower.failed or not slow.failed
        assert slow.passed or not slower.passed


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(positive, min_size=1, max_size=8), min_size=1, max_size=5), st.data())
def test_swapping_equal_sized_arms_swaps_the_sides(
    canaries: list[list[float]], data: st.DataObject
) -> None:
    # With one comparison per sample, the swapped test's scores are 1 - Z: its FAIL e-value is
    # the original's "canary faster" e-value (the PASS side at margin 0), exactly.
    forward = PairedLatencyTest(0.05, margin=0.0)
    swapped = PairedLatencyTest(0.05, margin=0.0)
    for i, canary in enumerate(canaries):
        baseline = data.draw(st.lists(positive, min_size=len(canary), max_size=len(canary)))
        y, x = np.asarray(canary), np.asarray(baseline)
        forward.add(latency_interval(y, x, ts=10.0 * i))
        swapped.add(latency_interval(x, y, ts=10.0 * i))
    assert swapped.log_e_now == pytest.approx(forward.log_e_pass, abs=1e-12)
    assert swapped.s_fail == forward.n - forward.s_fail


def test_a_good_canary_passes_within_the_margin_and_the_evidence_reads_well() -> None:
    rng = np.random.default_rng(15)
    test = PairedLatencyTest(0.015, margin=0.10)
    for i in range(200):
        test.add(latency_interval(lognormal(rng, (50,)), lognormal(rng, (500,)), ts=10.0 * i))
        if test.passed:
            break
    assert test.passed
    assert not test.failed
    e = test.evidence()
    assert e.verdict is Verdict.PASS
    assert e.estimate is not None
    assert e.lower is not None
    assert e.upper is not None
    assert e.lower < e.estimate < e.upper < 0.10
    assert "within the tolerated +10.0%" in e.sentence
    assert e.sentence.startswith("latency ")


def test_the_shift_estimate_and_its_bounds_follow_a_known_slowdown() -> None:
    rng = np.random.default_rng(16)
    test = PairedLatencyTest(0.05, margin=0.10)
    for i in range(100):
        test.add(latency_interval(lognormal(rng, (100,), 1.5), lognormal(rng, (100,)), ts=i))
    estimate, lower, upper = test.bounds()
    assert estimate is not None
    assert abs(estimate - 0.5) < 0.05
    assert lower < 0.5 < upper
    # Under 0.1 exactly; the grid rounds each bound outwards by at most one step (0.005 in log
    # ratio, about 0.75 % of shift here).
    assert upper - lower < 0.1 + 2 * 0.0075


def exact_log_e(groups: list[np.ndarray], cut: float, side: str) -> float:
    """The FAIL-side or PASS-side log e-value at ``cut`` from every comparison, from scratch."""
    wealth = np.zeros(len(BETS))
    for d in groups:
        z = scores(d, cut)
        centred = z - 0.5 if side == "fail" else 0.5 - z
        wealth += np.log1p(np.outer(BETS, centred)).sum(axis=1)
    return float(np.log((np.asarray(BET_WEIGHTS) * np.exp(wealth)).sum()))


@pytest.mark.parametrize(("slowdown", "intervals"), [(1.0, 3), (1.15, 12), (1.6, 40)])
def test_the_confidence_sequence_is_the_exact_one_rounded_out_to_the_grid(
    slowdown: float, intervals: int
) -> None:
    rng = np.random.default_rng(18)
    test = PairedLatencyTest(0.05, margin=0.10)
    groups = []
    for i in range(intervals):
        y, x = lognormal(rng, (60,), slowdown), lognormal(rng, (500,))
        test.add(latency_interval(y, x, ts=10.0 * i))
        m, k = comparisons(y.size, x.size)
        ys = y[(np.arange(m) * y.size) // m]
        xs = x[(np.arange(m * k) * x.size) // (m * k)].reshape(m, k)
        groups.append(np.log(ys)[:, None] - np.log(xs))
    threshold = math.log(20.0)
    cuts = test._cuts
    estimate, lower, upper = test.bounds()
    assert estimate is not None
    if lower > -1.0:  # the FAIL side still rejects at the lower bound, not one step above it
        low = math.log1p(lower)
        assert exact_log_e(groups, low, "fail") >= threshold
        above = cuts[np.searchsorted(cuts, low) + 1]
        assert exact_log_e(groups, float(above), "fail") < threshold
    else:
        assert exact_log_e(groups, float(cuts[0]), "fail") < threshold
    if math.isfinite(upper):  # the PASS side rejects at the upper bound, not one step below it
        high = math.log1p(upper)
        assert exact_log_e(groups, high, "pass") >= threshold
        below = cuts[np.searchsorted(cuts, high) - 1]
        assert exact_log_e(groups, float(below), "pass") < threshold
    else:
        assert exact_log_e(groups, float(cuts[-1]), "pass") < threshold
    # The estimate: where the mean score crosses 1/2 (within the grid step around it).
    c = math.log1p(estimate)
    step = 0.006 if abs(c) < 0.5 else 0.06

    def mean(cut: float) -> float:
        return float(np.mean(np.concatenate([scores(d, cut) for d in groups])))

    assert mean(c - step) >= 0.5 >= mean(c + step)
    assert lower <= estimate <= upper
    # Asked again without new data: the same figures; after an interval: folded in.
    assert test.bounds() == (estimate, lower, upper)
    test.add(latency_interval(lognormal(rng, (60,), 3.0), lognormal(rng, (500,)), ts=1e6))
    assert test.bounds() != (estimate, lower, upper)
    assert not test._pending


def test_the_grid_holds_the_decision_cuts() -> None:
    test = PairedLatencyTest(0.05, null_shift=0.03, margin=0.07)
    assert math.log1p(0.03) in test._cuts
    assert math.log1p(0.07) in test._cuts
    assert np.all(np.diff(test._cuts) > 0)


def test_comparisons_use_the_smaller_arm_and_ignore_intervals_without_samples() -> None:
    test = PairedLatencyTest(0.05)
    test.add(latency_interval(np.array([10.0, 20.0, 30.0]), np.array([5.0] * 10)))
    assert test.n == 3
    assert test.baseline_n == 9  # three blocks of three
    assert test.s_fail == 3
    test.add(latency_interval(np.array([]), np.array([5.0])))
    test.add(interval(None, batch(Version.STABLE)))
    assert test.n == 3


def test_latency_from_histograms_only_tests_exceedances_over_the_median_bound() -> None:
    rng = np.random.default_rng(17)
    test = LatencyTest(
        PairedLatencyTest(0.015),
        ExceedanceTest(0.015, quantile=0.5, margin=1.1, warmup_s=60.0),
    )

    def hist(values: np.ndarray) -> Histogram:
        idx = np.searchsorted(np.asarray(BUCKETS), values)
        return Histogram(BUCKETS, tuple(int(c) for c in np.bincount(idx, minlength=len(BUCKETS))))

    for i in range(120):
        canary = lognormal(rng, (50,), 1.5)
        base = lognormal(rng, (950,))
        test.add(
            interval(
                batch(Version.CANDIDATE, ts=10.0 * i, requests=50, histogram=hist(canary)),
                batch(Version.STABLE, ts=10.0 * i, requests=950, histogram=hist(base)),
                ts=10.0 * i,
            )
        )
        if test.failed:
            break
    assert test.mode == "histogram"
    assert test.histogram.threshold_ms == 100.0
    assert test.failed
    assert "latency above the baseline median (> 100 ms)" in test.evidence().sentence


def test_a_canary_at_the_latency_margin_passes_at_most_pass_alpha_of_the_time() -> None:
    # The PASS side's null is "at least 10 % slower": a canary exactly 10 % slower is its edge.
    rng = np.random.default_rng(21)
    runs, passes = 300, 0
    for _ in range(runs):
        test = PairedLatencyTest(0.015, margin=0.10, pass_alpha=0.05)
        for i in range(150):
            canary, baseline = lognormal(rng, (10,), 1.1), lognormal(rng, (40,))
            test.add(latency_interval(canary, baseline, ts=10.0 * i))
            if test.passed:
                passes += 1
                break
    # Binomial(300, 0.05) exceeds 24 with probability about 1 %.
    assert passes <= 24, f"{passes}/{runs} canaries at the margin passed"


def test_the_latency_pass_level_is_its_own_and_the_sentence_gives_its_bound() -> None:
    rng = np.random.default_rng(22)
    test = PairedLatencyTest(0.015, margin=0.10, pass_alpha=0.05)
    for i in range(200):
        test.add(latency_interval(lognormal(rng, (20,)), lognormal(rng, (200,)), ts=10.0 * i))
        assert test.passed == (test.log_e_pass >= math.log(20.0))
        if test.passed:
            break
    assert test.passed and test.log_e_pass < math.log(1 / 0.015)  # the FAIL share's bar not met
    bound = test.pass_upper()
    assert bound < 0.10  # the PASS: at its level, the shift's upper bound is below the margin
    _, _, upper = test.bounds()
    assert bound <= upper
    assert f"(95% upper bound {fmt_shift(bound)})" in test.evidence().sentence
