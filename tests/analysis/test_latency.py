"""B1 (paired sign test) and the histogram variant: validity, power, ties, evidence."""

from __future__ import annotations

import numpy as np

from stageless.analysis.batch import Histogram, Version
from stageless.analysis.evalue import log_beta_mixture
from stageless.analysis.latency import LatencyTest, PairedLatencyTest
from stageless.analysis.tail import ExceedanceTest
from stageless.analysis.verdict import Verdict

from .factories import batch, interval, latency_interval

BUCKETS = (25.0, 50.0, 75.0, 100.0, 150.0, 200.0, 300.0, 500.0, 1000.0, float("inf"))


def lognormal(rng: np.random.Generator, size: tuple[int, ...], slowdown: float = 1.0) -> np.ndarray:
    return 100.0 * slowdown * np.exp(0.5 * rng.standard_normal(size))


def pairs_to_fail_vectorised(
    canary: np.ndarray, baseline: np.ndarray, alpha: float, k: float = 30.0
) -> np.ndarray:
    """Per run, the pairs seen when the sign test first fails (0 if never).

    ``canary`` and ``baseline`` are (runs, intervals, pairs): an independent, vectorised
    re-implementation of the test (ties count one half), checked against the class below.
    """
    z = (canary > baseline) + 0.5 * (canary == baseline)
    s = np.cumsum(z.sum(axis=2), axis=1)
    n = np.cumsum(np.full(s.shape, canary.shape[2]), axis=1)
    crossed = log_beta_mixture(s, n, 0.5, k) >= np.log(1 / alpha)
    first = np.where(crossed.any(axis=1), crossed.argmax(axis=1), -1)
    return np.where(first >= 0, (first + 1) * canary.shape[2], 0)


def pairs_to_fail(canary: np.ndarray, baseline: np.ndarray, alpha: float, **kwargs: object) -> int:
    """The same through :class:`PairedLatencyTest` (arrays are (intervals, size)); 0 if never."""
    test = PairedLatencyTest(alpha, k=30.0, **kwargs)  # type: ignore[arg-type]
    for i in range(canary.shape[0]):
        test.add(latency_interval(canary[i], baseline[i], ts=10.0 * i))
        if test.failed:
            return int(test.n)
    return 0


def test_the_class_and_the_vectorised_reference_agree() -> None:
    rng = np.random.default_rng(10)
    canary = lognormal(rng, (12, 60, 20), 1.15)
    baseline = lognormal(rng, (12, 60, 20))
    expected = pairs_to_fail_vectorised(canary, baseline, 0.05)
    assert (expected > 0).sum() >= 6
    assert [pairs_to_fail(canary[r], baseline[r], 0.05) for r in range(12)] == expected.tolist()


def test_a_a_false_fail_rate_is_at_most_alpha() -> None:
    rng = np.random.default_rng(11)
    runs, alpha = 1000, 0.05
    failed = pairs_to_fail_vectorised(
        lognormal(rng, (runs, 300, 20)), lognormal(rng, (runs, 300, 20)), alpha
    )
    # Binomial(1000, 0.05) exceeds 66 with probability about 1 %.
    assert (failed > 0).sum() <= 66, (failed > 0).sum()


def test_a_a_with_heavy_ties_stays_valid() -> None:
    rng = np.random.default_rng(12)
    runs, alpha = 1000, 0.05
    # Latencies rounded to 25 ms: one pair in seven ties and counts one half.
    canary = np.round(lognormal(rng, (runs, 300, 20)) / 25) * 25
    baseline = np.round(lognormal(rng, (runs, 300, 20)) / 25) * 25
    assert (canary == baseline).mean() > 0.12
    assert (pairs_to_fail_vectorised(canary, baseline, alpha) > 0).sum() <= 66


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


def test_a_20_percent_slowdown_is_detected_in_a_median_under_300_canary_samples() -> None:
    rng = np.random.default_rng(13)
    runs = 500
    # The judge's default share of alpha for latency is 0.3 x 0.05 = 0.015.
    found = pairs_to_fail_vectorised(
        lognormal(rng, (runs, 60, 20), 1.2), lognormal(rng, (runs, 60, 20)), 0.015
    )
    assert (found > 0).mean() >= 0.98
    assert np.median(found[found > 0]) <= 300, np.median(found[found > 0])


def test_a_faster_canary_almost_never_fails() -> None:
    # The guarantee is at most alpha (5 %); a canary 10 % faster fails far less often than that,
    # only through an early run of bad luck in the first few intervals.
    rng = np.random.default_rng(14)
    found = pairs_to_fail_vectorised(
        lognormal(rng, (500, 300, 20), 0.9), lognormal(rng, (500, 300, 20)), 0.05
    )
    assert (found > 0).sum() <= 2
    assert (found[found > 0] <= 100).all()


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
    assert upper - lower < 0.1


def test_pairs_use_the_smaller_arm_and_ignore_intervals_without_samples() -> None:
    test = PairedLatencyTest(0.05)
    test.add(latency_interval(np.array([10.0, 20.0, 30.0]), np.array([5.0] * 10)))
    assert test.n == 3
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
