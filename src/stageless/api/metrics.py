"""Prometheus metrics on a registry owned by the app (never prometheus_client's global one).

* ``stageless_http_requests_total{method, route, status}`` and
  ``stageless_http_request_duration_seconds{method, route}``: ``route`` is the route template
  (``/api/v1/flag-sets/{name}``), never the raw path, so cardinality stays bounded.
* ``stageless_flag_evaluations_total{flag_set, flag, reason}``: incremented by the OFREP routes
  through ``Metrics.count_evaluation``.
* ``stageless_stream_subscribers{stream}``: open event streams (``sync``, ``ofrep``, ``proxy``).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

#: Label of flags not in the set, so unknown keys from callers cannot grow the series count.
UNKNOWN_FLAG = "(unknown)"
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    """The app's metrics. ``registry`` is this app's own ``CollectorRegistry``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "stageless_http_requests_total",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "stageless_http_request_duration_seconds",
            "Time to answer HTTP requests (to the end of the response), by route template.",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.evaluations = Counter(
            "stageless_flag_evaluations_total",
            "Flag evaluations served, by flag set, flag and reason.",
            ["flag_set", "flag", "reason"],
            registry=self.registry,
        )
        self.stream_subscribers = Gauge(
            "stageless_stream_subscribers",
            "Open event streams, by kind (sync: flag-set streams, ofrep: OFREP event streams, "
            "proxy: proxy-config streams).",
            ["stream"],
            registry=self.registry,
        )

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def count_evaluation(
        self, flag_set: str, flag: str, reason: str, *, known: bool = True
    ) -> None:
        """Count one evaluation; pass ``known=False`` for a key the set does not define."""
        self.evaluations.labels(flag_set, flag if known else UNKNOWN_FLAG, reason).inc()

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
