"""Per-request records (from an access log) folded into the analysis batch schema.

A :class:`Tally` takes :class:`Record` objects (time, version, traffic class, status, latency,
user key) and cuts them into intervals aligned on multiples of ``interval_s``. :meth:`Tally.flush`
emits a :class:`~stageless.analysis.batch.Batch` per version and traffic class for every interval
that ended, with the same fields the built-in proxy fills:

- ``requests``; ``errors`` (status 5xx, or 0 for no answer) and ``client_errors`` (4xx);
- ``latency_ms``: a uniform reservoir of at most 1,000 latencies and per-bucket counts over the
  proxy's bucket bounds (1 ms ... 10 s, +Inf);
- ``users``: distinct user keys in the interval; ``new_users``: keys of that series seen for the
  first time in the current step (:meth:`Tally.set_share` with a new share starts a step);
- ``configured_share``: the candidate's configured share of users, and 1 minus it for stable.

Every ended interval gets a ``user`` batch for both versions, with zero counts when nobody came
(the judge must see a candidate that gets nothing). Records older than the last flushed interval
are counted in :attr:`Tally.late` and otherwise dropped.
"""

from __future__ import annotations

import bisect
import math
import random
from dataclasses import dataclass, field

from stageless.analysis.batch import MAX_SAMPLES, Batch, Histogram, TrafficClass, Version

__all__ = ["BOUNDS_MS", "DEFAULT_ROUTE", "MAX_STEP_USERS", "Record", "Tally"]

DEFAULT_ROUTE = "default"
"""The route of every batch a data-plane driver emits (the proxy's catch-all route's name)."""
BOUNDS_MS: tuple[float, ...] = (1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
"""Latency bucket upper bounds in ms (the built-in proxy's), then +Inf."""
MAX_STEP_USERS = 1_000_000
"""Users remembered per series and step; past that, ``new_users`` is left out for the step."""


@dataclass(frozen=True, slots=True)
class Record:
    """One request as a data plane logged it."""

    ts: float
    version: Version
    traffic_class: TrafficClass
    status: int
    latency_ms: float | None = None
    user: str | None = None


@dataclass(slots=True)
class _Series:
    requests: int = 0
    errors: int = 0
    client_errors: int = 0
    seen: int = 0  # latencies offered to the reservoir
    samples: list[float] = field(default_factory=list)
    counts: list[int] = field(default_factory=lambda: [0] * (len(BOUNDS_MS) + 1))
    users: set[str] = field(default_factory=set)
    new_users: int = 0


class Tally:
    """Folds records into batches of one service, one interval at a time."""

    def __init__(
        self,
        service: str,
        interval_s: float,
        *,
        route: str = DEFAULT_ROUTE,
        rng: random.Random | None = None,
    ) -> None:
        self.service = service
        self.route = route
        self.interval_s = interval_s
        self.share = 0.0
        self.late = 0
        self._rng = rng or random.Random()  # noqa: S311 - sampling, not security
        self._open: dict[float, dict[tuple[Version, TrafficClass], _Series]] = {}
        self._flushed_until: float | None = None
        self._step_users: dict[tuple[Version, TrafficClass], set[str] | None] = {}

    def set_share(self, share: float) -> None:
        """The candidate's configured share of users (0 to 1); a change starts a new step."""
        if share != self.share:
            self._step_users.clear()
        self.share = share

    def start(self, now: float) -> None:
        """Emit batches only for intervals starting at or after ``now``'s interval."""
        if self._flushed_until is None:
            self._flushed_until = self._slot(now)

    def add(self, record: Record) -> None:
        """Count one request in its interval."""
        slot = self._slot(record.ts)
        if self._flushed_until is not None and slot < self._flushed_until:
            self.late += 1
            return
        key = (record.version, record.traffic_class)
        series = self._open.setdefault(slot, {}).setdefault(key, _Series())
        series.requests += 1
        if record.status >= 500 or record.status <= 0:
            series.errors += 1
        elif record.status >= 400:
            series.client_errors += 1
        if record.latency_ms is not None and math.isfinite(record.latency_ms):
            latency = max(record.latency_ms, 0.0)
            series.counts[bisect.bisect_left(BOUNDS_MS, latency)] += 1
            series.seen += 1
            if len(series.samples) < MAX_SAMPLES:
                series.samples.append(latency)
            else:
                index = self._rng.randrange(series.seen)
                if index < MAX_SAMPLES:
                    series.samples[index] = latency
        if record.user and record.user not in series.users:
            series.users.add(record.user)
            step = self._step_users.setdefault(key, set())
            if step is not None and record.user not in step:
                step.add(record.user)
                series.new_users += 1
                if len(step) > MAX_STEP_USERS:
                    self._step_users[key] = None

    def flush(self, until: float) -> list[Batch]:
        """Batches of every interval that ended at or before ``until``, oldest first."""
        if self._flushed_until is None:
            self._flushed_until = min(self._open, default=self._slot(until))
        batches: list[Batch] = []
        slot = self._flushed_until
        while slot + self.interval_s <= until:
            batches += self._batches(slot, self._open.pop(slot, {}))
            slot += self.interval_s
        self._flushed_until = slot
        return batches

    def _slot(self, ts: float) -> float:
        return math.floor(ts / self.interval_s) * self.interval_s

    def _batches(
        self, slot: float, series: dict[tuple[Version, TrafficClass], _Series]
    ) -> list[Batch]:
        for version in Version:
            series.setdefault((version, TrafficClass.USER), _Series())
        batches = []
        for (version, traffic_class), s in sorted(series.items()):
            share = self.share if version is Version.CANDIDATE else 1.0 - self.share
            tracked = self._step_users.get((version, traffic_class), set()) is not None
            batches.append(
                Batch(
                    ts=slot,
                    interval_s=self.interval_s,
                    service=self.service,
                    route=self.route,
                    version=version,
                    traffic_class=traffic_class,
                    configured_share=min(max(share, 0.0), 1.0),
                    requests=s.requests,
                    errors=s.errors,
                    client_errors=s.client_errors,
                    users=len(s.users),
                    samples=tuple(s.samples),
                    histogram=Histogram((*BOUNDS_MS, math.inf), tuple(s.counts)),
                    new_users=min(s.new_users, len(s.users)) if tracked else None,
                )
            )
        return batches
