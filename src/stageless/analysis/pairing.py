"""Pairing baseline and canary batches by interval.

Judges compare the two versions within the same interval (same ``service``, ``route`` and
``ts``), which cancels load and error-rate drift over the day. Batches may arrive in any order;
an interval is released as soon as both versions' batches for it are in. A batch whose partner
never comes is released alone (the missing arm counts as an empty batch) once the other version
has delivered a batch at least ``max_lag_s`` later, or at :meth:`Pairer.flush`. Batches of any
traffic class but ``user``, and batches of other services or routes than the judged ones, are
ignored and counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from stageless.analysis.batch import Batch, TrafficClass, Version

_EMPTY: NDArray[np.float64] = np.zeros(0)

_Key = tuple[str, str, float]


@dataclass(frozen=True, slots=True)
class Interval:
    """One interval of one route: the baseline's and the canary's batch (either may be missing)."""

    ts: float
    interval_s: float
    baseline: Batch | None
    canary: Batch | None
    #: The batches' latency samples as arrays (converted once, shared by every test).
    baseline_samples: NDArray[np.float64] = field(
        default_factory=lambda: _EMPTY, repr=False, compare=False
    )
    canary_samples: NDArray[np.float64] = field(
        default_factory=lambda: _EMPTY, repr=False, compare=False
    )


class Pairer:
    """Matches ``stable`` (baseline) and ``candidate`` (canary) batches of the same interval."""

    def __init__(
        self, max_lag_s: float = 30.0, *, service: str | None = None, route: str | None = None
    ) -> None:
        self.max_lag_s = max_lag_s
        self.service = service
        self.route = route
        self.batches = 0
        self.ignored = 0
        self.duplicates = 0
        self._pending: dict[_Key, dict[Version, Batch]] = {}
        self._latest: dict[Version, float] = {}

    def add(self, batch: Batch) -> list[Interval]:
        """Take one batch; return the intervals it completes (usually zero or one)."""
        self.batches += 1
        if (
            batch.traffic_class is not TrafficClass.USER
            or (self.service is not None and batch.service != self.service)
            or (self.route is not None and batch.route != self.route)
        ):
            self.ignored += 1
            return []
        key = (batch.service, batch.route, batch.ts)
        slot = self._pending.setdefault(key, {})
        if batch.version in slot:
            self.duplicates += 1
            self.ignored += 1
            return []
        slot[batch.version] = batch
        latest = self._latest.get(batch.version)
        if latest is None or batch.ts > latest:
            self._latest[batch.version] = batch.ts
        ready: list[Interval] = []
        if len(slot) == 2:
            del self._pending[key]
            ready.append(_interval(slot))
        if self._pending:
            ready.extend(self._orphans())
        return ready

    def flush(self) -> list[Interval]:
        """Release every pending interval, complete or not (end of the data)."""
        ready = [_interval(slot) for _, slot in sorted(self._pending.items(), key=_by_ts)]
        self._pending.clear()
        return ready

    def _orphans(self) -> list[Interval]:
        ready: list[tuple[_Key, dict[Version, Batch]]] = []
        for key, slot in self._pending.items():
            (version,) = slot
            other = Version.CANDIDATE if version is Version.STABLE else Version.STABLE
            latest = self._latest.get(other)
            if latest is not None and latest >= key[2] + self.max_lag_s:
                ready.append((key, slot))
        for key, _ in ready:
            del self._pending[key]
        return [_interval(slot) for _, slot in sorted(ready, key=_by_ts)]


def _by_ts(item: tuple[_Key, dict[Version, Batch]]) -> float:
    return item[0][2]


def _interval(slot: dict[Version, Batch]) -> Interval:
    baseline = slot.get(Version.STABLE)
    canary = slot.get(Version.CANDIDATE)
    some = baseline if baseline is not None else canary
    assert some is not None  # noqa: S101 - a slot always holds at least one batch
    return Interval(
        ts=some.ts,
        interval_s=some.interval_s,
        baseline=baseline,
        canary=canary,
        baseline_samples=_samples(baseline),
        canary_samples=_samples(canary),
    )


def _samples(batch: Batch | None) -> NDArray[np.float64]:
    if batch is None or not batch.samples:
        return _EMPTY
    return batch.samples_array()
