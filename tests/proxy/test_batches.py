"""Aggregating worker snapshots into batches, and writing them where the judge reads them."""

from __future__ import annotations

import json
import logging
import math
import os
import random
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stageless.analysis.batch import Batch, TrafficClass, Version, parse_batch
from stageless.metrics import BatchFile, SourceError
from stageless.proxy.batches import Aggregate, BatchWriter, merge_reservoirs
from stageless.proxy.stats import DEFAULT_BOUNDS_MS, RESERVOIR_SIZE, Stats

USER, TESTER = TrafficClass.USER, TrafficClass.TESTER
STABLE, CANDIDATE = Version.STABLE, Version.CANDIDATE


def feed(aggregate: Aggregate, version: Version, users: list[int], status: int = 200) -> None:
    """One worker snapshot with one request per user on checkout/api."""
    stats = Stats(seed=0)
    series = stats.series("checkout", "api", version, USER)
    for user in users:
        series.observe(status, 0.004, user)
    aggregate.merge(stats.snapshot_and_reset())


def batch_of(batches: list[Batch], version: Version, tclass: TrafficClass = USER) -> Batch:
    (found,) = [b for b in batches if b.version is version and b.traffic_class is tclass]
    return found


# -- reservoir merge ---------------------------------------------------------------------------


def test_small_reservoirs_are_concatenated() -> None:
    rng = random.Random(1)  # noqa: S311 - sampling, not security
    assert sorted(merge_reservoirs([1.0, 2.0], 2, [3.0], 1, rng)) == [1.0, 2.0, 3.0]
    assert merge_reservoirs([], 0, [3.0], 1, rng) == [3.0]
    assert merge_reservoirs([1.0], 1, [], 0, rng) == [1.0]


def test_a_merged_reservoir_weights_each_part_by_its_count_not_its_sample_size() -> None:
    """9,000 requests vs 1,000: both reservoirs hold 1,000, the merge takes ~900 and ~100."""
    rng = random.Random(5)  # noqa: S311 - sampling, not security
    merged = merge_reservoirs([1.0] * RESERVOIR_SIZE, 9_000, [2.0] * RESERVOIR_SIZE, 1_000, rng)
    assert len(merged) == RESERVOIR_SIZE
    assert 860 <= merged.count(1.0) <= 940  # hypergeometric sd ~9


@given(
    st.integers(0, 3000),
    st.integers(0, 3000),
    st.integers(0, 2**32),
)
def test_a_merged_reservoir_has_the_right_size_and_only_items_of_the_parts(
    n_a: int, n_b: int, seed: int
) -> None:
    rng = random.Random(seed)  # noqa: S311 - sampling, not security
    a = [float(i) for i in range(min(n_a, RESERVOIR_SIZE))]
    b = [float(-i - 1) for i in range(min(n_b, RESERVOIR_SIZE))]
    merged = merge_reservoirs(list(a), n_a, b, n_b, rng)
    assert len(merged) == min(RESERVOIR_SIZE, n_a + n_b)
    assert len(set(merged)) == len(merged)
    assert set(merged) <= set(a) | set(b)


def test_workers_with_uneven_load_merge_into_a_uniform_sample_of_all_requests() -> None:
    aggregate = Aggregate(seed=3)
    for rounds in range(5):  # five one-second snapshots per worker
        for worker, (count, latency) in enumerate([(1600, 0.001), (200, 0.002), (200, 0.003)]):
            stats = Stats(seed=rounds * 10 + worker)
            series = stats.series("checkout", "api", STABLE, USER)
            for _ in range(count):
                series.observe(200, latency, None)
            aggregate.merge(stats.snapshot_and_reset())
    (batch,) = aggregate.emit_batches(10.0, 10.0)
    assert batch.requests == 10_000
    shares = Counter(batch.samples)
    assert len(batch.samples) == RESERVOIR_SIZE
    assert 760 <= shares[1.0] <= 840  # 80 % of the requests, sd ~12
    assert 60 <= shares[2.0] <= 140
    assert 60 <= shares[3.0] <= 140


# -- batches, users and steps ------------------------------------------------------------------


