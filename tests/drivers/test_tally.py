"""Access-log records folded into batches: every request counted once in its interval, errors
and client errors by status, both versions' user batches in every interval (zero ones too),
users and new users per step, a bounded latency reservoir, late records dropped and counted."""

from __future__ import annotations

import math
import random

from hypothesis import given
from hypothesis import strategies as st

from stageless.analysis.batch import MAX_SAMPLES, TrafficClass, Version, parse_batch
from stageless.drivers.tally import BOUNDS_MS, DEFAULT_ROUTE, Record, Tally

records = st.builds(
    Record,
    ts=st.floats(1000.0, 1059.999),
    version=st.sampled_from(Version),
    traffic_class=st.sampled_from(TrafficClass),
    status=st.sampled_from([0, 200, 204, 301, 404, 429, 500, 502, 504]),
    latency_ms=st.none() | st.floats(0, 20_000),
    user=st.none() | st.sampled_from([f"u{i}" for i in range(20)]),
)


@given(st.lists(records, max_size=200), st.sampled_from([1.0, 5.0, 10.0]))
def test_every_record_is_counted_once_in_its_interval(found: list[Record], interval: float) -> None:
    tally = Tally("shop", interval, rng=random.Random(1))  # noqa: S311 - sampling
    tally.start(1000.0)
    for record in sorted(found, key=lambda r: r.ts):
        tally.add(record)
    batches = tally.flush(1060.0)
    assert tally.late == 0
    assert sum(b.requests for b in batches) == len(found)
    assert sum(b.errors for b in batches) == sum(r.status >= 500 or r.status == 0 for r in found)
    assert sum(b.client_errors for b in batches) == sum(400 <= r.status < 500 for r in found)
    slots = {b.ts for b in batches}
    assert slots == {1000.0 + i * interval for i in range(int(60 / interval))}
    for slot in slots:
        user = {b.version for b in batches if b.ts == slot and b.traffic_class is TrafficClass.USER}
        assert user == set(Version), "both versions' user batches in every interval"
    for batch in batches:
        assert parse_batch(batch.to_json()) == batch
        assert batch.route == DEFAULT_ROUTE and batch.interval_s == interval
        assert sum(batch.histogram.counts) >= len(batch.samples)
        inside = [
            r
            for r in found
            if batch.ts <= r.ts < batch.ts + interval
            and (r.version, r.traffic_class) == (batch.version, batch.traffic_class)
        ]
        assert batch.requests == len(inside)
        assert batch.users == len({r.user for r in inside if r.user})
        timed = [r for r in inside if r.latency_ms is not None]
        assert sum(batch.histogram.counts) == len(timed)
    assert tally.flush(1060.0) == []


def test_a_latency_on_a_bound_falls_in_that_bucket() -> None:
    tally = Tally("shop", 10.0)
    tally.start(0.0)
    for latency in (1.0, 1.5, 10_000.0, 10_000.5):
        tally.add(Record(1.0, Version.STABLE, TrafficClass.USER, 200, latency))
    (stable,) = [b for b in tally.flush(10.0) if b.version is Version.STABLE]
    assert stable.histogram.le == (*BOUNDS_MS, math.inf)
    counts = dict(zip(stable.histogram.le, stable.histogram.counts, strict=True))
    assert counts[1] == 1 and counts[2.5] == 1 and counts[10_000] == 1 and counts[math.inf] == 1


def test_the_reservoir_keeps_at_most_the_schema_cap() -> None:
    tally = Tally("shop", 10.0, rng=random.Random(3))  # noqa: S311 - sampling
    tally.start(0.0)
    for i in range(MAX_SAMPLES * 3):
        tally.add(Record(1.0, Version.CANDIDATE, TrafficClass.USER, 200, float(i)))
    (candidate,) = [b for b in tally.flush(10.0) if b.version is Version.CANDIDATE]
    assert candidate.requests == MAX_SAMPLES * 3
    assert len(candidate.samples) == MAX_SAMPLES
    assert max(candidate.samples) > MAX_SAMPLES  # later latencies replaced earlier ones


def test_new_users_count_once_per_step_and_a_new_share_starts_a_step() -> None:
    tally = Tally("shop", 10.0)
    tally.start(0.0)
    tally.set_share(0.05)

    def visit(ts: float, user: str) -> None:
        tally.add(Record(ts, Version.CANDIDATE, TrafficClass.USER, 200, 1.0, user))

    visit(1, "a")
    visit(2, "b")
    visit(11, "a")
    visit(12, "c")
    first, second = (b for b in tally.flush(20.0) if b.version is Version.CANDIDATE)
    assert (first.users, first.new_users) == (2, 2)
    assert (second.users, second.new_users) == (2, 1)  # a was seen earlier in the step
    assert second.configured_share == 0.05
    tally.set_share(0.25)  # the weight moved: a new step
    visit(21, "a")
    (third,) = (b for b in tally.flush(30.0) if b.version is Version.CANDIDATE)
    assert (third.users, third.new_users, third.configured_share) == (1, 1, 0.25)
    (stable,) = (b for b in tally.flush(40.0) if b.version is Version.STABLE)
    assert stable.configured_share == 0.75 and stable.requests == 0


def test_records_of_an_interval_already_emitted_are_dropped_and_counted() -> None:
    tally = Tally("shop", 10.0)
    tally.start(100.0)
    tally.add(Record(95.0, Version.STABLE, TrafficClass.USER, 200))  # before the start
    assert tally.flush(110.0)[0].requests == 0
    tally.add(Record(105.0, Version.STABLE, TrafficClass.USER, 200))
    assert tally.late == 2
