"""Merging the workers' statistics, and the batches the canary judges read.

:class:`Aggregate` lives in the process that owns ``/metrics`` and the batch file. It merges the
:class:`~stageless.proxy.snapshots.StatsSnapshot` each worker sends once a second and keeps two
kinds of state per (service, route, version, traffic class):

- **cumulative** counters and histogram, for Prometheus (:mod:`stageless.proxy.exposition`);
- **interval** state, emitted and reset by :meth:`Aggregate.emit_batches` once per batch
  interval as :class:`~stageless.analysis.batch.Batch` objects: request and error counts,
  per-bucket latency counts, a uniform reservoir of at most 1,000 latencies (the workers'
  reservoirs merged with weights given by their request counts, so the result is a uniform
  sample of the union), the distinct users (the union of the workers' sets) and ``new_users``.

``new_users`` counts the users of a series seen for the first time in the current **step**. A
step of a service starts when :meth:`Aggregate.set_share` records a share for one of its
versions that differs from the one recorded before (the first call counts as a change): the
"seen in this step" sets of the service's series are emptied, so each user counts once per step
and series (see :mod:`stageless.analysis.srm`). Users merged before the change in the same
interval are not carried into the new step.

Zero batches: the judge must see an interval in which the candidate served nobody to know that
traffic is missing. Every (service, route) given to :meth:`Aggregate.declare` gets a batch for
both versions of traffic class ``user`` in every interval, with zero counts when nothing came.
Other series get a batch only in intervals with traffic.

:class:`BatchWriter` appends the batches to a JSON-lines file, one fsync per interval; the judge
reads it with :class:`stageless.metrics.BatchFile` (``stageless analyze``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from stageless.analysis.batch import Batch, Histogram, TrafficClass, Version
from stageless.proxy.snapshots import SeriesKey, SeriesSnapshot, StatsSnapshot
from stageless.proxy.stats import (
    DEFAULT_BOUNDS_MS,
    RESERVOIR_SIZE,
    SHADOW_FIELDS,
    bounds_in_seconds,
)

if TYPE_CHECKING:
    from stageless.proxy.exposition import ProxyCollector

log = logging.getLogger(__name__)


def merge_reservoirs(
    a: list[float], n_a: int, b: Sequence[float], n_b: int, rng: random.Random
) -> list[float]:
    """A uniform sample of at most 1,000 from two disjoint populations of sizes ``n_a``, ``n_b``.

    ``a`` and ``b`` are uniform samples of ``min(n, 1000)`` items of their populations. The
    merged sample draws how many items come from each side as a uniform draw from the union
    would (hypergeometric), then that many items uniformly from each side's sample.
    """
    if n_b == 0:
        return a
    if n_a == 0:
        return list(b)
    if len(a) + len(b) <= RESERVOIR_SIZE:  # both samples are their whole populations
        return a + list(b)
    k = min(RESERVOIR_SIZE, n_a + n_b)
    left_a, left_b = n_a, n_b
    draw = rng.random
    for _ in range(k):
        if draw() * (left_a + left_b) < left_a:
            left_a -= 1
        else:
            left_b -= 1
    take_a = n_a - left_a
    return rng.sample(a, take_a) + rng.sample(list(b), k - take_a)


@dataclass(frozen=True, slots=True)
class SeriesTotals:
    """Cumulative counts of one series since the aggregate started (for Prometheus)."""

    requests: int
    errors: int
    client_errors: int
    #: Per-bucket counts (not cumulative), one per bound plus the +Inf bucket.
    buckets: tuple[int, ...]
    latency_sum_s: float


class _Totals:
    __slots__ = ("buckets", "client_errors", "errors", "latency_sum_s", "requests")

    def __init__(self, nbuckets: int) -> None:
        self.requests = self.errors = self.client_errors = 0
        self.latency_sum_s = 0.0
        self.buckets = [0] * nbuckets


class _Window:
    """One series' state in the current batch interval."""

    __slots__ = ("buckets", "client_errors", "errors", "new", "requests", "samples", "users")

    def __init__(self, nbuckets: int) -> None:
        self.requests = self.errors = self.client_errors = 0
        self.buckets = [0] * nbuckets
        self.samples: list[float] = []
        self.users: set[int] = set()
        self.new: set[int] = set()