def test_a_batch_carries_the_interval_counts_share_and_histogram_in_ms() -> None:
    aggregate = Aggregate(seed=1)
    aggregate.set_share("checkout", CANDIDATE, 0.05)
    stats = Stats(seed=1)
    series = stats.series("checkout", "api", CANDIDATE, USER)
    for status, latency, user in [(200, 0.0042, 1), (503, 0.3, 2), (404, 12.0, 1), (0, -0.0, 3)]:
        series.observe(status, latency, user)
    aggregate.merge(stats.snapshot_and_reset())
    (batch,) = aggregate.emit_batches(1_000.0, 10.0)
    assert (batch.ts, batch.interval_s, batch.service, batch.route) == (
        990.0,
        10.0,
        "checkout",
        "api",
    )
    assert (batch.version, batch.traffic_class, batch.configured_share) == (CANDIDATE, USER, 0.05)
    assert (batch.requests, batch.errors, batch.client_errors) == (4, 2, 1)
    assert (batch.users, batch.new_users) == (3, 3)
    assert sorted(batch.samples) == [0.0, 4.2, 300.0, 12000.0]
    assert batch.histogram.le == (*DEFAULT_BOUNDS_MS, math.inf)
    counts = dict(zip(batch.histogram.le, batch.histogram.counts, strict=True))
    assert (counts[1.0], counts[5.0], counts[500.0], counts[math.inf]) == (1, 1, 1, 1)
    assert sum(batch.histogram.counts) == 4


def test_emitting_resets_the_interval_but_not_the_totals() -> None:
    aggregate = Aggregate()
    feed(aggregate, STABLE, [1, 2])
    assert len(aggregate.emit_batches(10.0, 10.0)) == 1
    assert aggregate.emit_batches(20.0, 10.0) == []  # no traffic, nothing declared
    feed(aggregate, STABLE, [3])
    (batch,) = aggregate.emit_batches(30.0, 10.0)
    assert batch.requests == 1
    ((_, totals),) = aggregate.totals()
    assert totals.requests == 3


def test_new_users_count_each_user_once_per_step() -> None:
    aggregate = Aggregate()
    aggregate.set_share("checkout", CANDIDATE, 0.05)
    feed(aggregate, CANDIDATE, [1, 2, 3])
    feed(aggregate, CANDIDATE, [3, 4])  # a second worker in the same interval
    first = batch_of(aggregate.emit_batches(10.0, 10.0), CANDIDATE)
    assert (first.users, first.new_users) == (4, 4)
    feed(aggregate, CANDIDATE, [1, 4, 5])
    second = batch_of(aggregate.emit_batches(20.0, 10.0), CANDIDATE)
    assert (second.users, second.new_users) == (3, 1)  # only 5 is new in this step


def test_the_same_share_again_keeps_the_step_and_a_new_share_starts_one() -> None:
    aggregate = Aggregate()
    aggregate.set_share("checkout", CANDIDATE, 0.05)
    aggregate.set_share("checkout", STABLE, 0.95)
    feed(aggregate, CANDIDATE, [1, 2])
    feed(aggregate, STABLE, [7])
    aggregate.emit_batches(10.0, 10.0)
    aggregate.set_share("checkout", CANDIDATE, 0.05)  # a reload without change
    feed(aggregate, CANDIDATE, [1, 2])
    assert batch_of(aggregate.emit_batches(20.0, 10.0), CANDIDATE).new_users == 0
    aggregate.set_share("checkout", CANDIDATE, 0.10)
    aggregate.set_share("checkout", STABLE, 0.90)
    feed(aggregate, CANDIDATE, [1, 2, 3])
    feed(aggregate, STABLE, [7])
    batches = aggregate.emit_batches(30.0, 10.0)
    assert batch_of(batches, CANDIDATE).new_users == 3
    assert batch_of(batches, CANDIDATE).configured_share == 0.10
    assert batch_of(batches, STABLE).new_users == 1  # the step is the service's, both versions


def test_a_share_change_mid_interval_drops_the_new_users_seen_before_it() -> None:
    aggregate = Aggregate()
    aggregate.set_share("checkout", CANDIDATE, 0.05)
    feed(aggregate, CANDIDATE, [1, 2])
    aggregate.set_share("checkout", CANDIDATE, 0.2)
    feed(aggregate, CANDIDATE, [2, 3])
    batch = batch_of(aggregate.emit_batches(10.0, 10.0), CANDIDATE)
    assert (batch.users, batch.new_users) == (3, 2)  # 2 and 3 are new in the new step


def test_a_share_change_of_one_service_leaves_the_others_steps_alone() -> None:
    aggregate = Aggregate()
    feed(aggregate, CANDIDATE, [1])
    stats = Stats()
    stats.series("search", "api", CANDIDATE, USER).observe(200, 0.01, 1)
    aggregate.merge(stats.snapshot_and_reset())
    aggregate.emit_batches(10.0, 10.0)
    aggregate.set_share("checkout", CANDIDATE, 0.5)
    feed(aggregate, CANDIDATE, [1])
    stats.series("search", "api", CANDIDATE, USER).observe(200, 0.01, 1)
    aggregate.merge(stats.snapshot_and_reset())
    by_service = {b.service: b.new_users for b in aggregate.emit_batches(20.0, 10.0)}
    assert by_service == {"checkout": 1, "search": 0}


