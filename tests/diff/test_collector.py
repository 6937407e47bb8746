"""DiffCollector: counting, Diffy's noise filter (the worked examples), caps, merging."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stageless.diff import (
    CollectorState,
    DiffCollector,
    FieldReport,
    Lifted,
    NoiseFilter,
    noise_estimate,
)
from tests.diff.factories import json_response

ENDPOINT = "GET /api/orders"
SAME = json_response({"name": "Ann", "at": 1})
RENAMED = json_response({"name": "ann", "at": 1})
LATER = json_response({"name": "Ann", "at": 2})


def feed(collector: DiffCollector, total: int, raw: int, noise: int) -> None:
    """``total`` requests: the first ``raw`` differ at body.name between primary and candidate,
    the first ``noise`` also differ there between primary and secondary."""
    for i in range(total):
        candidate = RENAMED if i < raw else SAME
        secondary = RENAMED if i < noise else SAME
        collector.record(ENDPOINT, SAME, candidate, secondary, f"GET /api/orders/{i}")


def name_field(collector: DiffCollector) -> FieldReport:
    (endpoint,) = collector.report().endpoints
    (field,) = [f for f in endpoint.fields if f.path == "body.name"]
    return field


def test_fifty_raw_with_forty_five_noise_in_a_thousand_is_hidden() -> None:
    collector = DiffCollector()
    feed(collector, 1000, 50, 45)
    field = name_field(collector)
    assert (field.raw, field.noise) == (50, 45)
    assert field.absolute == pytest.approx(0.5)
    assert field.relative == pytest.approx(5.263, abs=1e-3)
    assert not field.reported
    assert not collector.report().endpoints[0].critical


def test_fifty_raw_without_noise_in_a_thousand_is_reported() -> None:
    collector = DiffCollector()
    feed(collector, 1000, 50, 0)
    field = name_field(collector)
    assert field.absolute == pytest.approx(5.0)
    assert field.relative == pytest.approx(100.0)
    assert field.reported
    report = collector.report()
    assert report.endpoints[0].critical
    assert report.critical


@pytest.mark.parametrize(("total", "reported"), [(1, True), (3333, True), (3334, False)])
def test_a_lone_difference_passes_only_while_total_is_below_about_3333(
    total: int, reported: bool
) -> None:
    assert NoiseFilter().passes(1, 0, total) is reported


@pytest.mark.parametrize(
    ("raw", "noise", "total", "reported"),
    [
        (10, 10, 100, False),  # raw > noise fails
        (10, 11, 100, False),
        (6, 4, 100, False),  # relative exactly 20.0: strict
        (7, 4, 100, True),  # relative 27.3, absolute 3
        (3, 0, 10_000, False),  # absolute exactly 0.03: strict
        (4, 0, 10_000, True),
    ],
)
def test_the_thresholds_are_strict(raw: int, noise: int, total: int, reported: bool) -> None:
    assert NoiseFilter().passes(raw, noise, total) is reported


def test_thresholds_are_configurable_at_read_time() -> None:
    collector = DiffCollector()
    feed(collector, 1000, 50, 45)
    lenient = collector.report(noise_filter=NoiseFilter(relative=5.0, absolute=0.1))
    assert lenient.endpoints[0].fields[0].reported
    assert lenient.thresholds == NoiseFilter(relative=5.0, absolute=0.1)


def test_counts_kinds_and_examples() -> None:
    collector = DiffCollector()
    assert collector.record(ENDPOINT, SAME, RENAMED, None, "GET /api/orders/1") is True
    assert collector.record(ENDPOINT, SAME, SAME, None, "GET /api/orders/2") is False
    assert collector.record(ENDPOINT, SAME, LATER, SAME, "GET /api/orders/3") is True
    (endpoint,) = collector.report().endpoints
    assert (endpoint.endpoint, endpoint.total, endpoint.differing) == (ENDPOINT, 3, 2)
    assert endpoint.noise_sampled == 1
    by_path = {f.path: f for f in endpoint.fields}
    assert by_path["body.name"].kinds == (("PrimitiveDifference", 1),)
    (example,) = by_path["body.name"].examples
    assert (example.request, example.primary, example.candidate) == (
        "GET /api/orders/1",
        '"Ann"',
        '"ann"',
    )
    assert by_path["body.at"].examples[0].candidate == "2"


def test_missing_fields_show_absent_in_examples() -> None:
    collector = DiffCollector()
    collector.record(ENDPOINT, SAME, json_response({"name": "Ann"}))
    field = collector.report().endpoints[0].fields[0]
    assert field.path == "body.at"
    assert field.kinds == (("MissingField", 1),)
    assert (field.examples[0].primary, field.examples[0].candidate) == ("1", "(absent)")


def test_at_most_five_examples_per_path() -> None:
    collector = DiffCollector()
    feed(collector, 20, 20, 0)
    examples = name_field(collector).examples
    assert [e.request for e in examples] == [f"GET /api/orders/{i}" for i in range(5)]
    assert len(collector.report(max_examples=2).endpoints[0].fields[0].examples) == 2


def test_without_a_secondary_noise_counts_nothing() -> None:
    collector = DiffCollector()
    for _ in range(10):
        collector.record(ENDPOINT, SAME, RENAMED, None)
    field = name_field(collector)
    assert (field.raw, field.noise) == (10, 0)
    assert collector.report().endpoints[0].noise_sampled == 0


def feed_sampled(collector: DiffCollector, total: int, raw: int, every: int, noise: int) -> None:
    """Like :func:`feed`, with a secondary for one request in ``every``; the first ``noise``
    of those differ at body.name between primary and secondary."""
    sampled = 0
    for i in range(total):
        candidate = RENAMED if i < raw else SAME
        secondary = None
        if i % every == 0:
            secondary = RENAMED if sampled < noise else SAME
            sampled += 1
        collector.record(ENDPOINT, SAME, candidate, secondary, f"GET /api/orders/{i}")


def test_noise_measured_on_a_tenth_of_the_requests_is_scaled_to_all_of_them() -> None:
    """50 raw differences in 1,000, and 5 noise differences in the 100 requests with a second
    stable sample: as noisy as the candidate (50 expected over 1,000), so hidden. Counted
    unscaled (5), the field would be reported."""
    collector = DiffCollector()
    feed_sampled(collector, 1000, 50, 10, 5)
    (endpoint,) = collector.report().endpoints
    assert endpoint.noise_sampled == 100
    field = name_field(collector)
    assert (field.raw, field.noise, field.noise_estimate) == (50, 5, 50.0)
    assert field.relative == 0.0
    assert not field.reported
    assert NoiseFilter().passes(50, 5, 1000)  # what the raw count would have said


def test_no_noise_on_a_sample_still_reports_the_difference() -> None:
    collector = DiffCollector()
    feed_sampled(collector, 1000, 50, 10, 0)
    field = name_field(collector)
    assert (field.noise, field.noise_estimate) == (0, 0.0)
    assert field.reported


@given(st.integers(0, 40), st.integers(0, 40), st.integers(1, 40))
def test_with_a_secondary_on_every_request_the_filter_is_diffys(
    raw: int, noise: int, total: int
) -> None:
    raw, noise = min(raw, total), min(noise, total)
    collector = DiffCollector()
    feed(collector, total, raw, noise)
    fields = {f.path: f for f in collector.report().endpoints[0].fields}
    if not raw:
        assert "body.name" not in fields
        return
    field = fields["body.name"]
    assert field.noise_estimate == field.noise == noise
    assert field.reported is NoiseFilter().passes(raw, noise, total)


@pytest.mark.parametrize(
    ("noise", "sampled", "total", "estimate"),
    [(5, 100, 1000, 50.0), (3, 3, 3, 3.0), (0, 0, 10, 0.0), (1, 3, 10, 10 / 3), (2, 10, 10, 2.0)],
)
def test_noise_estimate(noise: int, sampled: int, total: int, estimate: float) -> None:
    assert noise_estimate(noise, sampled, total) == pytest.approx(estimate)


def test_noise_only_paths_are_counted_but_not_listed() -> None:
    collector = DiffCollector()
    collector.record(ENDPOINT, SAME, SAME, LATER)
    (endpoint,) = collector.report().endpoints
    assert endpoint.fields == ()
    assert collector.state.endpoints[ENDPOINT].fields["body.at"].noise == 1


def test_reported_fields_come_first() -> None:
    collector = DiffCollector()
    for i in range(100):
        collector.record(ENDPOINT, SAME, LATER, LATER if i < 99 else SAME)  # "at" is noise
    for _ in range(10):
        collector.record(ENDPOINT, SAME, RENAMED, SAME)
    paths = [(f.path, f.reported) for f in collector.report().endpoints[0].fields]
    assert paths == [("body.name", True), ("body.at", False)]


def test_endpoints_over_the_cap_are_counted() -> None:
    collector = DiffCollector(max_endpoints=2)
    for name in ("a", "b", "c", "c", "a"):
        collector.record(name, SAME, RENAMED)
    report = collector.report()
    assert [e.endpoint for e in report.endpoints] == ["a", "b"]
    assert report.untracked_requests == 2
    assert report.endpoints[0].total == 2


def test_paths_over_the_cap_are_counted() -> None:
    collector = DiffCollector(max_fields=1)
    collector.record(ENDPOINT, SAME, json_response({"name": "x", "at": 9}))
    endpoint = collector.report().endpoints[0]
    assert len(endpoint.fields) == 1
    assert endpoint.untracked_differences == 1


def test_take_hands_over_the_state_and_starts_again() -> None:
    collector = DiffCollector()
    collector.record(ENDPOINT, SAME, RENAMED)
    state = collector.take()
    assert state.endpoints[ENDPOINT].total == 1
    assert collector.report().endpoints == ()


def test_the_state_pickles() -> None:
    collector = DiffCollector()
    feed(collector, 10, 3, 1)
    state = round_trip(collector.state)
    assert state == collector.state


def test_merging_respects_the_caps() -> None:
    one, two = DiffCollector(), DiffCollector()
    one.record("a", SAME, RENAMED)
    two.record("b", SAME, RENAMED)
    two.record("a", SAME, json_response({"other": 1}))
    merged = DiffCollector(max_endpoints=1, max_fields=2)
    merged.merge(one.take())
    merged.merge(two.take())
    report = merged.report()
    assert report.untracked_requests == 1
    (a,) = report.endpoints
    assert a.total == 2
    assert a.untracked_differences == 1  # body.other did not fit beside body.name, body.at


RESPONSES = [SAME, RENAMED, LATER, json_response({"name": 1}), json_response([1, 2])]
requests = st.lists(
    st.tuples(
        st.sampled_from(["GET /a", "GET /b", "POST /c"]),
        st.sampled_from(RESPONSES),
        st.sampled_from(RESPONSES),
        st.none() | st.sampled_from(RESPONSES),
    ),
    max_size=30,
)


def round_trip(state: CollectorState) -> CollectorState:
    """The state as another worker process would send it: pickled and read back."""
    copy: CollectorState = pickle.loads(pickle.dumps(state))  # noqa: S301 - our own data
    return copy


def run(items: list[tuple[str, Lifted, Lifted, Lifted | None]]) -> DiffCollector:
    collector = DiffCollector()
    for n, (endpoint, primary, candidate, secondary) in enumerate(items):
        collector.record(endpoint, primary, candidate, secondary, f"req {n}")
    return collector


@given(requests, requests)
def test_merging_two_collectors_equals_one_fed_everything(first: Any, second: Any) -> None:
    everything = run(first + second)
    one = run(first)
    two = DiffCollector()
    for n, (endpoint, primary, candidate, secondary) in enumerate(second, start=len(first)):
        two.record(endpoint, primary, candidate, secondary, f"req {n}")
    merged = DiffCollector()
    merged.merge(round_trip(one.take()))
    merged.merge(round_trip(two.take()))
    assert merged.report() == everything.report()
    assert _normalised(merged.state) == _normalised(everything.state)


def _normalised(state: CollectorState) -> Any:
    return (
        state.untracked_requests,
        {
            name: (e.total, e.differing, e.noise_sampled, e.untracked_differences, dict(e.fields))
            for name, e in state.endpoints.items()
        },
    )


@given(st.lists(st.booleans(), max_size=20), st.integers(0, 2))
def test_record_same_counts_what_record_counts_for_equal_answers(
    sampled: list[bool], max_endpoints: int
) -> None:
    slow = DiffCollector(max_endpoints=max_endpoints)
    fast = DiffCollector(max_endpoints=max_endpoints)
    for i, noise in enumerate(sampled):
        endpoint = f"GET /e{i % 3}"
        slow.record(endpoint, SAME, SAME, SAME if noise else None)
        fast.record_same(endpoint, noise_sampled=noise)
    assert fast.state == slow.state


@given(st.lists(st.tuples(st.integers(0, 2), st.booleans(), st.integers(1, 4)), max_size=12))
def test_record_same_times_n_counts_what_n_single_calls_count(
    calls: list[tuple[int, bool, int]],
) -> None:
    at_once = DiffCollector(max_endpoints=2)
    one_by_one = DiffCollector(max_endpoints=2)
    for endpoint, noise, times in calls:
        at_once.record_same(f"GET /e{endpoint}", noise_sampled=noise, times=times)
        for _ in range(times):
            one_by_one.record_same(f"GET /e{endpoint}", noise_sampled=noise)
    assert at_once.state == one_by_one.state
