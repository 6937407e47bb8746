"""The proxy's Prometheus metrics: a custom collector over an :class:`Aggregate`.

Register :class:`ProxyCollector` on a ``CollectorRegistry`` the caller owns (never
prometheus_client's global ``REGISTRY``) and serve :func:`render_metrics` on the admin
``/metrics`` endpoint. Every value is read from the aggregate at scrape time:

- ``stageless_proxy_requests_total``, ``stageless_proxy_errors_total`` (5xx and connection
  failures), ``stageless_proxy_client_errors_total`` (4xx) and the histogram
  ``stageless_proxy_request_duration_seconds`` (``_bucket``, ``_sum``, ``_count``; buckets
  0.001 … 10 s and +Inf), labelled ``service``, ``route``, ``version``, ``traffic_class``;
- ``stageless_proxy_shadow_copies_total{service, route, outcome}`` with ``outcome`` one of
  ``sent``, ``dropped_queue_full``, ``dropped_error``, ``dropped_timeout``, ``too_large``;
  ``stageless_proxy_shadow_compared_total`` and ``stageless_proxy_shadow_differing_total``
  labelled ``service``, ``route``;
- with a :class:`~stageless.proxy.batches.BatchWriter`: ``stageless_proxy_batches_written_total``
  and ``stageless_proxy_batch_write_errors_total``.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric

from stageless.proxy.batches import Aggregate, BatchWriter
from stageless.proxy.stats import SHADOW_OUTCOMES

SERIES_LABELS = ("service", "route", "version", "traffic_class")
ROUTE_LABELS = ("service", "route")


class ProxyCollector:
    """Collects the ``stageless_proxy_*`` metrics from an aggregate (and optionally a writer)."""

    def __init__(self, aggregate: Aggregate, writer: BatchWriter | None = None) -> None:
        self.aggregate = aggregate
        self.writer = writer

    def describe(self) -> Iterator[Metric]:
        """The metric names without values, so registering does not collect."""
        yield from self._families(empty=True)

    def collect(self) -> Iterator[Metric]:
        yield from self._families(empty=False)

    def _families(self, *, empty: bool) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "stageless_proxy_requests",
            "Requests proxied, by service, route, version and traffic class.",
            labels=SERIES_LABELS,
        )
        errors = CounterMetricFamily(
            "stageless_proxy_errors",
            "Requests answered with a 5xx status or failed (connection failure, proxy error).",
            labels=SERIES_LABELS,
        )
        client_errors = CounterMetricFamily(
            "stageless_proxy_client_errors",
            "Requests answered with a 4xx status.",
            labels=SERIES_LABELS,
        )
        duration = HistogramMetricFamily(
            "stageless_proxy_request_duration_seconds",
            "Time from the request's arrival to the end of the response, in seconds.",
            labels=SERIES_LABELS,
        )
        copies = CounterMetricFamily(
            "stageless_proxy_shadow_copies",
            "Shadow copies of requests, by outcome (sent, dropped_queue_full, dropped_error, "
            "dropped_timeout, too_large).",
            labels=(*ROUTE_LABELS, "outcome"),
        )
        compared = CounterMetricFamily(
            "stageless_proxy_shadow_compared",
            "Shadow responses compared with the stable response.",
            labels=ROUTE_LABELS,
        )
        differing = CounterMetricFamily(
            "stageless_proxy_shadow_differing",
            "Compared shadow responses with at least one difference.",
            labels=ROUTE_LABELS,
        )
        if not empty:
            les = [_go_float(b) for b in self.aggregate.bounds_s] + ["+Inf"]
            for (service, route, version, traffic_class), t in self.aggregate.totals():
                labels = [service, route, str(version), str(traffic_class)]
                requests.add_metric(labels, t.requests)
                errors.add_metric(labels, t.errors)
                client_errors.add_metric(labels, t.client_errors)
                cumulative, running = [], 0
                for le, count in zip(les, t.buckets, strict=True):
                    running += count
                    cumulative.append((le, float(running)))
                duration.add_metric(labels, cumulative, t.latency_sum_s)
            for (service, route), counts in self.aggregate.shadow_totals():
                for outcome in SHADOW_OUTCOMES:
                    copies.add_metric([service, route, outcome], counts[outcome])
                compared.add_metric([service, route], counts["compared"])
                differing.add_metric([service, route], counts["differing"])
        yield from (requests, errors, client_errors, duration, copies, compared, differing)
        if self.writer is not None:
            written = CounterMetricFamily(
                "stageless_proxy_batches_written",
                "Batches appended to the batch file and synced to disk.",
            )
            failed = CounterMetricFamily(
                "stageless_proxy_batch_write_errors",
                "Intervals whose batches could not be written to the batch file.",
            )
            if not empty:
                written.add_metric([], self.writer.written)
                failed.add_metric([], self.writer.errors)
            yield from (written, failed)


def _go_float(value: float) -> str:
    """A bucket bound as Prometheus writes it (``0.001``, ``10.0``)."""
    return repr(float(value))


def render_metrics(registry: CollectorRegistry) -> bytes:
    """The registry in the Prometheus text format (serve as ``CONTENT_TYPE_LATEST``)."""
    return generate_latest(registry)
