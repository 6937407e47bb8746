"""The shadow step's gate: the summary of a diff report, expected fields, the error limit."""

from __future__ import annotations

import pytest

from stageless.diff.report import DiffReport, EndpointReport, FieldReport
from stageless.rollout.gates import DiffSummary, shadow_gate, unexpected_fields
from stageless.rollout.plan import ShadowStep


def shadow(**fields: object) -> ShadowStep:
    return ShadowStep.model_validate({"kind": "shadow", **fields})


def field(path: str, *, reported: bool = True) -> FieldReport:
    return FieldReport(path, 10, 0, 0.0, 100.0, 1.0, reported, (("PrimitiveDifference", 10),), ())


def endpoint(name: str, total: int, *fields: FieldReport) -> EndpointReport:
    critical = any(f.reported for f in fields)
    return EndpointReport(name, total, 10, total, 0, critical, fields)


def test_a_summary_of_a_report_lists_each_reported_field_once() -> None:
    report = DiffReport(
        (
            endpoint("GET /a", 600, field("body.version"), field("body.noise", reported=False)),
            endpoint("GET /b", 400, field("body.version"), field("status")),
        )
    )
    summary = DiffSummary.from_report(report, candidate_requests=1000, candidate_errors=5)
    assert summary == DiffSummary(1000, ("body.version", "status"), 1000, 5)
    assert summary.error_percent == 0.5
    assert DiffSummary(0).error_percent == 0.0


def test_expected_fields_are_patterns() -> None:
    step = shadow(expected_fields=["body.version", "headers.x-*"])
    summary = DiffSummary(10, ("body.version", "body.versions", "headers.x-build", "status"))
    assert unexpected_fields(step, summary) == ("body.versions", "status")


@pytest.mark.parametrize(
    ("fields", "summary", "passed", "reason"),
    [
        ({}, None, None, "no request was compared"),
        ({}, DiffSummary(0), None, "no request was compared"),
        (
            {},
            DiffSummary(500, (), 500, 5),
            True,
            "500 requests compared, 0 unexpected differing field(s), candidate errors 1.00%",
        ),
        (
            {},
            DiffSummary(500, (), 500, 6),
            False,
            "the candidate failed 6 of 500 shadow requests (1.20%); at most 1% tolerated",
        ),
        (
            {},
            DiffSummary(500, ("body.a",)),
            False,
            "1 unexpected differing field(s) (body.a); 0 tolerated",
        ),
        (
            {"max_unexpected_fields": 1, "expected_fields": ["body.v"]},
            DiffSummary(500, ("body.a", "body.v")),
            True,
            "500 requests compared, 1 unexpected differing field(s), candidate errors 0.00%",
        ),
        (
            {"max_error_percent": 0},
            DiffSummary(500, tuple(f"body.f{i}" for i in range(7)), 10, 1),
            False,
            "7 unexpected differing field(s) (body.f0, body.f1, body.f2, body.f3, body.f4, ...); "
            "0 tolerated; the candidate failed 1 of 10 shadow requests (10.00%); at most 0% "
            "tolerated",
        ),
    ],
)
def test_the_shadow_gate(
    fields: dict[str, object], summary: DiffSummary | None, passed: bool | None, reason: str
) -> None:
    result = shadow_gate(shadow(**fields), summary)
    assert (result.passed, result.reason) == (passed, reason)
