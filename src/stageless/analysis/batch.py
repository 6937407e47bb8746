"""The batch: one interval of one version's traffic, as the proxy emits it and the judge reads it.

One JSON object per interval, service, route, version and traffic class::

    {"ts": 1764100000.0, "interval_s": 10, "service": "checkout", "route": "/api",
     "version": "candidate", "traffic_class": "user", "configured_share": 0.05,
     "requests": 120, "errors": 2, "client_errors": 3, "users": 97, "new_users": 41,
     "latency_ms": {"samples": [12.5, ...],
                    "histogram": {"le": [5, 10, 25, ..., "+Inf"], "counts": [3, 40, ...]}}}

``errors`` counts 5xx answers and connection failures, ``client_errors`` 4xx answers; ``users``
counts distinct users (sticky keys) seen in the interval. ``new_users`` (optional) counts the
distinct users of this version seen in this interval for the first time in the current step
(since the step started or the split last changed): each user is counted once per step, which is
what makes the split check valid (see :mod:`stageless.analysis.srm`); without it the split check
is off. It is part of the schema shared with the proxy. ``latency_ms.samples`` is a uniform
reservoir of at most 1,000 request latencies; ``histogram`` counts are per bucket (not cumulative)
with upper bounds ``le``, the last of which may be ``"+Inf"``. Only traffic class ``user`` is
judged. ``configured_share`` is the share of users the split is configured to send to this version.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from stageless.errors import Issue, ValidationError

MAX_SAMPLES = 1_000

E = TypeVar("E", bound=StrEnum)


class Version(StrEnum):
    STABLE = "stable"
    CANDIDATE = "candidate"


class TrafficClass(StrEnum):
    USER = "user"
    TESTER = "tester"
    SYNTHETIC = "synthetic"
    SHADOW = "shadow"


@dataclass(frozen=True, slots=True)
class Histogram:
    """Per-bucket latency counts; ``le`` are the buckets' upper bounds in ms (``math.inf`` last)."""

    le: tuple[float, ...] = ()
    counts: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Batch:
    ts: float
    interval_s: float
    service: str
    route: str
    version: Version
    traffic_class: TrafficClass
    configured_share: float
    requests: int
    errors: int
    client_errors: int
    users: int
    samples: tuple[float, ...] = ()
    histogram: Histogram = field(default_factory=Histogram)
    #: Users first seen in the current step in this interval; ``None`` when the source has no count.
    new_users: int | None = None
    #: ``samples`` as a read-only array, made on first use and shared by every judge fed the batch.
    _samples_array: NDArray[np.float64] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    @classmethod
    def with_sample_array(cls, samples: NDArray[np.float64], **fields: Any) -> Batch:
        """A batch whose latency samples are given as an array (a simulator's fast path): the
        same batch as ``Batch(samples=tuple(samples.tolist()), **fields)``, with the array kept
        (read-only copy) so that judges need not convert the tuple back."""
        array = np.array(samples, dtype=np.float64)
        batch = cls(samples=tuple(array.tolist()), **fields)
        array.flags.writeable = False
        object.__setattr__(batch, "_samples_array", array)
        return batch

    def samples_array(self) -> NDArray[np.float64]:
        """The latency samples as a read-only float array (converted once per batch)."""
        cached = self._samples_array
        if cached is None:
            cached = np.asarray(self.samples, dtype=np.float64)
            cached.flags.writeable = False
            object.__setattr__(self, "_samples_array", cached)
        return cached

    def to_json(self) -> dict[str, Any]:
        """The wire form (``+Inf`` written as the string ``"+Inf"``)."""
        le: list[float | str] = ["+Inf" if math.isinf(b) else b for b in self.histogram.le]
        return {
            "ts": self.ts,
            "interval_s": self.interval_s,
            "service": self.service,
            "route": self.route,
            "version": str(self.version),
            "traffic_class": str(self.traffic_class),
            "configured_share": self.configured_share,
            "requests": self.requests,
            "errors": self.errors,
            "client_errors": self.client_errors,
            "users": self.users,
            **({} if self.new_users is None else {"new_users": self.new_users}),
            "latency_ms": {
                "samples": list(self.samples),
                "histogram": {"le": le, "counts": list(self.histogram.counts)},
            },
        }


