"""The Prometheus source against a real Prometheus scraping a real target (see conftest.py)."""

from __future__ import annotations

import math
import socket
from collections.abc import Iterator

import pytest

from stageless.analysis.batch import Batch, TrafficClass, Version
from stageless.metrics import (
    MetricSource,
    PrometheusConfig,
    PrometheusSource,
    PromQLTemplates,
    SourceError,
    fetch_user_batches,
)
from tests.metrics.conftest import RunningPrometheus
from tests.ports import free_port

INTERVAL_S = 3.0
CLIENT_ERRORS = (
    'sum(increase(stageless_proxy_client_errors_total{service="$service",route="$route",'
    'version="$version",traffic_class="user"}[$interval]))'
)
BUCKETS_MS = (5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0)


def source(url: str, **overrides: object) -> PrometheusSource:
    templates = PromQLTemplates(client_errors=CLIENT_ERRORS)
    fields: dict[str, object] = {"templates": templates, "interval_s": INTERVAL_S}
    fields.update(overrides)
    return PrometheusSource(PrometheusConfig(url=url, **fields))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def fetched(prometheus: RunningPrometheus) -> Iterator[tuple[float, list[Batch]]]:
    s = source(prometheus.url, canary_share=0.1)
    start = math.floor(prometheus.first_sample) + 1.0
    try:
        yield start, s.fetch_batches("checkout", "/api", start, start + 3 * INTERVAL_S)
    finally:
        s.close()


def near(value: float, expected: float, tolerance: float) -> bool:
    return abs(value - expected) <= tolerance


def test_a_prometheus_source_is_a_metric_source() -> None:
    s = PrometheusSource(PrometheusConfig())
    assert isinstance(s, MetricSource)
    s.close()


def test_one_batch_per_version_and_interval_tiling_the_window(
    fetched: tuple[float, list[Batch]],
) -> None:
    start, batches = fetched
    expected_ts = [start + INTERVAL_S * i for i in (0, 1, 2)]
    assert [(b.ts, b.version) for b in batches] == [
        (ts, version) for ts in expected_ts for version in (Version.STABLE, Version.CANDIDATE)
    ]
    for b in batches:
        assert (b.service, b.route, b.interval_s) == ("checkout", "/api", INTERVAL_S)
        assert b.traffic_class is TrafficClass.USER
        assert b.samples == ()  # Prometheus keeps no raw samples
        assert b.users == 0  # unknown from Prometheus
        assert b.configured_share == (0.1 if b.version is Version.CANDIDATE else 0.9)


def test_counts_are_the_increase_over_each_interval(fetched: tuple[float, list[Batch]]) -> None:
    _, batches = fetched
    for b in batches:
        if b.version is Version.CANDIDATE:  # 10 req/s, 1 error/s, no 4xx; tester traffic ignored
            assert near(b.requests, 30, 3), b
            assert near(b.errors, 3, 1), b
            assert b.client_errors == 0
        else:  # 90 req/s, 0.9 errors/s, 1.8 client errors/s
            assert near(b.requests, 270, 20), b
            assert near(b.errors, 3, 1), b
            assert near(b.client_errors, 5, 1), b


def test_latency_comes_as_per_bucket_counts_in_ms(fetched: tuple[float, list[Batch]]) -> None:
    _, batches = fetched
    for b in batches:
        assert b.histogram.le == (*BUCKETS_MS, math.inf)
        assert near(sum(b.histogram.counts), b.requests, 2), b
        by_le = dict(zip(b.histogram.le, b.histogram.counts, strict=True))
        if b.version is Version.CANDIDATE:  # 20 % ≤ 100 ms, 50 % ≤ 250, 20 % ≤ 500, 10 % ≤ 1 s
            assert near(by_le[100.0], 6, 1) and near(by_le[250.0], 15, 2), b
            assert near(by_le[500.0], 6, 1) and near(by_le[1000.0], 3, 1), b
            assert by_le[50.0] == 0 and by_le[2500.0] == 0
        else:  # nothing above 500 ms
            assert near(by_le[100.0], 135, 10), b
            assert by_le[1000.0] == 0 and by_le[math.inf] == 0


