"""Batches from Prometheus: PromQL templates per version, queried over the HTTP API.

Each template is a PromQL expression with ``$service``, ``$route``, ``$version`` and
``$interval`` placeholders (:class:`string.Template` syntax, so PromQL's own braces need no
escaping). The source runs every template once per version over ``/api/v1/query_range`` with a
step of one interval, so each evaluation at time ``t`` covers ``(t - interval, t]`` and becomes
one :class:`~stageless.analysis.batch.Batch` with ``ts = t - interval`` (a batch's ``ts`` is the
start of its interval):

- ``requests``, ``errors`` and ``client_errors``: ``increase()`` over the interval, rounded to
  whole requests (``increase`` extrapolates to the window's edges, so it is rarely an integer);
- ``latency_buckets``: the cumulative histogram buckets' increase per ``le``, turned into
  per-bucket counts in milliseconds. Prometheus keeps no raw samples, so ``samples`` is empty and
  the judge tests latency on bucket counts.

Prometheus does not know how many distinct users each version served. Unless a ``users``
template is given, ``users`` is set to 0 ("unknown"); ``new_users`` is never set, so the
sample-ratio-mismatch check is off (it says so): see docs/metrics.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from string import Template
from typing import Any

import httpx

from stageless.analysis.batch import Batch, Histogram, TrafficClass, Version
from stageless.metrics.source import SourceError

_SELECTOR = 'service="$service",route="$route",version="$version",traffic_class="user"'

DEFAULT_REQUESTS = f"sum(increase(stageless_proxy_requests_total{{{_SELECTOR}}}[$interval]))"
DEFAULT_ERRORS = f"sum(increase(stageless_proxy_errors_total{{{_SELECTOR}}}[$interval]))"
DEFAULT_LATENCY_BUCKETS = (
    "sum by (le) (increase("
    f"stageless_proxy_request_duration_seconds_bucket{{{_SELECTOR}}}[$interval]))"
)
DEFAULT_URL = "http://127.0.0.1:9090"
DEFAULT_INTERVAL_S = 60.0
DEFAULT_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class PromQLTemplates:
    """The queries, one per batch field; ``None`` leaves the field at 0 (or empty)."""

    requests: str = DEFAULT_REQUESTS
    errors: str = DEFAULT_ERRORS
    client_errors: str | None = None
    latency_buckets: str | None = DEFAULT_LATENCY_BUCKETS
    users: str | None = None
    latency_unit_ms: float = 1000.0  # the histogram's unit in ms (seconds: 1000)

    def render(self, template: str, service: str, route: str, version: str, interval: str) -> str:
        """The template with label values escaped as PromQL string literals."""
        values = {
            "service": _escape(service),
            "route": _escape(route),
            "version": _escape(version),
            "interval": interval,
        }
        try:
            return Template(template).substitute(values)
        except (KeyError, ValueError) as exc:
            raise SourceError(
                f"PromQL template {template!r} has a bad placeholder ({exc}); "
                "expected only $service, $route, $version and $interval"
            ) from exc


@dataclass(frozen=True, slots=True)
class PrometheusConfig:
    """Where Prometheus is and how the two versions are labelled there."""

    url: str = DEFAULT_URL
    templates: PromQLTemplates = field(default_factory=PromQLTemplates)
    canary_version: str = "candidate"  # the value of the version label for the canary
    baseline_version: str = "stable"
    canary_share: float = 0.0  # configured share of the canary; the controller sets it per step
    interval_s: float = DEFAULT_INTERVAL_S
    timeout_s: float = DEFAULT_TIMEOUT_S


class PrometheusSource:
    """A :class:`~stageless.metrics.source.MetricSource` that queries Prometheus' HTTP API."""

    def __init__(self, config: PrometheusConfig, client: httpx.Client | None = None) -> None:
        if not config.interval_s > 0:
            raise SourceError(f"interval_s is {config.interval_s}; expected a positive number")
        self.config = config
        self._client = client or httpx.Client(timeout=config.timeout_s, trust_env=False)

    def close(self) -> None:
        self._client.close()

    def set_canary_share(self, share: float) -> None:
        """Record the share the split now sends to the canary (written into later batches)."""
        self.config = replace(self.config, canary_share=share)

    def fetch_batches(self, service: str, route: str, start: float, end: float) -> list[Batch]:
        """One batch per version and whole interval in ``[start, end)``; raises SourceError."""
        step = self.config.interval_s
        count = math.floor((end - start) / step + 1e-9)
        if count < 1:
            return []
        first, last = start + step, start + count * step
        batches: list[Batch] = []
        for version, label, share in (
            (Version.STABLE, self.config.baseline_version, 1.0 - self.config.canary_share),
            (Version.CANDIDATE, self.config.canary_version, self.config.canary_share),
        ):
            batches += self._version(service, route, (version, label, share), (first, last))
        if not batches:
            query = self._render(self.config.templates.requests, service, route, "…")
            raise SourceError(
                f"Prometheus at {self.config.url} returned no series for {query} between "
                f"{first:.0f} and {last:.0f}: check the metric names and labels in the templates "
                "(or no request reached either version)"
            )
        batches.sort(key=lambda b: (b.ts, b.version != Version.STABLE))
        return batches

    def _render(self, template: str, service: str, route: str, label: str) -> str:
        interval = f"{self.config.interval_s:g}s"
        return self.config.templates.render(template, service, route, label, interval)

    def _version(
        self,
        service: str,
        route: str,
        version: tuple[Version, str, float],
        span: tuple[float, float],
    ) -> list[Batch]:
        arm, label, share = version
        t = self.config.templates

        def scalar(template: str | None) -> dict[float, float]:
            if template is None:
                return {}
            series = self._query(self._render(template, service, route, label), span)
            return _sum_series(series)

        requests = scalar(t.requests)
        errors, client_errors, users = scalar(t.errors), scalar(t.client_errors), scalar(t.users)
        buckets: dict[float, dict[float, float]] = {}
        if t.latency_buckets is not None:
            query = self._render(t.latency_buckets, service, route, label)
            buckets = _by_le(self._query(query, span), t.latency_unit_ms)
        batches = []
        for at, value in sorted(requests.items()):
            ts = at - self.config.interval_s
            n = round(value)
            e = min(round(errors.get(at, 0.0)), n)
            c = min(round(client_errors.get(at, 0.0)), n - e)
            batches.append(
                Batch(
                    ts=ts,
                    interval_s=self.config.interval_s,
                    service=service,
                    route=route,
                    version=arm,
                    traffic_class=TrafficClass.USER,
                    configured_share=min(max(share, 0.0), 1.0),
                    requests=n,
                    errors=e,
                    client_errors=c,
                    users=round(users.get(at, 0.0)),
                    histogram=_histogram(buckets.get(at, {})),
                )
            )
        return batches

    def _query(self, query: str, span: tuple[float, float]) -> list[Mapping[str, Any]]:
        """Run one range query; every failure becomes a SourceError naming the query."""
        url = self.config.url.rstrip("/") + "/api/v1/query_range"
        params: dict[str, str | float] = {
            "query": query,
            "start": span[0],
            "end": span[1],
            "step": self.config.interval_s,
        }
        try:
            response = self._client.get(url, params=params)
        except httpx.TimeoutException as exc:
            raise SourceError(f"Prometheus at {self.config.url} timed out ({exc!r})") from exc
        except httpx.HTTPError as exc:
            raise SourceError(f"cannot reach Prometheus at {self.config.url}: {exc}") from exc
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        if isinstance(body, Mapping) and body.get("status") == "error":
            raise SourceError(
                f"Prometheus rejected the query {query}: {body.get('errorType', 'error')}: "
                f"{body.get('error', '(no message)')}"
            )
        if response.status_code != httpx.codes.OK:
            raise SourceError(
                f"Prometheus at {url} answered HTTP {response.status_code} "
                f"{response.reason_phrase}: {response.text[:200]!r}"
            )
        data = body.get("data") if isinstance(body, Mapping) else None
        if not isinstance(data, Mapping) or data.get("resultType") != "matrix":
            raise SourceError(f"Prometheus at {url} answered something that is not a range result")
        result = data.get("result")
        return [s for s in result if isinstance(s, Mapping)] if isinstance(result, list) else []


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _points(series: Mapping[str, Any]) -> list[tuple[float, float]]:
    points = []
    for pair in series.get("values", []):
        try:
            ts, value = float(pair[0]), float(pair[1])
        except (TypeError, ValueError, IndexError):
            continue
        if math.isfinite(value):
            points.append((ts, max(value, 0.0)))
    return points


def _sum_series(series: list[Mapping[str, Any]]) -> dict[float, float]:
    total: dict[float, float] = {}
    for s in series:
        for ts, value in _points(s):
            total[ts] = total.get(ts, 0.0) + value
    return total


def _by_le(series: list[Mapping[str, Any]], unit_ms: float) -> dict[float, dict[float, float]]:
    """Cumulative bucket increases by time, then by upper bound in ms."""
    out: dict[float, dict[float, float]] = {}
    for s in series:
        metric = s.get("metric", {})
        try:
            le = float(metric.get("le", "")) * unit_ms
        except (TypeError, ValueError):
            continue
        for ts, value in _points(s):
            at = out.setdefault(ts, {})
            at[le] = at.get(le, 0.0) + value
    return out


def _histogram(cumulative: Mapping[float, float]) -> Histogram:
    """Per-bucket counts from cumulative ones (increase() may wobble: never below 0)."""
    if not cumulative:
        return Histogram()
    bounds = sorted(cumulative)
    counts, below = [], 0.0
    for le in bounds:
        level = max(cumulative[le], below)
        counts.append(round(level) - round(below))
        below = level
    return Histogram(tuple(bounds), tuple(counts))
