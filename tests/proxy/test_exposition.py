"""The stageless_proxy_* metrics as a Prometheus scrape sees them."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from stageless.analysis.batch import TrafficClass, Version
from stageless.proxy.batches import Aggregate, BatchWriter
from stageless.proxy.exposition import ProxyCollector, render_metrics
from stageless.proxy.stats import Stats

LABELS = {"service": "checkout", "route": "api", "version": "candidate", "traffic_class": "user"}


def scrape(registry: CollectorRegistry) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the text exposition, by name and labels."""
    text = render_metrics(registry).decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def labels(**extra: str) -> frozenset[tuple[str, str]]:
    return frozenset({**LABELS, **extra}.items())


@pytest.fixture
def aggregate() -> Aggregate:
    aggregate = Aggregate(seed=1)
    for worker in range(2):
        stats = Stats(seed=worker)
        series = stats.series("checkout", "api", Version.CANDIDATE, TrafficClass.USER)
        for status, latency in [(200, 0.0005), (200, 0.003), (404, 0.2), (500, 0.2), (0, 30.0)]:
            series.observe(status, latency, worker)
        shadow = stats.shadow("checkout", "api")
        shadow.sent += 5
        shadow.dropped_queue_full += 1
        shadow.dropped_timeout += 2
        shadow.compared += 4
        shadow.differing += 1
        aggregate.merge(stats.snapshot_and_reset())
    return aggregate


def test_request_counters_carry_the_four_labels(aggregate: Aggregate) -> None:
    registry = CollectorRegistry()
    registry.register(aggregate.collector())
    samples = scrape(registry)
    assert samples["stageless_proxy_requests_total", labels()] == 10
    assert samples["stageless_proxy_errors_total", labels()] == 4
    assert samples["stageless_proxy_client_errors_total", labels()] == 2


def test_the_latency_histogram_is_cumulative_in_seconds(aggregate: Aggregate) -> None:
    registry = CollectorRegistry()
    registry.register(ProxyCollector(aggregate))
    samples = scrape(registry)
    name = "stageless_proxy_request_duration_seconds"
    buckets = {
        dict(lbls)["le"]: value
        for (sample, lbls), value in samples.items()
        if sample == f"{name}_bucket"
    }
    assert list(buckets) == [
        "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5",
        "1.0", "2.5", "5.0", "10.0", "+Inf",
    ]  # fmt: skip
    assert buckets["0.001"] == 2
    assert buckets["0.005"] == 4
    assert buckets["0.25"] == 8
    assert buckets["10.0"] == 8
    assert buckets["+Inf"] == 10
    assert samples[f"{name}_count", labels()] == 10
    assert samples[f"{name}_sum", labels()] == pytest.approx(2 * (0.0005 + 0.003 + 0.4 + 30.0))


def test_shadow_copies_by_outcome_and_comparisons_per_route(aggregate: Aggregate) -> None:
    registry = CollectorRegistry()
    registry.register(aggregate.collector())
    samples = scrape(registry)
    route = {"service": "checkout", "route": "api"}
    copies = {
        dict(lbls)["outcome"]: value
        for (sample, lbls), value in samples.items()
        if sample == "stageless_proxy_shadow_copies_total"
    }
    assert copies == {
        "sent": 10,
        "dropped_queue_full": 2,
        "dropped_error": 0,
        "dropped_timeout": 4,
        "too_large": 0,
    }
    assert samples["stageless_proxy_shadow_compared_total", frozenset(route.items())] == 8
    assert samples["stageless_proxy_shadow_differing_total", frozenset(route.items())] == 2


def test_counters_stay_cumulative_across_batch_intervals(aggregate: Aggregate) -> None:
    registry = CollectorRegistry()
    registry.register(aggregate.collector())
    aggregate.emit_batches(10.0, 10.0)
    stats = Stats()
    stats.series("checkout", "api", Version.CANDIDATE, TrafficClass.USER).observe(200, 0.01, 1)
    aggregate.merge(stats.snapshot_and_reset())
    assert scrape(registry)["stageless_proxy_requests_total", labels()] == 11


def test_declared_routes_are_exposed_at_zero_before_any_traffic() -> None:
    aggregate = Aggregate()
    aggregate.declare("checkout", "api")
    registry = CollectorRegistry()
    registry.register(aggregate.collector())
    samples = scrape(registry)
    for version in ("stable", "candidate"):
        assert samples["stageless_proxy_requests_total", labels(version=version)] == 0
        assert (
            samples[
                "stageless_proxy_request_duration_seconds_bucket",
                labels(version=version, le="+Inf"),
            ]
            == 0
        )


def test_the_batch_writer_counts_are_exposed_when_given(tmp_path: Path) -> None:
    aggregate = Aggregate()
    aggregate.declare("checkout", "api")
    writer = BatchWriter(tmp_path / "batches.jsonl")
    writer.write(aggregate.emit_batches(10.0, 10.0))
    registry = CollectorRegistry()
    registry.register(aggregate.collector(writer))
    samples = scrape(registry)
    assert samples["stageless_proxy_batches_written_total", frozenset()] == 2
    assert samples["stageless_proxy_batch_write_errors_total", frozenset()] == 0
    writer.path = tmp_path / "batches.jsonl" / "b.jsonl"  # under a file: cannot be created
    assert not writer.write(aggregate.emit_batches(30.0, 10.0))
    assert scrape(registry)["stageless_proxy_batch_write_errors_total", frozenset()] == 1


def test_the_global_registry_is_never_touched(aggregate: Aggregate) -> None:
    registry = CollectorRegistry()
    registry.register(aggregate.collector())
    render_metrics(registry)
    assert REGISTRY.get_sample_value("stageless_proxy_requests_total", LABELS) is None
    assert "stageless_proxy_requests_total" not in render_metrics(REGISTRY).decode()


def test_a_second_collector_with_the_same_names_is_refused_by_the_registry(
    aggregate: Aggregate,
) -> None:
    """describe() names every series, so the registry catches duplicates at registration."""
    registry = CollectorRegistry()
    registry.register(aggregate.collector())
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        registry.register(aggregate.collector())
