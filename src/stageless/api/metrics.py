"""Prometheus metrics on a registry owned by the app (never prometheus_client's global one).

* ``stageless_http_requests_total{method, route, status}`` and
  ``stageless_http_request_duration_seconds{method, route}``: ``route`` is the route template
  (``/api/v1/flag-sets/{name}``), never the raw path, so cardinality stays bounded.
* ``stageless_flag_evaluations_total{flag_set, flag, reason}``: evaluations the OFREP routes
  answered (a bulk answer counts each of its flags; a 304 counts none). The routes add to
  ``Metrics.tally`` (an ``EvaluationTally``), which reaches the counter when the metrics are
  rendered.
* ``stageless_stream_subscribers{stream}``: open event streams (``sync``, ``ofrep``, ``proxy``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

#: Label of flags not in the set, so unknown keys from callers cannot grow the series count.
UNKNOWN_FLAG = "(unknown)"
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Countable(Protocol):
    """A counter child (``Counter.labels(...)``) or a ``Batch`` of them."""

    def inc(self, amount: float = 1) -> None: ...


class Batch:
    """Counter children counted together: the flags of one bulk answer, added as one item.

    Hashed by identity: a batch is made once (with the cached answer it counts) and added to
    the tally as often as that answer is served.
    """

    __slots__ = ("children",)

    def __init__(self, children: Iterable[Countable]) -> None:
        self.children = tuple(children)

    def inc(self, amount: float = 1) -> None:
        for child in self.children:
            child.inc(amount)


class EvaluationTally:
    """Counts added without Prometheus's per-increment lock, folded into the counters later.

    A bulk OFREP answer counts 50 evaluations; 50 ``Counter.inc()`` calls (each takes a lock)
    cost about 16 µs, as much as evaluating the 50 flags. Here a request adds to a plain dict
    under one lock acquisition, and ``fold()`` passes the sums on: ``Metrics.render`` folds
    first, so a scrape sees every evaluation answered before it, and ``add`` folds by itself
    once ``FOLD_AT`` distinct items are pending (which bounds the dict).
    """

    FOLD_AT = 4096

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[Countable, int] = {}

    def add(self, item: Countable) -> None:
        """Count ``item`` once (every child of a ``Batch``)."""
        with self._lock:
            pending = self._pending
            pending[item] = pending.get(item, 0) + 1
            full = len(pending) >= self.FOLD_AT
        if full:
            self.fold()

    def add_all(self, items: Iterable[Countable]) -> None:
        """Count each of ``items`` once."""
        with self._lock:
            pending = self._pending
            for item in items:
                pending[item] = pending.get(item, 0) + 1
            full = len(pending) >= self.FOLD_AT
        if full:
            self.fold()

    def fold(self) -> None:
        """Add every pending count to its counter and start afresh."""
        with self._lock:
            pending, self._pending = self._pending, {}
        for item, count in pending.items():
            item.inc(count)


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
        self.tally = EvaluationTally()
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
        """The text exposition format (pending evaluation counts included)."""
        self.tally.fold()
        return generate_latest(self.registry)