@given(st.lists(st.lists(st.integers(0, 30), max_size=20), max_size=8), st.integers(0, 7))
def test_new_users_sum_to_the_distinct_users_of_each_step(
    intervals: list[list[int]], change_at: int
) -> None:
    aggregate = Aggregate()
    aggregate.set_share("checkout", CANDIDATE, 0.1)
    step_users: set[int] = set()
    new_total = 0
    for i, users in enumerate(intervals):
        if i == change_at:
            aggregate.set_share("checkout", CANDIDATE, 0.2)
            assert new_total == len(step_users)
            step_users, new_total = set(), 0
        feed(aggregate, CANDIDATE, users)
        step_users |= set(users)
        for batch in aggregate.emit_batches(10.0 * (i + 1), 10.0):
            assert batch.new_users is not None
            assert batch.new_users <= batch.users == len(set(users))
            new_total += batch.new_users
    assert new_total == len(step_users)


def test_declared_routes_get_zero_batches_for_both_versions_of_user_traffic() -> None:
    aggregate = Aggregate()
    aggregate.declare("checkout", "api")
    aggregate.set_share("checkout", CANDIDATE, 0.05)
    feed(aggregate, STABLE, [1, 2])
    batches = aggregate.emit_batches(10.0, 10.0)
    assert [(b.version, b.requests) for b in batches] == [(CANDIDATE, 0), (STABLE, 2)]
    zero = batch_of(batches, CANDIDATE)
    assert (zero.users, zero.new_users, zero.samples, zero.configured_share) == (0, 0, (), 0.05)
    assert zero.histogram.counts == (0,) * (len(DEFAULT_BOUNDS_MS) + 1)
    assert {b.ts for b in batches} == {0.0}  # paired by ts
    aggregate.undeclare("checkout", "api")
    assert aggregate.emit_batches(20.0, 10.0) == []


def test_other_traffic_classes_are_batched_apart() -> None:
    aggregate = Aggregate()
    stats = Stats()
    stats.series("checkout", "api", CANDIDATE, TESTER).observe(200, 0.01, 1)
    stats.series("checkout", "api", CANDIDATE, USER).observe(200, 0.01, 2)
    aggregate.merge(stats.snapshot_and_reset())
    batches = aggregate.emit_batches(10.0, 10.0)
    assert [(b.traffic_class, b.requests) for b in batches] == [(TESTER, 1), (USER, 1)]


@pytest.mark.parametrize("share", [-0.1, 1.5, math.nan, math.inf])
def test_a_share_outside_0_to_1_is_refused(share: float) -> None:
    with pytest.raises(ValueError, match=r"share of checkout candidate: .* not a fraction"):
        Aggregate().set_share("checkout", CANDIDATE, share)


def test_snapshots_with_other_histogram_bounds_are_refused() -> None:
    stats = Stats((1, 10))
    stats.series("checkout", "api", STABLE, USER).observe(200, 0.001, None)
    with pytest.raises(ValueError, match="histogram bounds"):
        Aggregate().merge(stats.snapshot_and_reset())


def test_a_bad_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="interval_s"):
        Aggregate().emit_batches(10.0, 0)


events = st.lists(
    st.tuples(
        st.sampled_from([STABLE, CANDIDATE]),
        st.sampled_from([USER, TESTER, TrafficClass.SYNTHETIC, TrafficClass.SHADOW]),
        st.sampled_from([0, 200, 404, 500]),
        st.floats(0, 100, allow_nan=False),
        st.none() | st.integers(0, 2**32 - 1),
    ),
    max_size=60,
)


@given(events, st.floats(0, 1), st.floats(1e9, 2e9))
def test_every_emitted_batch_survives_the_json_round_trip_the_judge_reads(
    evs: list[tuple[Version, TrafficClass, int, float, int | None]], share: float, now: float
) -> None:
    aggregate = Aggregate(seed=1)
    aggregate.set_share("checkout", CANDIDATE, share)
    aggregate.declare("checkout", "api")
    stats = Stats(seed=1)
    for version, tclass, status, latency, user in evs:
        stats.series("checkout", "api", version, tclass).observe(status, latency, user)
    aggregate.merge(stats.snapshot_and_reset())
    for batch in aggregate.emit_batches(now, 10.0):
        assert parse_batch(json.loads(json.dumps(batch.to_json()))) == batch


