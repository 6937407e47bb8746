"""The per-worker hot path: classification, histogram, reservoir, users, snapshots."""

from __future__ import annotations

import math
import pickle
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stageless.analysis.batch import TrafficClass, Version
from stageless.proxy.batches import Aggregate
from stageless.proxy.snapshots import StatsSnapshot
from stageless.proxy.stats import (
    DEFAULT_BOUNDS_MS,
    RESERVOIR_SIZE,
    SHADOW_FIELDS,
    Stats,
)

KEY = ("checkout", "api", Version.CANDIDATE, TrafficClass.USER)


def test_status_zero_and_5xx_are_errors_4xx_client_errors_the_rest_successes() -> None:
    stats = Stats(seed=1)
    series = stats.series(*KEY)
    for status in (0, 200, 204, 302, 400, 404, 499, 500, 502, 504):
        series.observe(status, 0.01, None)
    (snap,) = stats.snapshot_and_reset().series
    assert (snap.requests, snap.errors, snap.client_errors) == (10, 4, 3)


def test_a_latency_on_a_bound_falls_in_that_bucket_and_a_huge_one_in_inf() -> None:
    stats = Stats(seed=1)
    series = stats.series(*KEY)
    for latency in (0.0, 0.001, 0.0011, 0.0025, 9.9999, 10.0, 10.0001, 3600.0):
        series.observe(200, latency, None)
    (snap,) = stats.snapshot_and_reset().series
    assert len(snap.buckets) == len(DEFAULT_BOUNDS_MS) + 1
    expected = [0] * (len(DEFAULT_BOUNDS_MS) + 1)
    for index in (0, 0, 1, 1, 12, 12, 13, 13):
        expected[index] += 1
    assert list(snap.buckets) == expected
    assert snap.latency_sum_s == pytest.approx(
        0.0 + 0.001 + 0.0011 + 0.0025 + 9.9999 + 10.0 + 10.0001 + 3600.0
    )


