"""Proxy reports: what proxies measured, kept for the rollout runner.

A proxy following a proxy config posts, every batch interval, ``{"batches": [...], "diff":
{...}}``: the interval's batches (``stageless.analysis.batch`` JSON) and its shadow diff counts
since its last report (a :class:`~stageless.diff.CollectorState` delta as JSON,
``stageless.diff.wire``). :func:`parse_report` validates both, naming every bad path
(``batches[3].errors: ...``, ``diff.endpoints['GET /'].total: ...``). Reports are stored durably
and deleted after ``retention_s`` (24 hours by default). The runner's driver reads them back:
:meth:`ReportService.batches` for the judge, :meth:`ReportService.diff_since` for the shadow gate.

Reports are telemetry, not changes: they are not written to the audit log (a proxy reports
every few seconds; the audit log is append-only and kept forever).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from stageless.analysis.batch import Batch, parse_batch
from stageless.diff.collector import CollectorState, DiffCollector
from stageless.diff.wire import state_from_json, state_to_json
from stageless.errors import Issue, ValidationError
from stageless.store import ProxyReport, Store

__all__ = [
    "CLOCK_SKEW_S",
    "DEFAULT_REPORT_RETENTION_S",
    "Report",
    "ReportService",
    "parse_report",
    "report_json",
]

DEFAULT_REPORT_RETENTION_S = 24 * 3600.0
CLOCK_SKEW_S = 60.0
"""How far a proxy's clock (its batches' ``ts``) may run ahead of the control plane's (the
time a report is received) without a batch being missed by :meth:`ReportService.batches`."""


@dataclass(frozen=True, slots=True)
class Report:
    """One validated report: batches, and the diff delta (``None`` when the proxy sent none)."""

    batches: tuple[Batch, ...]
    diff: CollectorState | None = None


def parse_report(body: bytes | str) -> Report:
    """Validate a report's JSON text; ``ValidationError`` naming every bad path."""
    try:
        raw = json.loads(body)
    except ValueError as exc:
        raise ValidationError([Issue("", f"not valid JSON: {exc}")], source="report") from exc
    if not isinstance(raw, Mapping):
        raise ValidationError(
            [Issue("", "expected an object with 'batches' and 'diff'")], source="report"
        )
    issues = [
        Issue(str(key), "unknown key; expected batches or diff")
        for key in raw
        if key not in ("batches", "diff")
    ]
    raw_batches = raw.get("batches")
    batches: list[Batch] = []
    if not isinstance(raw_batches, list):
        issues.append(Issue("batches", "expected a list of batches"))
    else:
        for index, item in enumerate(raw_batches):
            try:
                batches.append(parse_batch(item, where=f"batches[{index}]"))
            except ValidationError as exc:
                issues.extend(exc.issues)
    diff = None
    if raw.get("diff") is not None:
        try:
            diff = state_from_json(raw["diff"], where="diff")
        except ValidationError as exc:
            issues.extend(exc.issues)
    if issues:
        raise ValidationError(issues, source="report")
    return Report(tuple(batches), diff)


class ReportService:
    """Proxy reports over a ``Store``; thread-safe."""

    def __init__(self, store: Store, *, retention_s: float = DEFAULT_REPORT_RETENTION_S) -> None:
        self._store = store
        self.retention_s = retention_s

    def add(
        self, config: str, batches: Sequence[Batch], diff_state: CollectorState | None = None
    ) -> ProxyReport:
        """Store a report of proxy config ``config`` (``NotFoundError`` if there is none)."""
        self._store.get_proxy_config(config)
        text = json.dumps([batch.to_json() for batch in batches], separators=(",", ":"))
        diff = (
            None
            if diff_state is None
            else json.dumps(state_to_json(diff_state), ensure_ascii=False, separators=(",", ":"))
        )
        return self._store.add_proxy_report(config, text, diff, keep_s=self.retention_s)

    def add_json(self, config: str, body: bytes | str) -> Report:
        """Validate a report's JSON text and store it; return what was stored.
        ``NotFoundError`` for an unknown ``config`` comes before any complaint about the body."""
        self._store.get_proxy_config(config)
        report = parse_report(body)
        self.add(config, report.batches, report.diff)
        return report

    def batches(self, config: str, service: str, since: float) -> list[Batch]:
        """The batches of ``service`` reported for ``config`` whose interval started at or
        after ``since``, in the order they were reported."""
        found: list[Batch] = []
        for report in self._store.list_proxy_reports(config, since=since - CLOCK_SKEW_S):
            found.extend(
                parse_batch(raw)
                for raw in json.loads(report.batches)
                if raw.get("service") == service and raw.get("ts", -1.0) >= since
            )
        return found

    def diff_since(self, config: str, since: float) -> CollectorState:
        """The diff deltas reported for ``config`` at or after ``since``, merged."""
        merged = DiffCollector()
        for report in self._store.list_proxy_reports(config, since=since):
            if report.diff is not None:
                merged.merge(state_from_json(json.loads(report.diff)))
        return merged.state


def report_json(report: Report) -> dict[str, Any]:
    """A report's JSON form (as a proxy sends it)."""
    return {
        "batches": [batch.to_json() for batch in report.batches],
        "diff": None if report.diff is None else state_to_json(report.diff),
    }
