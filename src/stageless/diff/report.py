"""The per-endpoint diff report, Diffy's noise filter, and the report's JSON form.

Noise filter (applied when a report is made, as Diffy does): for a field with ``raw`` differences
between primary and candidate over ``total`` requests compared at the endpoint, and ``noise``
differences between primary and a second primary sample over the ``noise_sampled`` of them that
had one, the noise is estimated over all ``total`` requests (:func:`noise_estimate`; it is
``noise`` itself when every request had a second sample, as in Diffy)::

    noise'   = noise * total / noise_sampled                    (0 when noise_sampled is 0)
    absolute = |raw - noise'| / total * 100
    relative = |raw - noise'| / (raw + noise') * 100
    reported iff raw > noise' and relative > 20.0 and absolute > 0.03    (strict >)

An endpoint is critical when any of its fields is reported.

JSON shape (``to_json``; ``from_json`` reads it back)::

    {"version": 1,
     "thresholds": {"relative": 20.0, "absolute": 0.03},
     "untracked_requests": 0,
     "endpoints": {"GET /api/orders": {
         "total": 1000, "differing": 50, "noise_sampled": 1000, "critical": true,
         "untracked_differences": 0,
         "fields": {"body.user.name": {
             "raw": 50, "noise": 0, "noise_estimate": 0.0,
             "relative": 100.0, "absolute": 5.0, "reported": true,
             "kinds": {"PrimitiveDifference": 50},
             "examples": [{"request": "GET /api/orders/7", "primary": "\\"Ann\\"",
                           "candidate": "\\"ann\\""}]}}}}}

Endpoints are sorted by name; fields reported first, then by raw count (descending) and path.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from stageless.errors import Issue, ValidationError

REPORT_VERSION = 1
DEFAULT_RELATIVE = 20.0
DEFAULT_ABSOLUTE = 0.03


@dataclass(frozen=True, slots=True)
class NoiseFilter:
    """Diffy's thresholds, in percent (strict ``>``)."""

    relative: float = DEFAULT_RELATIVE
    absolute: float = DEFAULT_ABSOLUTE

    def scores(self, raw: int, noise: float, total: int) -> tuple[float, float]:
        """(relative, absolute) in percent; 0 where a denominator is 0. ``noise``: the
        estimated count over ``total`` (:func:`noise_estimate`)."""
        delta = abs(raw - noise)
        relative = delta / (raw + noise) * 100 if raw + noise else 0.0
        absolute = delta / total * 100 if total else 0.0
        return relative, absolute

    def passes(self, raw: int, noise: float, total: int) -> bool:
        """Whether a field with these counts is reported."""
        relative, absolute = self.scores(raw, noise, total)
        return raw > noise and relative > self.relative and absolute > self.absolute


def noise_estimate(noise: int, noise_sampled: int, total: int) -> float:
    """The noise differences expected over ``total`` requests, from ``noise`` seen over the
    ``noise_sampled`` of them that had a second primary sample: ``noise`` itself when every
    request had one (Diffy's case), 0 when none had.

    Scaled, so that sampling the noise on a share of the requests (the proxy's
    ``shadow.noise_share``) measures the same rate instead of an undercount that would let
    noisy fields through the filter. The estimate's error shrinks with ``noise_sampled``.
    """
    if not noise_sampled or noise_sampled >= total:
        return float(noise)
    return noise * total / noise_sampled


@dataclass(frozen=True, slots=True)
class Example:
    """One differing request: its request line and the two sides' values, rendered."""

    request: str
    primary: str
    candidate: str


@dataclass(frozen=True, slots=True)
class FieldReport:
    """One field path of one endpoint: ``noise`` as counted and ``noise_estimate`` over every
    request compared (what the filter reads). ``kinds``: (kind, count) pairs, most frequent
    first."""

    path: str
    raw: int
    noise: int
    noise_estimate: float
    relative: float
    absolute: float
    reported: bool
    kinds: tuple[tuple[str, int], ...]
    examples: tuple[Example, ...]


@dataclass(frozen=True, slots=True)
class EndpointReport:
    """One endpoint: requests compared, requests with any difference, requests that also had a
    second primary sample, differences not tracked (over the field cap), its fields."""

    endpoint: str
    total: int
    differing: int
    noise_sampled: int
    untracked_differences: int
    critical: bool
    fields: tuple[FieldReport, ...]

    def reported(self) -> tuple[FieldReport, ...]:
        return tuple(f for f in self.fields if f.reported)


@dataclass(frozen=True, slots=True)
class DiffReport:
    """Every endpoint's report, the thresholds used, and requests at endpoints not tracked."""

    endpoints: tuple[EndpointReport, ...]
    thresholds: NoiseFilter = NoiseFilter()
    untracked_requests: int = 0

    @property
    def critical(self) -> bool:
        return any(e.critical for e in self.endpoints)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": REPORT_VERSION,
            "thresholds": {
                "relative": self.thresholds.relative,
                "absolute": self.thresholds.absolute,
            },
            "untracked_requests": self.untracked_requests,
            "endpoints": {e.endpoint: _endpoint_json(e) for e in self.endpoints},
        }

    @classmethod
    def from_json(cls, data: object) -> DiffReport:
        """Read :meth:`to_json`'s shape; a :class:`ValidationError` names every bad path."""
        reader = _Reader()
        report = reader.report(data)
        if reader.issues:
            raise ValidationError(reader.issues[:20], source="diff report")
        return report