class _Reader:
    """Collects every issue of one batch object, so that all of them are reported at once."""

    def __init__(self, raw: Mapping[str, Any], prefix: str) -> None:
        self.raw = raw
        self.prefix = prefix
        self.issues: list[Issue] = []

    def fail(self, name: str, message: str) -> None:
        self.issues.append(Issue(f"{self.prefix}{name}", message))

    def number(self, name: str, *, minimum: float = -math.inf, maximum: float = math.inf) -> float:
        value: Any = self.raw.get(name)
        if type(value) not in (int, float) or not math.isfinite(value):
            self.fail(name, f"{value!r} is not a number; expected a finite number")
            return 0.0
        if not minimum <= value <= maximum:
            self.fail(name, f"{value!r} is out of range; expected {minimum} to {maximum}")
        return float(value)

    def count(self, name: str) -> int:
        value: Any = self.raw.get(name)
        if type(value) is not int or value < 0:
            self.fail(name, f"{value!r} is not a count; expected a whole number >= 0")
            return 0
        return value

    def text(self, name: str) -> str:
        value: Any = self.raw.get(name)
        if not isinstance(value, str) or not value:
            self.fail(name, f"{value!r} is not a name; expected a non-empty string")
            return ""
        return value

    def choice(self, name: str, enum: type[E]) -> E | None:
        value: Any = self.raw.get(name)
        try:
            return enum(value)
        except (ValueError, TypeError):
            allowed = [member.value for member in enum]
            self.fail(name, f"{value!r} is not one of {allowed}")
            return None


def parse_batch(raw: Any, *, where: str = "") -> Batch:
    """Validate one batch object; raises :class:`ValidationError` naming every bad field."""
    prefix = f"{where}." if where else ""
    if not isinstance(raw, Mapping):
        raise ValidationError([Issue(where, f"expected a JSON object, got {type(raw).__name__}")])
    r = _Reader(raw, prefix)
    ts, interval_s = r.number("ts"), r.number("interval_s", minimum=0.0)
    service, route = r.text("service"), r.text("route")
    share = r.number("configured_share", minimum=0.0, maximum=1.0)
    requests, errors = r.count("requests"), r.count("errors")
    client_errors, users = r.count("client_errors"), r.count("users")
    new_users = r.count("new_users") if raw.get("new_users") is not None else None
    version = r.choice("version", Version)
    traffic_class = r.choice("traffic_class", TrafficClass)
    samples, histogram = _latency(raw.get("latency_ms", {}), r)
    if errors + client_errors > requests:
        r.fail("errors", f"errors + client_errors ({errors + client_errors}) exceed requests")
    if new_users is not None and new_users > users:
        r.fail("new_users", f"{new_users} exceeds users ({users}); expected at most users")
    if r.issues or version is None or traffic_class is None:
        raise ValidationError(r.issues)
    return Batch(
        ts=ts,
        interval_s=interval_s,
        service=service,
        route=route,
        version=version,
        traffic_class=traffic_class,
        configured_share=share,
        requests=requests,
        errors=errors,
        client_errors=client_errors,
        users=users,
        samples=samples,
        histogram=histogram,
        new_users=new_users,
    )


def _latency(raw: Any, r: _Reader) -> tuple[tuple[float, ...], Histogram]:
    if not isinstance(raw, Mapping):
        r.fail("latency_ms", "expected an object with 'samples' and 'histogram'")
        return (), Histogram()
    raw_samples = raw.get("samples", [])
    samples: list[float] = []
    if not isinstance(raw_samples, list) or len(raw_samples) > MAX_SAMPLES:
        r.fail("latency_ms.samples", f"expected a list of at most {MAX_SAMPLES} numbers")
    else:
        for i, value in enumerate(raw_samples):
            if type(value) not in (int, float) or not math.isfinite(value) or value < 0:
                r.fail(f"latency_ms.samples[{i}]", f"{value!r} is not a latency >= 0 in ms")
            else:
                samples.append(float(value))
    raw_hist = raw.get("histogram", {"le": [], "counts": []})
    if not isinstance(raw_hist, Mapping):
        r.fail("latency_ms.histogram", "expected an object with 'le' and 'counts'")
        return tuple(samples), Histogram()
    le_raw, counts_raw = raw_hist.get("le", []), raw_hist.get("counts", [])
    if not isinstance(le_raw, list) or not isinstance(counts_raw, list):
        r.fail("latency_ms.histogram", "'le' and 'counts' must be lists")
        return tuple(samples), Histogram()
    le: list[float] = []
    for i, bound in enumerate(le_raw):
        if bound in ("+Inf", "Inf", "inf"):
            le.append(math.inf)
        elif type(bound) in (int, float) and not math.isnan(bound):
            le.append(float(bound))
        else:
            r.fail(f"latency_ms.histogram.le[{i}]", f"{bound!r} is not a bucket bound in ms")
    if any(b >= a for a, b in zip(le[1:], le, strict=False)):
        r.fail("latency_ms.histogram.le", "bucket bounds must increase strictly")
    counts = [c for c in counts_raw if type(c) is int and c >= 0]
    if len(counts) != len(counts_raw):
        r.fail("latency_ms.histogram.counts", "expected whole numbers >= 0")
    if len(counts_raw) != len(le_raw):
        r.fail(
            "latency_ms.histogram.counts",
            f"has {len(counts_raw)} entries but 'le' has {len(le_raw)}; expected one per bucket",
        )
    return tuple(samples), Histogram(tuple(le), tuple(counts))