class Aggregate:
    """The merged statistics of every worker: Prometheus totals and per-interval batches.

    Not thread-safe: call :meth:`merge`, :meth:`emit_batches` and the collector from one thread
    (the supervisor's event loop). ``seed`` fixes the reservoir merge's random numbers (tests).
    """

    def __init__(
        self, bounds_ms: Sequence[float] = DEFAULT_BOUNDS_MS, *, seed: int | None = None
    ) -> None:
        self.bounds_ms = tuple(float(b) for b in bounds_ms)
        self.bounds_s = bounds_in_seconds(bounds_ms)
        self._nbuckets = len(self.bounds_s) + 1
        self._rng = random.Random(seed)  # noqa: S311 - sampling, not security
        self._totals: dict[SeriesKey, _Totals] = {}
        self._windows: dict[SeriesKey, _Window] = {}
        self._seen: dict[SeriesKey, set[int]] = {}
        self._shares: dict[tuple[str, Version], float] = {}
        self._declared: set[tuple[str, str]] = set()
        self._shadow: dict[tuple[str, str], list[int]] = {}

    # -- input -------------------------------------------------------------------------------

    def merge(self, snap: StatsSnapshot) -> None:
        """Add one worker's deltas to the totals and to the current interval."""
        if snap.bounds_s != self.bounds_s:
            raise ValueError(
                f"snapshot histogram bounds {list(snap.bounds_s)} s differ from the "
                f"aggregate's {list(self.bounds_s)} s; expected every worker to use the same"
            )
        for part in snap.series:
            self._merge_series(part)
        for shadow in snap.shadow:
            counts = self._shadow.setdefault((shadow.service, shadow.route), [0] * 7)
            for i, value in enumerate(shadow.counts):
                counts[i] += value

    def _merge_series(self, part: SeriesSnapshot) -> None:
        key = part.key
        totals = self._totals.get(key)
        if totals is None:
            totals = self._totals[key] = _Totals(self._nbuckets)
        totals.requests += part.requests
        totals.errors += part.errors
        totals.client_errors += part.client_errors
        totals.latency_sum_s += part.latency_sum_s
        for i, count in enumerate(part.buckets):
            totals.buckets[i] += count

        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = _Window(self._nbuckets)
        window.samples = merge_reservoirs(
            window.samples, window.requests, part.samples, part.requests, self._rng
        )
        window.requests += part.requests
        window.errors += part.errors
        window.client_errors += part.client_errors
        for i, count in enumerate(part.buckets):
            window.buckets[i] += count
        window.users |= part.users
        seen = self._seen.setdefault(key, set())
        fresh = part.users - seen
        if fresh:
            seen |= fresh
            window.new |= fresh

    def set_share(self, service: str, version: Version, share: float) -> None:
        """Record the configured share (a fraction, 0.05 for 5 %) of ``version``'s users.

        A share different from the one recorded before starts a new step for the service.
        """
        if not (isinstance(share, int | float) and math.isfinite(share) and 0 <= share <= 1):
            raise ValueError(
                f"share of {service} {version}: {share!r} is not a fraction between 0 and 1 "
                "(a split weight of 5 % is 0.05)"
            )
        key = (service, Version(version))
        if self._shares.get(key) == share:
            return
        self._shares[key] = float(share)
        for series_key, seen in self._seen.items():
            if series_key[0] == service:
                seen.clear()
        for series_key, window in self._windows.items():
            if series_key[0] == service:
                window.new.clear()

    def share(self, service: str, version: Version) -> float:
        """The configured share recorded for ``version`` (0.0 if none was set)."""
        return self._shares.get((service, version), 0.0)

    def declare(self, service: str, route: str) -> None:
        """Emit a batch for both versions of ``user`` traffic on this route every interval."""
        self._declared.add((service, route))

    def undeclare(self, service: str, route: str) -> None:
        """Stop emitting zero batches for this route (it left the configuration)."""
        self._declared.discard((service, route))

    # -- output ------------------------------------------------------------------------------

    def emit_batches(self, now: float, interval_s: float) -> list[Batch]:
        """The batches of the interval ``[now - interval_s, now)`` (``ts`` is its start).

        One per series with traffic, plus zero batches for declared routes; then the interval
        state is reset. Sorted by service, route, version and traffic class.
        """
        if not (math.isfinite(interval_s) and interval_s > 0):
            raise ValueError(f"interval_s: {interval_s!r}; expected a number of seconds > 0")
        ts = now - interval_s
        windows = self._windows
        self._windows = {}
        for service, route in self._declared:
            for version in Version:
                key = (service, route, version, TrafficClass.USER)
                if key not in windows:
                    windows[key] = _Window(self._nbuckets)
        le = (*self.bounds_ms, math.inf)
        batches = [
            Batch(
                ts=ts,
                interval_s=interval_s,
                service=key[0],
                route=key[1],
                version=key[2],
                traffic_class=key[3],
                configured_share=self.share(key[0], key[2]),
                requests=w.requests,
                errors=w.errors,
                client_errors=w.client_errors,
                users=len(w.users),
                samples=tuple(round(max(0.0, s) * 1000.0, 3) for s in w.samples),
                histogram=Histogram(le, tuple(w.buckets)),
                new_users=len(w.new),
            )
            for key, w in windows.items()
        ]
        batches.sort(key=lambda b: (b.service, b.route, b.version, b.traffic_class))
        return batches

    def totals(self) -> list[tuple[SeriesKey, SeriesTotals]]:
        """Cumulative counts per series, including zero ones for declared routes."""
        out = {
            key: SeriesTotals(
                t.requests, t.errors, t.client_errors, tuple(t.buckets), t.latency_sum_s
            )
            for key, t in list(self._totals.items())
        }
        zero = SeriesTotals(0, 0, 0, (0,) * self._nbuckets, 0.0)
        for service, route in list(self._declared):
            for version in Version:
                out.setdefault((service, route, version, TrafficClass.USER), zero)
        return sorted(out.items())

    def shadow_totals(self) -> list[tuple[tuple[str, str], dict[str, int]]]:
        """Cumulative shadow counters per (service, route), by name (see ``SHADOW_FIELDS``)."""
        return sorted(
            (key, dict(zip(SHADOW_FIELDS, counts, strict=True)))
            for key, counts in list(self._shadow.items())
        )

    def collector(self, writer: BatchWriter | None = None) -> ProxyCollector:
        """A Prometheus collector over this aggregate (and the writer's counts, if given).

        Register it on a registry you own: ``registry.register(aggregate.collector())``.
        """
        # Imported here because exposition imports this module.
        from stageless.proxy.exposition import ProxyCollector

        return ProxyCollector(self, writer)


