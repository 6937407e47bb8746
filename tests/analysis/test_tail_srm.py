"""B3 (tail exceedances over a threshold fixed beforehand) and the sample ratio check."""

from __future__ import annotations

import numpy as np

from stageless.analysis.batch import Histogram, Version
from stageless.analysis.srm import SampleRatioTest
from stageless.analysis.tail import ExceedanceTest, TailTest
from stageless.analysis.verdict import Verdict

from .factories import batch, interval, latency_interval


def lognormal(rng: np.random.Generator, size: int) -> np.ndarray:
    return 100.0 * np.exp(0.5 * rng.standard_normal(size))


def test_the_threshold_is_the_baseline_p99_of_the_warm_up_which_is_not_tested() -> None:
    rng = np.random.default_rng(20)
    test = ExceedanceTest(0.01, quantile=0.99, warmup_s=60.0)
    warm = [lognormal(rng, 900) for _ in range(6)]
    for i, base in enumerate(warm):
        test.add(latency_interval(lognormal(rng, 50) * 3, base, ts=10.0 * i))
    assert test.ready
    assert test.threshold_ms == np.quantile(np.concatenate(warm), 0.99)
    assert test.test.canary_n == 0  # the warm-up's (very slow) canary is not judged


def test_a_tail_only_regression_is_detected_and_a_clean_canary_is_not() -> None:
    rng = np.random.default_rng(21)
    slow, clean = (
        TailTest(ExceedanceTest(0.01, quantile=0.99)),
        TailTest(ExceedanceTest(0.01, quantile=0.99)),
    )
    for i in range(300):
        base = lognormal(rng, 900)
        canary = lognormal(rng, 100)
        tail = canary + 500.0 * (rng.random(100) < 0.02)
        slow.add(latency_interval(tail, base, ts=10.0 * i))
        clean.add(latency_interval(canary, base, ts=10.0 * i))
    assert slow.failed
    assert not clean.failed
    sentence = slow.evidence().sentence
    assert sentence.startswith("tail latency (> ")
    assert "fail after" in sentence


def test_from_histograms_the_threshold_snaps_to_a_bucket_bound() -> None:
    le = (50.0, 100.0, 200.0, 400.0, float("inf"))
    test = ExceedanceTest(0.01, quantile=0.99, warmup_s=20.0)
    base = Histogram(le, (300, 400, 290, 9, 1))  # p99 falls at the 200 ms bound
    for i in range(2):
        test.add(interval(None, batch(Version.STABLE, ts=10.0 * i, histogram=base), ts=10.0 * i))
    assert test.threshold_ms == 200.0
    canary = Histogram(le, (10, 20, 10, 8, 2))
    test.add(
        interval(
            batch(Version.CANDIDATE, ts=20.0, requests=50, histogram=canary),
            batch(Version.STABLE, ts=20.0, requests=1000, histogram=base),
        )
    )
    assert (test.test.canary_events, test.test.baseline_events) == (10, 10)
    assert (test.test.canary_n, test.test.baseline_n) == (50, 1000)


def test_before_the_threshold_is_known_the_evidence_says_so() -> None:
    evidence = TailTest(ExceedanceTest(0.01, quantile=0.99)).evidence()
    assert evidence.verdict is Verdict.CONTINUE
    assert "threshold not fixed yet" in evidence.sentence


def test_srm_flags_a_broken_split_of_users_and_not_a_sound_one() -> None:
    rng = np.random.default_rng(22)
    broken, sound = SampleRatioTest(0.005), SampleRatioTest(0.005)
    for i in range(200):
        users = int(rng.poisson(800))
        for test, share in ((broken, 0.04), (sound, 0.05)):
            canary_users = int(rng.binomial(users, share))
            test.add(
                interval(
                    batch(
                        Version.CANDIDATE,
                        ts=10.0 * i,
                        users=canary_users,
                        new_users=canary_users,
                        share=0.05,
                    ),
                    batch(
                        Version.STABLE,
                        ts=10.0 * i,
                        users=users - canary_users,
                        new_users=users - canary_users,
                        share=0.95,
                    ),
                )
            )
    assert broken.failed
    assert not sound.failed
    evidence = broken.evidence()
    assert evidence.verdict is Verdict.INVALID
    assert evidence.estimate is not None
    assert evidence.upper is not None
    assert evidence.upper < 1.0


def test_srm_follows_the_configured_share_when_it_changes() -> None:
    rng = np.random.default_rng(23)
    test = SampleRatioTest(0.005)
    for i, share in enumerate(np.repeat([0.01, 0.05, 0.25, 0.5], 60)):
        users = int(rng.poisson(800))
        canary_users = int(rng.binomial(users, share))
        test.add(
            interval(
                batch(
                    Version.CANDIDATE,
                    ts=10.0 * i,
                    users=canary_users,
                    new_users=canary_users,
                    share=float(share),
                ),
                batch(
                    Version.STABLE,
                    ts=10.0 * i,
                    users=users - canary_users,
                    new_users=users - canary_users,
                    share=1 - share,
                ),
            )
        )
    assert not test.failed
    assert test.evidence().verdict is Verdict.CONTINUE