def _endpoint_json(e: EndpointReport) -> dict[str, Any]:
    return {
        "total": e.total,
        "differing": e.differing,
        "noise_sampled": e.noise_sampled,
        "critical": e.critical,
        "untracked_differences": e.untracked_differences,
        "fields": {
            f.path: {
                "raw": f.raw,
                "noise": f.noise,
                "noise_estimate": f.noise_estimate,
                "relative": f.relative,
                "absolute": f.absolute,
                "reported": f.reported,
                "kinds": dict(f.kinds),
                "examples": [
                    {"request": x.request, "primary": x.primary, "candidate": x.candidate}
                    for x in f.examples
                ],
            }
            for f in e.fields
        },
    }


def field_order(f: FieldReport) -> tuple[bool, int, str]:
    """Sort key: reported fields first, then by raw count (descending), then by path."""
    return (not f.reported, -f.raw, f.path)


def kinds_order(kinds: Mapping[str, int]) -> tuple[tuple[str, int], ...]:
    return tuple(sorted(kinds.items(), key=lambda item: (-item[1], item[0])))


class _Reader:
    """Reads a report's JSON, collecting an :class:`Issue` per bad value instead of stopping."""

    def __init__(self) -> None:
        self.issues: list[Issue] = []

    def problem(self, where: str, expected: str, value: object) -> None:
        self.issues.append(Issue(where, f"expected {expected}, got {value!r:.60}"))

    def obj(self, value: object, where: str) -> Mapping[str, Any]:
        if isinstance(value, Mapping):
            return value
        self.problem(where, "an object", value)
        return {}

    def count(self, data: Mapping[str, Any], key: str, where: str) -> int:
        value = data.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        self.problem(f"{where}.{key}" if where else key, "an integer >= 0", value)
        return 0

    def number(self, data: Mapping[str, Any], key: str, where: str) -> float:
        value = data.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        self.problem(f"{where}.{key}" if where else key, "a finite number", value)
        return 0.0

    def flag(self, data: Mapping[str, Any], key: str, where: str) -> bool:
        value = data.get(key)
        if isinstance(value, bool):
            return value
        self.problem(f"{where}.{key}", "true or false", value)
        return False

    def report(self, data: object) -> DiffReport:
        if not isinstance(data, Mapping):
            self.problem("(report)", "an object", data)
            return DiffReport(())
        top = data
        if top.get("version") != REPORT_VERSION:
            self.problem("version", str(REPORT_VERSION), top.get("version"))
        thresholds = self.obj(top.get("thresholds"), "thresholds")
        noise_filter = NoiseFilter(
            relative=self.number(thresholds, "relative", "thresholds"),
            absolute=self.number(thresholds, "absolute", "thresholds"),
        )
        endpoints = self.obj(top.get("endpoints"), "endpoints")
        return DiffReport(
            endpoints=tuple(
                self.endpoint(name, self.obj(raw, f"endpoints[{name!r}]"))
                for name, raw in endpoints.items()
            ),
            thresholds=noise_filter,
            untracked_requests=self.count(top, "untracked_requests", ""),
        )

    def endpoint(self, name: str, data: Mapping[str, Any]) -> EndpointReport:
        where = f"endpoints[{name!r}]"
        fields = self.obj(data.get("fields"), f"{where}.fields")
        return EndpointReport(
            endpoint=name,
            total=self.count(data, "total", where),
            differing=self.count(data, "differing", where),
            noise_sampled=self.count(data, "noise_sampled", where),
            untracked_differences=self.count(data, "untracked_differences", where),
            critical=self.flag(data, "critical", where),
            fields=tuple(
                self.field(path, self.obj(raw, f"{where}.fields[{path!r}]"), where)
                for path, raw in fields.items()
            ),
        )

    def field(self, path: str, data: Mapping[str, Any], endpoint_where: str) -> FieldReport:
        where = f"{endpoint_where}.fields[{path!r}]"
        kinds = self.obj(data.get("kinds", {}), f"{where}.kinds")
        examples_raw = data.get("examples", [])
        if not isinstance(examples_raw, list):
            self.problem(f"{where}.examples", "a list", examples_raw)
            examples_raw = []
        examples: list[Example] = []
        for index, item in enumerate(examples_raw):
            example = self.obj(item, f"{where}.examples[{index}]")
            request, primary, candidate = (
                example.get(k) for k in ("request", "primary", "candidate")
            )
            if isinstance(request, str) and isinstance(primary, str) and isinstance(candidate, str):
                examples.append(Example(request, primary, candidate))
            elif example:
                self.problem(
                    f"{where}.examples[{index}]", "request, primary and candidate strings", item
                )
        noise = self.count(data, "noise", where)
        return FieldReport(
            path=path,
            raw=self.count(data, "raw", where),
            noise=noise,
            noise_estimate=(
                self.number(data, "noise_estimate", where)
                if "noise_estimate" in data
                else float(noise)  # written before noise was sampled: counted on every request
            ),
            relative=self.number(data, "relative", where),
            absolute=self.number(data, "absolute", where),
            reported=self.flag(data, "reported", where),
            kinds=tuple((str(k), self.count(kinds, k, f"{where}.kinds")) for k in kinds),
            examples=tuple(examples),
        )


__all__ = [
    "DEFAULT_ABSOLUTE",
    "DEFAULT_RELATIVE",
    "REPORT_VERSION",
    "DiffReport",
    "EndpointReport",
    "Example",
    "FieldReport",
    "NoiseFilter",
    "field_order",
    "kinds_order",
    "noise_estimate",
]