def test_the_default_bounds_are_the_documented_ones() -> None:
    assert DEFAULT_BOUNDS_MS == (1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
    assert Stats().bounds_s[0] == 0.001


def test_series_and_shadow_counters_are_created_once_and_reused() -> None:
    stats = Stats()
    assert stats.series(*KEY) is stats.series(*KEY)
    assert stats.series(*KEY) is not stats.series(
        "checkout", "api", Version.STABLE, TrafficClass.USER
    )
    assert stats.shadow("checkout", "api") is stats.shadow("checkout", "api")


def test_users_are_distinct_and_none_adds_no_user() -> None:
    stats = Stats()
    series = stats.series(*KEY)
    for user in (1, 2, 2, None, 3, 1, None):
        series.observe(200, 0.01, user)
    (snap,) = stats.snapshot_and_reset().series
    assert set(snap.users) == {1, 2, 3}
    assert snap.requests == 7


def test_the_reservoir_keeps_everything_up_to_its_size_then_at_most_its_size() -> None:
    stats = Stats(seed=3)
    series = stats.series(*KEY)
    for i in range(RESERVOIR_SIZE):
        series.observe(200, i / 1e6, None)
    assert sorted(series.samples) == [i / 1e6 for i in range(RESERVOIR_SIZE)]
    for i in range(RESERVOIR_SIZE, 7 * RESERVOIR_SIZE):
        series.observe(200, i / 1e6, None)
    (snap,) = stats.snapshot_and_reset().series
    assert len(snap.samples) == RESERVOIR_SIZE
    assert len(set(snap.samples)) == RESERVOIR_SIZE  # a sample without replacement
    assert snap.requests == 7 * RESERVOIR_SIZE


def test_the_reservoir_is_a_uniform_sample_of_the_whole_interval() -> None:
    """Deciles of positions hold about 100 samples each (keeping the first or last 1,000 fails)."""
    n = 20 * RESERVOIR_SIZE
    stats = Stats(seed=11)
    series = stats.series(*KEY)
    for i in range(n):
        series.observe(200, float(i), None)
    samples = stats.snapshot_and_reset().series[0].samples
    deciles = [0] * 10
    for value in samples:
        deciles[int(value * 10 // n)] += 1
    assert all(60 <= count <= 140 for count in deciles), deciles  # 100 ± 4 sd
    assert statistics.mean(samples) == pytest.approx(n / 2, rel=0.05)


def test_every_latency_is_kept_with_the_same_probability() -> None:
    """Over 60 seeds of 4,000 latencies, each quarter of the interval holds a quarter of the
    kept samples (expected 15,000 each; the bound is about 5 standard deviations), and so do
    the first and last 100 latencies (expected 1,500): a skip that is off by one, or a weight
    that shrinks too fast or too slowly, shows at one end."""
    n, seeds = 4 * RESERVOIR_SIZE, 60
    quarters = [0] * 4
    first = last = 0
    for seed in range(seeds):
        stats = Stats(seed=seed)
        series = stats.series(*KEY)
        for i in range(n):
            series.observe(200, float(i), None)
        samples = stats.snapshot_and_reset().series[0].samples
        assert len(set(samples)) == RESERVOIR_SIZE
        for value in samples:
            quarters[int(value) * 4 // n] += 1
        first += sum(1 for value in samples if value < 100)
        last += sum(1 for value in samples if value >= n - 100)
    assert all(abs(count - 15_000) <= 450 for count in quarters), quarters
    assert abs(first - 1_500) <= 170 and abs(last - 1_500) <= 170, (first, last)


def test_snapshot_returns_deltas_and_resets_the_same_series_objects() -> None:
    stats = Stats(seed=1)
    series = stats.series(*KEY)
    series.observe(200, 0.01, 7)
    first = stats.snapshot_and_reset()
    assert [s.requests for s in first.series] == [1]
    assert stats.snapshot_and_reset().series == ()  # nothing new: left out
    series.observe(503, 0.02, 8)  # the caller's cached series keeps counting after the reset
    (again,) = stats.snapshot_and_reset().series
    assert (again.requests, again.errors, set(again.users), again.samples) == (1, 1, {8}, (0.02,))


def test_shadow_counters_are_snapshotted_in_field_order_and_reset() -> None:
    stats = Stats()
    counters = stats.shadow("checkout", "api")
    counters.sent += 3
    counters.dropped_queue_full += 1
    counters.too_large += 2
    counters.differing += 1
    counters.compared += 4
    stats.shadow("checkout", "idle")  # never counted: left out
    (snap,) = stats.snapshot_and_reset().shadow
    assert (snap.service, snap.route) == ("checkout", "api")
    assert dict(zip(SHADOW_FIELDS, snap.counts, strict=True)) == {
        "sent": 3,
        "dropped_queue_full": 1,
        "dropped_error": 0,
        "dropped_timeout": 0,
        "too_large": 2,
        "compared": 4,
        "differing": 1,
    }
    assert stats.snapshot_and_reset().shadow == ()


def test_a_snapshot_survives_pickling_as_sent_through_a_pipe() -> None:
    stats = Stats(seed=2)
    for i in range(1500):
        stats.series(*KEY).observe(200 if i % 7 else 500, i / 1000, i % 50)
    stats.shadow("checkout", "api").sent += 1
    snap = stats.snapshot_and_reset()
    copy = pickle.loads(pickle.dumps(snap))  # noqa: S301 - our own bytes
    assert copy == snap
    assert isinstance(copy, StatsSnapshot)
    assert copy.series[0].version is Version.CANDIDATE


@pytest.mark.parametrize(
    ("bounds", "message"),
    [
        ((), "empty"),
        ((1, 1), "bounds[1]: 1.0 does not increase strictly"),
        ((1, math.inf), "bounds[1]: inf is not a finite number of ms > 0"),
        ((0, 1), "bounds[0]: 0.0 is not a finite number of ms > 0"),
    ],
)
def test_bad_histogram_bounds_are_refused_with_the_position(
    bounds: tuple[float, ...], message: str
) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Stats(bounds)


KEYS = [
    ("a", "r1", Version.STABLE, TrafficClass.USER),
    ("a", "r1", Version.CANDIDATE, TrafficClass.USER),
    ("a", "r2", Version.CANDIDATE, TrafficClass.TESTER),
    ("b", "r1", Version.STABLE, TrafficClass.SHADOW),
]
observations = st.tuples(
    st.integers(0, 3),  # worker
    st.sampled_from(KEYS),
    st.sampled_from([0, 200, 301, 404, 429, 500, 503]),
    st.floats(0, 30, allow_nan=False),
    st.none() | st.integers(0, 40),
    st.booleans(),  # the worker sends a snapshot after this observation
)


@given(st.lists(observations, max_size=300))
def test_merging_worker_snapshots_equals_one_stats_fed_everything(
    events: list[tuple[int, tuple[str, str, Version, TrafficClass], int, float, int | None, bool]],
) -> None:
    workers = [Stats(seed=w) for w in range(4)]
    merged, reference = Aggregate(seed=1), Aggregate(seed=1)
    single = Stats(seed=9)
    for worker, key, status, latency, user, flush in events:
        workers[worker].series(*key).observe(status, latency, user)
        single.series(*key).observe(status, latency, user)
        if flush:
            merged.merge(workers[worker].snapshot_and_reset())
    for stats in workers:
        merged.merge(stats.snapshot_and_reset())
    reference.merge(single.snapshot_and_reset())

    got, want = merged.totals(), reference.totals()
    assert [k for k, _ in got] == [k for k, _ in want]
    for (_, a), (_, b) in zip(got, want, strict=True):
        assert (a.requests, a.errors, a.client_errors, a.buckets) == (
            b.requests,
            b.errors,
            b.client_errors,
            b.buckets,
        )
        assert a.latency_sum_s == pytest.approx(b.latency_sum_s)

    got_batches = merged.emit_batches(100.0, 10.0)
    want_batches = reference.emit_batches(100.0, 10.0)
    assert len(got_batches) == len(want_batches)
    for g, w in zip(got_batches, want_batches, strict=True):
        assert (g.service, g.route, g.version, g.traffic_class) == (
            w.service,
            w.route,
            w.version,
            w.traffic_class,
        )
        assert (g.requests, g.errors, g.client_errors, g.users, g.new_users) == (
            w.requests,
            w.errors,
            w.client_errors,
            w.users,
            w.new_users,
        )
        assert g.histogram == w.histogram
        assert sorted(g.samples) == sorted(w.samples)  # at most 300 requests: all are kept
