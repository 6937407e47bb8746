"""Per-worker request statistics: the hot path, one :class:`Stats` per worker process.

Every proxied request ends in one :meth:`Series.observe` call on the series of its service,
route, version and traffic class (callers fetch the series once per route and keep it). The
call is O(1) and cheap: plain int fields, a histogram bucket found by a scan of the bounds
(a latency usually falls in one of the first), a reservoir sample (Algorithm L: a random
number only for the latencies it keeps) and a set of user ids.

Once a second the worker calls :meth:`Stats.snapshot_and_reset` and sends the
:class:`StatsSnapshot` (plain picklable data: the deltas since the previous call) to the
process that owns ``/metrics`` and the batch file, where :class:`stageless.proxy.batches.Aggregate`
merges the snapshots of every worker.

Outcome of a request, by ``status``:

- ``0`` (or anything below 100): connection failure or proxy error, counted in ``errors``;
- ``5xx``: counted in ``errors``; ``4xx``: counted in ``client_errors``; the rest are successes.

Latency histogram: the default upper bounds are, in milliseconds, 1, 2.5, 5, 10, 25, 50, 100,
250, 500, 1000, 2500, 5000, 10000 and +Inf (:data:`DEFAULT_BOUNDS_MS`); a latency equal to a
bound falls in that bound's bucket (Prometheus ``le`` semantics). The reservoir keeps a uniform
sample of at most :data:`RESERVOIR_SIZE` latencies of the interval.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Final

from stageless.analysis.batch import TrafficClass, Version
from stageless.proxy.snapshots import SeriesKey, SeriesSnapshot, ShadowSnapshot, StatsSnapshot

#: Upper bounds of the latency histogram in ms; a last bucket (+Inf) is always added.
DEFAULT_BOUNDS_MS: tuple[float, ...] = (
    1.0,
    2.5,
    5.0,
    10.0,
    25.0,
    50.0,
    100.0,
    250.0,
    500.0,
    1000.0,
    2500.0,
    5000.0,
    10000.0,
)
#: Latencies kept per series and interval (the batch schema's cap on ``latency_ms.samples``).
RESERVOIR_SIZE: Final = 1_000
#: The shadow outcomes and counters, in the order :class:`ShadowSnapshot` keeps them.
SHADOW_OUTCOMES = ("sent", "dropped_queue_full", "dropped_error", "dropped_timeout", "too_large")
SHADOW_FIELDS = (*SHADOW_OUTCOMES, "compared", "differing")


def bounds_in_seconds(bounds_ms: Sequence[float]) -> tuple[float, ...]:
    """Check histogram bounds given in ms (finite, > 0, increasing) and convert them to seconds."""
    bounds = tuple(float(b) for b in bounds_ms)
    if not bounds:
        raise ValueError("histogram bounds: empty; expected at least one finite bound in ms")
    for i, bound in enumerate(bounds):
        if not math.isfinite(bound) or bound <= 0:
            raise ValueError(
                f"histogram bounds[{i}]: {bound!r} is not a finite number of ms > 0 "
                "(the +Inf bucket is added automatically)"
            )
        if i and bound <= bounds[i - 1]:
            raise ValueError(f"histogram bounds[{i}]: {bound!r} does not increase strictly")
    return tuple(b / 1000.0 for b in bounds)


class Series:
    """The counters of one (service, route, version, traffic class) in one worker."""

    __slots__ = (
        "_bounds",
        "_next",
        "_random",
        "_weight",
        "buckets",
        "client_errors",
        "errors",
        "key",
        "latency_sum",
        "requests",
        "samples",
        "users",
    )

    def __init__(self, key: SeriesKey, bounds_s: tuple[float, ...], rng: random.Random) -> None:
        self.key = key
        self._bounds = bounds_s
        self._random = rng.random
        self._weight = 1.0  # Algorithm L's W (see _skip_from)
        self._next = 0  # the number of the next latency kept once the reservoir is full
        self.requests = 0
        self.errors = 0
        self.client_errors = 0
        self.latency_sum = 0.0
        self.buckets = [0] * (len(bounds_s) + 1)
        self.samples: list[float] = []
        self.users: set[int] = set()

    def observe(self, status: int, latency_s: float, user: int | None) -> None:
        """Count one request: its status (0 = connection failure), latency and sticky user."""
        n = self.requests + 1
        self.requests = n
        if status >= 500 or status < 100:
            self.errors += 1
        elif status >= 400:
            self.client_errors += 1
        self.latency_sum += latency_s
        # bisect_left's bucket (the first bound not below the latency), by a scan: compiled,
        # a few native float comparisons, where the call to bisect_left cost about 400
        # instructions; ``not bound < latency_s`` is bisect_left's own test (NaN included).
        bucket = 0
        for bound in self._bounds:
            if not bound < latency_s:
                break
            bucket += 1
        self.buckets[bucket] += 1
        if n <= RESERVOIR_SIZE:
            self.samples.append(latency_s)
            if n == RESERVOIR_SIZE:
                self._weight = 1.0
                self._skip_from(n)
        elif n == self._next:
            self.samples[int(self._random() * RESERVOIR_SIZE)] = latency_s
            self._skip_from(n)
        if user is not None:
            self.users.add(user)

    def _skip_from(self, n: int) -> None:
        """Algorithm L (Li, 1994): the number of the next latency the reservoir keeps.

        A uniform sample as Algorithm R keeps (each of the n latencies with probability
        ``RESERVOIR_SIZE / n``), with random numbers drawn only for the kept latencies: after
        the reservoir is full, the weight W shrinks by ``U ** (1 / k)`` at each kept latency,
        and the next one is ``floor(log U' / log(1 - W)) + 1`` latencies on (U, U' uniform on
        (0, 1]). Algorithm R drew a number for every latency, a call into the generator per
        request; this one draws two per kept latency, about k * ln(n / k) of them.
        """
        self._weight *= math.exp(math.log(1.0 - self._random()) / RESERVOIR_SIZE)
        weight = self._weight
        skip = 0
        if 0.0 < weight < 1.0:  # W = 1 (every draw exactly 0) would be log(0): keep the next
            skip = math.floor(math.log(1.0 - self._random()) / math.log1p(-weight))
        self._next = n + skip + 1

    def snapshot_and_reset(self) -> SeriesSnapshot:
        service, route, version, traffic_class = self.key
        snap = SeriesSnapshot(
            service=service,
            route=route,
            version=version,
            traffic_class=traffic_class,
            requests=self.requests,
            errors=self.errors,
            client_errors=self.client_errors,
            latency_sum_s=self.latency_sum,
            buckets=tuple(self.buckets),
            samples=tuple(self.samples),
            users=self.users,  # handed over, not copied: this series starts a new set
        )
        self.requests = self.errors = self.client_errors = 0
        self.latency_sum = 0.0
        self.buckets = [0] * len(self.buckets)
        self.samples = []
        self.users = set()
        return snap


class ShadowCounters:
    """Shadow copy outcomes and comparisons of one (service, route); callers do ``+= 1``."""

    __slots__ = (
        "compared",
        "differing",
        "dropped_error",
        "dropped_queue_full",
        "dropped_timeout",
        "sent",
        "too_large",
    )

    def __init__(self) -> None:
        self.sent = 0
        self.dropped_queue_full = 0
        self.dropped_error = 0
        self.dropped_timeout = 0
        self.too_large = 0
        self.compared = 0
        self.differing = 0

    def counts(self) -> tuple[int, ...]:
        """The counters in the order of :data:`SHADOW_FIELDS`."""
        return (
            self.sent,
            self.dropped_queue_full,
            self.dropped_error,
            self.dropped_timeout,
            self.too_large,
            self.compared,
            self.differing,
        )

    def reset(self) -> None:
        self.sent = self.dropped_queue_full = self.dropped_error = 0
        self.dropped_timeout = self.too_large = self.compared = self.differing = 0


class Stats:
    """All series of one worker process; no locks (one event loop thread uses it).

    ``seed`` fixes the reservoir's random numbers (tests); by default each process seeds its
    own generator from the OS, so forked workers do not share a sequence.
    """

    def __init__(
        self, bounds_ms: Sequence[float] = DEFAULT_BOUNDS_MS, *, seed: int | None = None
    ) -> None:
        self.bounds_s = bounds_in_seconds(bounds_ms)
        self._rng = random.Random(seed)  # noqa: S311 - sampling, not security
        self._series: dict[SeriesKey, Series] = {}
        self._shadow: dict[tuple[str, str], ShadowCounters] = {}

    def series(
        self, service: str, route: str, version: Version, traffic_class: TrafficClass
    ) -> Series:
        """The series of this key (created on first use; the same object on every call)."""
        key = (service, route, version, traffic_class)
        found = self._series.get(key)
        if found is None:
            found = self._series[key] = Series(key, self.bounds_s, self._rng)
        return found

    def shadow(self, service: str, route: str) -> ShadowCounters:
        """The shadow counters of this route (created on first use; the same object after)."""
        key = (service, route)
        found = self._shadow.get(key)
        if found is None:
            found = self._shadow[key] = ShadowCounters()
        return found

    def snapshot_and_reset(self) -> StatsSnapshot:
        """The deltas since the last call (series and counters without activity are left out)."""
        series = tuple(s.snapshot_and_reset() for s in self._series.values() if s.requests)
        shadow = []
        for (service, route), counters in self._shadow.items():
            counts = counters.counts()
            if any(counts):
                shadow.append(ShadowSnapshot(service, route, counts))
                counters.reset()
        return StatsSnapshot(self.bounds_s, series, tuple(shadow))