# -- the batch file ----------------------------------------------------------------------------


def three_intervals(writer: BatchWriter) -> list[Batch]:
    aggregate = Aggregate(seed=1)
    aggregate.declare("checkout", "api")
    aggregate.set_share("checkout", CANDIDATE, 0.05)
    aggregate.set_share("checkout", STABLE, 0.95)
    written: list[Batch] = []
    for i in range(3):
        feed(aggregate, STABLE, list(range(i, i + 1500)), status=200 if i else 503)
        batches = aggregate.emit_batches(1_000.0 + 10 * (i + 1), 10.0)
        assert writer.write(batches)
        written += batches
    return written


def test_written_batches_read_back_equal_through_the_judges_batch_file(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "batches.jsonl"  # the parent directories are created
    writer = BatchWriter(path)
    written = three_intervals(writer)
    writer.close()
    assert writer.written == 6
    read = BatchFile(path).fetch_batches("checkout", "api", 0, 2_000)
    key = lambda b: (b.ts, b.version)  # noqa: E731
    assert sorted(read, key=key) == sorted(written, key=key)
    assert path.read_bytes().count(b"\n") == 6
    assert all(len(b.samples) == RESERVOIR_SIZE for b in read if b.version is STABLE)


def test_a_second_writer_appends_to_the_same_file(tmp_path: Path) -> None:
    path = tmp_path / "batches.jsonl"
    first = BatchWriter(path)
    three_intervals(first)
    first.close()
    second = BatchWriter(path)
    three_intervals(second)
    second.close()
    assert len(BatchFile(path).fetch_batches("checkout", "api", 0, 2_000)) == 12


def test_a_write_error_is_logged_and_counted_and_the_next_interval_retries(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "out"
    blocker.write_text("a file where the directory should be")
    writer = BatchWriter(blocker / "batches.jsonl")
    aggregate = Aggregate()
    feed(aggregate, STABLE, [1])
    batches = aggregate.emit_batches(10.0, 10.0)
    with caplog.at_level(logging.WARNING, logger="stageless.proxy.batches"):
        assert writer.write(batches) is False
    assert (writer.errors, writer.written) == (1, 0)
    assert "cannot write 1 batches to" in caplog.text
    blocker.unlink()
    assert writer.write(batches) is True
    assert (writer.errors, writer.written) == (1, 1)
    assert BatchFile(blocker / "batches.jsonl").fetch_batches("checkout", "api", 0, 100) == batches


def test_a_full_disk_is_counted_not_raised() -> None:
    """/dev/full fails every write with ENOSPC (Linux)."""
    writer = BatchWriter("/dev/full")
    aggregate = Aggregate()
    feed(aggregate, STABLE, [1])
    assert writer.write(aggregate.emit_batches(10.0, 10.0)) is False
    assert writer.errors == 1


def test_a_partial_line_left_by_a_crash_is_ended_before_new_lines(tmp_path: Path) -> None:
    path = tmp_path / "batches.jsonl"
    path.write_bytes(b'{"ts": 1, "interval_s"')  # a crash mid-line
    writer = BatchWriter(path)
    aggregate = Aggregate()
    feed(aggregate, STABLE, [1])
    batches = aggregate.emit_batches(10.0, 10.0)
    assert writer.write(batches)
    lines = path.read_bytes().splitlines()
    assert lines[0] == b'{"ts": 1, "interval_s"'
    assert parse_batch(json.loads(lines[1])) == batches[0]
    with pytest.raises(SourceError, match="line 1: not JSON"):  # the judge names the bad line
        BatchFile(path).fetch_batches("checkout", "api", 0, 100)


def test_a_file_moved_away_is_replaced_by_a_new_one(tmp_path: Path) -> None:
    path = tmp_path / "batches.jsonl"
    writer = BatchWriter(path)
    aggregate = Aggregate()
    feed(aggregate, STABLE, [1])
    assert writer.write(aggregate.emit_batches(10.0, 10.0))
    os.rename(path, tmp_path / "batches.jsonl.1")
    feed(aggregate, STABLE, [2])
    assert writer.write(aggregate.emit_batches(20.0, 10.0))
    writer.close()
    assert [b.ts for b in BatchFile(path).fetch_batches("checkout", "api", 0, 100)] == [10.0]
    assert (tmp_path / "batches.jsonl.1").read_bytes().count(b"\n") == 1


def test_writing_nothing_touches_nothing(tmp_path: Path) -> None:
    path = tmp_path / "batches.jsonl"
    assert BatchWriter(path).write([])
    assert not path.exists()