def test_templates_point_the_source_at_a_users_own_metrics(prometheus: RunningPrometheus) -> None:
    own = 'sum(increase(http_requests_total{app="$service",track="$version"}[$interval]))'
    templates = PromQLTemplates(
        requests=own,
        errors='sum(increase(http_errors_total{app="$service"}[$interval]))',  # never created
        latency_buckets=None,
    )
    s = source(
        prometheus.url, templates=templates, canary_version="canary", baseline_version="primary"
    )
    start = math.floor(prometheus.first_sample) + 1.0
    batches = s.fetch_batches("checkout", "ignored", start, start + INTERVAL_S)
    s.close()
    assert [b.version for b in batches] == [Version.STABLE, Version.CANDIDATE]
    stable, candidate = batches
    assert near(stable.requests, 270, 20) and near(candidate.requests, 30, 3)
    assert stable.errors == candidate.errors == 0  # a counter that does not exist counts 0
    assert candidate.histogram.le == ()


def test_a_candidate_without_traffic_is_no_data_not_a_pass(prometheus: RunningPrometheus) -> None:
    s = source(prometheus.url, canary_share=0.05)
    start = math.floor(prometheus.first_sample) + 1.0
    fetched = fetch_user_batches(s, "search", "/q", start, start + 2 * INTERVAL_S)
    s.close()
    assert fetched.problem == "no data: no candidate batch for search /q"
    assert {b.version for b in fetched.batches} == {Version.STABLE}


def test_no_series_at_all_names_the_query(prometheus: RunningPrometheus) -> None:
    s = source(prometheus.url)
    start = math.floor(prometheus.first_sample) + 1.0
    with pytest.raises(SourceError) as info:
        s.fetch_batches("nobody", "/none", start, start + INTERVAL_S)
    s.close()
    message = str(info.value)
    assert "returned no series for sum(increase(stageless_proxy_requests_total{" in message
    assert 'service="nobody"' in message
    assert "check the metric names and labels in the templates" in message
    s = source(prometheus.url)
    fetched = fetch_user_batches(s, "nobody", "/none", start, start + INTERVAL_S)
    s.close()
    assert fetched.problem is not None and fetched.problem.startswith("no data: Prometheus at")


def test_a_promql_error_is_reported_with_prometheus_own_words(
    prometheus: RunningPrometheus,
) -> None:
    broken = PromQLTemplates(requests="sum(increase(stageless_proxy_requests_total[$interval])")
    s = source(prometheus.url, templates=broken)
    with pytest.raises(SourceError, match=r"Prometheus rejected the query .*: bad_data: .*parse"):
        s.fetch_batches("checkout", "/api", 1_000.0, 1_010.0)
    s.close()


def test_an_http_error_is_reported_with_its_status(prometheus: RunningPrometheus) -> None:
    s = source(prometheus.url + "/not-prometheus")
    with pytest.raises(SourceError, match=r"answered HTTP 404"):
        s.fetch_batches("checkout", "/api", 1_000.0, 1_010.0)
    s.close()


def test_connection_refused_is_a_readable_reason() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there any more
    s = source(url)
    with pytest.raises(SourceError, match=rf"cannot reach Prometheus at {url}: .*refused"):
        s.fetch_batches("checkout", "/api", 1_000.0, 1_010.0)
    s.close()


def test_a_server_that_never_answers_times_out() -> None:
    with socket.socket() as silent:  # accepts connections (backlog) but never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        s = source(url, timeout_s=0.3)
        with pytest.raises(SourceError, match=rf"Prometheus at {url} timed out"):
            s.fetch_batches("checkout", "/api", 1_000.0, 1_010.0)
        s.close()


def test_a_bad_placeholder_is_named() -> None:
    s = source("http://127.0.0.1:1", templates=PromQLTemplates(requests='up{job="$job"}'))
    with pytest.raises(SourceError, match=r"bad placeholder .*expected only \$service"):
        s.fetch_batches("checkout", "/api", 1_000.0, 1_010.0)
    s.close()


def test_label_values_are_escaped_as_promql_strings() -> None:
    rendered = PromQLTemplates().render('x{a="$service"}', 'we"ird\\', "/", "v", "10s")
    assert rendered == 'x{a="we\\"ird\\\\"}'


def test_a_window_shorter_than_one_interval_has_no_batch() -> None:
    s = source("http://127.0.0.1:1")
    assert s.fetch_batches("checkout", "/api", 1_000.0, 1_000.0 + INTERVAL_S / 2) == []
    s.close()


def test_the_interval_must_be_positive() -> None:
    with pytest.raises(SourceError, match="interval_s is 0"):
        PrometheusSource(PrometheusConfig(interval_s=0))
