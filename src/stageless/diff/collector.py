"""Counting differences per endpoint and field path, with Diffy's noise measurement.

For each compared request the proxy hands over three lifts: primary (stable), candidate, and
optionally secondary (a second stable sample of the same request). Per endpoint the collector
counts requests (``total``), requests with any raw difference (``differing``) and requests that
had a secondary (``noise_sampled``); per field path it counts raw differences (primary vs
candidate), noise differences (primary vs secondary) and the kinds seen, and keeps the first
few examples (request line, primary value, candidate value).

A request compared without a secondary adds nothing to any noise count: with the proxy's
``noise_share`` below 100 % the noise is measured on fewer requests than the raw differences.
``noise_sampled`` tells how many requests measured it, and the report scales the noise counts
by ``total / noise_sampled`` before the filter reads them (:func:`noise_estimate`).

Memory is bounded: at most ``max_endpoints`` endpoints and ``max_fields`` paths per endpoint;
requests at further endpoints count in ``untracked_requests``, raw differences at further
paths in the endpoint's ``untracked_differences``.

The state is plain picklable data (:class:`CollectorState`): each worker process takes its
state (:meth:`DiffCollector.take`) and one process merges them (:meth:`DiffCollector.merge`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from stageless.diff.compare import compare, describe
from stageless.diff.lift import Lifted
from stageless.diff.report import (
    DiffReport,
    EndpointReport,
    Example,
    FieldReport,
    NoiseFilter,
    field_order,
    kinds_order,
    noise_estimate,
)

DEFAULT_MAX_ENDPOINTS = 1000
DEFAULT_MAX_FIELDS = 500
DEFAULT_MAX_EXAMPLES = 5
EXAMPLE_CHARS = 200


@dataclass(slots=True)
class FieldTally:
    """Counts for one (endpoint, path). ``examples``: (request, primary, candidate) strings."""

    raw: int = 0
    noise: int = 0
    kinds: dict[str, int] = field(default_factory=dict)
    examples: list[tuple[str, str, str]] = field(default_factory=list)


@dataclass(slots=True)
class EndpointTally:
    """Counts for one endpoint."""

    total: int = 0
    differing: int = 0
    noise_sampled: int = 0
    untracked_differences: int = 0
    fields: dict[str, FieldTally] = field(default_factory=dict)


@dataclass(slots=True)
class CollectorState:
    """Everything a collector knows: plain data, picklable, mergeable."""

    endpoints: dict[str, EndpointTally] = field(default_factory=dict)
    untracked_requests: int = 0


class DiffCollector:
    """Collects differences per endpoint and path; :meth:`report` applies the noise filter."""

    def __init__(
        self,
        *,
        max_endpoints: int = DEFAULT_MAX_ENDPOINTS,
        max_fields: int = DEFAULT_MAX_FIELDS,
        max_examples: int = DEFAULT_MAX_EXAMPLES,
    ) -> None:
        self.max_endpoints = max_endpoints
        self.max_fields = max_fields
        self.max_examples = max_examples
        self.state = CollectorState()

    def _endpoint(self, name: str) -> EndpointTally | None:
        endpoints = self.state.endpoints
        tally = endpoints.get(name)
        if tally is None and len(endpoints) < self.max_endpoints:
            tally = endpoints[name] = EndpointTally()
        return tally

    def _field(self, endpoint: EndpointTally, path: str) -> FieldTally | None:
        fields = endpoint.fields
        tally = fields.get(path)
        if tally is None and len(fields) < self.max_fields:
            tally = fields[path] = FieldTally()
        return tally

    def record(
        self,
        endpoint: str,
        primary: Lifted,
        candidate: Lifted,
        secondary: Lifted | None = None,
        request: str = "",
    ) -> bool:
        """Count one compared request; True when primary and candidate differ anywhere.

        ``request`` (a request line such as ``"GET /api/orders/7"``) labels the examples.
        """
        raw = compare(primary, candidate)
        tally = self._endpoint(endpoint)
        if tally is None:
            self.state.untracked_requests += 1
            return bool(raw)
        tally.total += 1
        if secondary is not None:
            tally.noise_sampled += 1
            for path in compare(primary, secondary):
                noisy = self._field(tally, path)
                if noisy is not None:
                    noisy.noise += 1
        if not raw:
            return False
        tally.differing += 1
        for path, difference in raw.items():
            counts = self._field(tally, path)
            if counts is None:
                tally.untracked_differences += 1
                continue
            counts.raw += 1
            kinds = counts.kinds
            kinds[difference.kind] = kinds.get(difference.kind, 0) + 1
            if len(counts.examples) < self.max_examples:
                counts.examples.append(
                    (
                        request[:EXAMPLE_CHARS],
                        describe(difference.primary, EXAMPLE_CHARS),
                        describe(difference.other, EXAMPLE_CHARS),
                    )
                )
        return True

    def record_same(self, endpoint: str, *, noise_sampled: bool, times: int = 1) -> None:
        """Count ``times`` compared requests whose answers were lifted from the same status,
        headers and body (the proxy checks before lifting): what :meth:`record` counts for
        them, and for a second stable sample like them when ``noise_sampled``, without lifting
        anything."""
        tally = self._endpoint(endpoint)
        if tally is None:
            self.state.untracked_requests += times
            return
        tally.total += times
        if noise_sampled:
            tally.noise_sampled += times

    def merge(self, other: CollectorState) -> None:
        """Add another collector's state (another worker's, say) to this one, caps applying."""
        self.state.untracked_requests += other.untracked_requests
        for name, theirs in other.endpoints.items():
            ours = self._endpoint(name)
            if ours is None:
                self.state.untracked_requests += theirs.total
                continue
            ours.total += theirs.total
            ours.differing += theirs.differing
            ours.noise_sampled += theirs.noise_sampled
            ours.untracked_differences += theirs.untracked_differences
            for path, counts in theirs.fields.items():
                mine = self._field(ours, path)
                if mine is None:
                    ours.untracked_differences += counts.raw
                    continue
                mine.raw += counts.raw
                mine.noise += counts.noise
                for kind, n in counts.kinds.items():
                    mine.kinds[kind] = mine.kinds.get(kind, 0) + n
                room = self.max_examples - len(mine.examples)
                if room > 0:
                    mine.examples.extend(counts.examples[:room])

    def take(self) -> CollectorState:
        """The state so far, handing it over: the collector starts again from nothing."""
        state, self.state = self.state, CollectorState()
        return state

    def report(
        self, max_examples: int = DEFAULT_MAX_EXAMPLES, noise_filter: NoiseFilter | None = None
    ) -> DiffReport:
        """The report, with the noise filter applied now (Diffy applies it at read time)."""
        return make_report(self.state, max_examples, noise_filter or NoiseFilter())


def make_report(state: CollectorState, max_examples: int, noise_filter: NoiseFilter) -> DiffReport:
    """The report of a collector state (fields with no raw difference are left out)."""
    endpoints = []
    for name in sorted(state.endpoints):
        tally = state.endpoints[name]
        fields = []
        for path, counts in tally.fields.items():
            if not counts.raw:
                continue
            noise = noise_estimate(counts.noise, tally.noise_sampled, tally.total)
            relative, absolute = noise_filter.scores(counts.raw, noise, tally.total)
            fields.append(
                FieldReport(
                    path=path,
                    raw=counts.raw,
                    noise=counts.noise,
                    noise_estimate=noise,
                    relative=relative,
                    absolute=absolute,
                    reported=noise_filter.passes(counts.raw, noise, tally.total),
                    kinds=kinds_order(counts.kinds),
                    examples=tuple(Example(*x) for x in counts.examples[:max_examples]),
                )
            )
        fields.sort(key=field_order)
        endpoints.append(
            EndpointReport(
                endpoint=name,
                total=tally.total,
                differing=tally.differing,
                noise_sampled=tally.noise_sampled,
                untracked_differences=tally.untracked_differences,
                critical=any(f.reported for f in fields),
                fields=tuple(fields),
            )
        )
    return DiffReport(tuple(endpoints), noise_filter, state.untracked_requests)


__all__ = [
    "DEFAULT_MAX_ENDPOINTS",
    "DEFAULT_MAX_EXAMPLES",
    "DEFAULT_MAX_FIELDS",
    "CollectorState",
    "DiffCollector",
    "EndpointTally",
    "FieldTally",
    "make_report",
]
