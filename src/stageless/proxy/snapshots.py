"""What a worker sends its supervisor once a second: plain, picklable deltas of its statistics.

Apart from :mod:`stageless.proxy.stats`, which makes them, because that module runs compiled
(:mod:`stageless.proxy.native`) and a compiled frozen dataclass cannot be unpickled: its fields
are set after the object is made. These stay interpreted.
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass

from stageless.analysis.batch import TrafficClass, Version

SeriesKey = tuple[str, str, Version, TrafficClass]


@dataclass(frozen=True, slots=True)
class SeriesSnapshot:
    """One series' deltas since the previous snapshot."""

    service: str
    route: str
    version: Version
    traffic_class: TrafficClass
    requests: int
    errors: int
    client_errors: int
    latency_sum_s: float
    #: Per-bucket counts (not cumulative), one per bound plus the +Inf bucket.
    buckets: tuple[int, ...]
    #: A uniform sample (seconds) of this interval's ``requests`` latencies, at most 1,000.
    samples: tuple[float, ...]
    #: Distinct user ids seen in the interval (requests with ``user=None`` add none).
    users: Set[int]

    @property
    def key(self) -> SeriesKey:
        return (self.service, self.route, self.version, self.traffic_class)


@dataclass(frozen=True, slots=True)
class ShadowSnapshot:
    """One (service, route)'s shadow counters since the previous snapshot."""

    service: str
    route: str
    #: Values in the order of :data:`stageless.proxy.stats.SHADOW_FIELDS`.
    counts: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class StatsSnapshot:
    """What a worker sends once a second: plain, picklable deltas."""

    #: The histogram's upper bounds in seconds (without +Inf); merged snapshots must agree.
    bounds_s: tuple[float, ...]
    series: tuple[SeriesSnapshot, ...]
    shadow: tuple[ShadowSnapshot, ...]


__all__ = ["SeriesKey", "SeriesSnapshot", "ShadowSnapshot", "StatsSnapshot"]