class BatchWriter:
    """Appends batches to a JSON-lines file durably: one write, flush and fsync per interval.

    The parent directory is created when needed. A failed write is logged and counted in
    ``errors`` and never raised: the proxy keeps serving, and the next interval tries again
    (reopening the file; a file moved away, as by log rotation, is replaced by a new one).
    A partly written line is cut off again when possible, so the file stays valid JSON lines.
    ``write`` blocks on the disk: call it off the event loop (``loop.run_in_executor``).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.written = 0  # batches written and synced
        self.errors = 0  # failed interval writes
        self._fd: int | None = None

    def write(self, batches: Sequence[Batch]) -> bool:
        """Append one line per batch and fsync; ``True`` if they are on disk."""
        if not batches:
            return True
        data = b"".join(
            json.dumps(b.to_json(), separators=(",", ":"), allow_nan=False).encode() + b"\n"
            for b in batches
        )
        start: int | None = None
        try:
            fd = self._open()
            start = os.fstat(fd).st_size
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except (OSError, ValueError) as exc:
            self.errors += 1
            log.warning("cannot write %d batches to %s: %s", len(batches), self.path, exc)
            self._abandon(start)
            return False
        self.written += len(batches)
        return True

    def _open(self) -> int:
        if self._fd is not None:
            try:
                same = os.path.samestat(os.stat(self.path), os.fstat(self._fd))
            except OSError:
                same = False
            if same:
                return self._fd
            self.close()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                os.write(fd, b"\n")  # an earlier partial line: end it so ours start clean
        except OSError:
            os.close(fd)
            raise
        self._fd = fd
        return fd

    def _abandon(self, start: int | None) -> None:
        """After a failure: cut a partial line off (when possible) and reopen next time."""
        if self._fd is None:
            return
        if start is not None:
            with contextlib.suppress(OSError):  # else the next open ends the partial line
                os.ftruncate(self._fd, start)
        self.close()

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                os.close(fd)
            except OSError:
                log.warning("closing %s failed", self.path)
