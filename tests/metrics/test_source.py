"""Turning a source's failure or empty answer into an explicit "no data" reason."""

from __future__ import annotations

from stageless.analysis.batch import Batch, TrafficClass, Version
from stageless.errors import UpstreamError
from stageless.metrics import Fetched, MetricSource, SourceError, fetch_user_batches
from tests.metrics.factories import batch


class ListSource:
    """A real in-memory source (not a mock): it answers from a list, or fails with a reason."""

    def __init__(self, batches: list[Batch], failure: str | None = None) -> None:
        self.batches = batches
        self.failure = failure

    def fetch_batches(self, service: str, route: str, start: float, end: float) -> list[Batch]:
        if self.failure:
            raise SourceError(self.failure)
        return [b for b in self.batches if b.service == service and start <= b.ts < end]


def both_versions() -> list[Batch]:
    return [batch(version=Version.STABLE, requests=900), batch(version=Version.CANDIDATE)]


def test_a_list_source_is_a_metric_source() -> None:
    assert isinstance(ListSource([]), MetricSource)


def test_source_errors_are_upstream_errors() -> None:
    assert issubclass(SourceError, UpstreamError)
    assert SourceError.code == "upstream"


def test_both_versions_with_requests_can_be_judged() -> None:
    fetched = fetch_user_batches(ListSource(both_versions()), "checkout", "/api", 0, 2_000)
    assert fetched.ok
    assert fetched.problem is None
    assert len(fetched.batches) == 2


def test_a_failing_source_gives_its_reason_not_an_exception() -> None:
    source = ListSource([], failure="cannot reach Prometheus at http://127.0.0.1:1: refused")
    fetched = fetch_user_batches(source, "checkout", "/api", 0, 2_000)
    assert fetched == Fetched((), "no data: cannot reach Prometheus at http://127.0.0.1:1: refused")
    assert not fetched.ok


def test_an_empty_answer_is_no_data() -> None:
    fetched = fetch_user_batches(ListSource([]), "checkout", "/api", 0, 2_000)
    assert fetched.problem == (
        "no data: the source returned no user-traffic batch for checkout /api"
    )


def test_only_user_traffic_is_kept_and_counted() -> None:
    tester = [
        batch(version=Version.STABLE, traffic_class=TrafficClass.TESTER),
        batch(version=Version.CANDIDATE, traffic_class=TrafficClass.SYNTHETIC),
    ]
    fetched = fetch_user_batches(ListSource(tester), "checkout", "/api", 0, 2_000)
    assert fetched.batches == ()
    assert fetched.problem is not None
    assert "no user-traffic batch" in fetched.problem


def test_a_missing_version_is_named() -> None:
    only_stable = [batch(version=Version.STABLE)]
    fetched = fetch_user_batches(ListSource(only_stable), "checkout", "/api", 0, 2_000)
    assert fetched.problem == "no data: no candidate batch for checkout /api"
    assert len(fetched.batches) == 1


def test_a_version_without_requests_is_no_data() -> None:
    idle = [batch(version=Version.STABLE), batch(requests=0, errors=0, client_errors=0)]
    fetched = fetch_user_batches(ListSource(idle), "checkout", "/api", 0, 2_000)
    assert fetched.problem == "no data: candidate served no user request on checkout /api"
