"""The seam between the judges and the places batches come from.

A :class:`MetricSource` answers one question: which batches of one service and route ended in a
time window. The built-in sources are :class:`~stageless.metrics.batchfile.BatchFile` (the
proxy's JSON lines) and :class:`~stageless.metrics.prometheus.PrometheusSource`.

A source that fails raises :class:`SourceError`, whose message is a reason a person can read.
:func:`fetch_user_batches` turns a failure, an empty answer or an answer missing one of the two
versions into an explicit :class:`Fetched` with a ``problem``: "no data" is a finding to report
(the judge's verdict is INCONCLUSIVE with that reason), never a silent pass.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from stageless.analysis.batch import Batch, TrafficClass, Version
from stageless.errors import UpstreamError


class SourceError(UpstreamError):
    """A metric source could not deliver batches; ``str(error)`` says why, for a person."""


@runtime_checkable
class MetricSource(Protocol):
    """Something that delivers the batches of one service and route.

    ``fetch_batches`` returns every batch (both versions, every traffic class the source knows)
    whose interval started in ``[start, end)`` (Unix seconds; a batch's ``ts`` is the start of
    its interval, as the judges read it), oldest first. It raises :class:`SourceError` when it
    cannot answer.
    """

    def fetch_batches(self, service: str, route: str, start: float, end: float) -> list[Batch]: ...


@dataclass(frozen=True, slots=True)
class Fetched:
    """The user-traffic batches of one window, or the reason there are none worth judging.

    ``problem`` is ``None`` when both versions delivered at least one batch with requests;
    otherwise it is a sentence saying what is missing, and ``batches`` holds whatever did arrive.
    """

    batches: tuple[Batch, ...]
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def fetch_user_batches(
    source: MetricSource, service: str, route: str, start: float, end: float
) -> Fetched:
    """Fetch a window and keep only traffic class ``user``; never raises :class:`SourceError`."""
    try:
        batches = source.fetch_batches(service, route, start, end)
    except SourceError as exc:
        return Fetched((), f"no data: {exc}")
    users = tuple(b for b in batches if b.traffic_class is TrafficClass.USER)
    return Fetched(users, missing_data(users, service, route))


def missing_data(batches: Iterable[Batch], service: str, route: str) -> str | None:
    """Why these batches cannot be judged (no batch, or no request for one version), or ``None``."""
    requests = {Version.STABLE: 0, Version.CANDIDATE: 0}
    seen = {Version.STABLE: False, Version.CANDIDATE: False}
    for batch in batches:
        seen[batch.version] = True
        requests[batch.version] += batch.requests
    where = f"{service} {route}"
    if not any(seen.values()):
        return f"no data: the source returned no user-traffic batch for {where}"
    for version in (Version.CANDIDATE, Version.STABLE):
        if not seen[version]:
            return f"no data: no {version} batch for {where}"
        if requests[version] == 0:
            return f"no data: {version} served no user request on {where}"
    return None
