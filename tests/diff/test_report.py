"""DiffReport: the documented JSON shape, the round trip, errors that name the path."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stageless.diff import (
    DiffCollector,
    DiffReport,
    EndpointReport,
    Example,
    FieldReport,
    NoiseFilter,
)
from stageless.errors import ValidationError
from tests.diff.factories import json_response


def sample_report() -> DiffReport:
    collector = DiffCollector()
    same = json_response({"user": {"name": "Ann"}, "n": 1})
    for i in range(1000):
        candidate = json_response({"user": {"name": "ann"}, "n": 1}) if i < 50 else same
        collector.record("GET /api/orders", same, candidate, same, f"GET /api/orders/{i}")
    collector.record("GET /api/users", same, same, None, "GET /api/users/1")
    return collector.report()


def test_the_json_shape_is_the_documented_one() -> None:
    data = sample_report().to_json()
    assert data == {
        "version": 1,
        "thresholds": {"relative": 20.0, "absolute": 0.03},
        "untracked_requests": 0,
        "endpoints": {
            "GET /api/orders": {
                "total": 1000,
                "differing": 50,
                "noise_sampled": 1000,
                "critical": True,
                "untracked_differences": 0,
                "fields": {
                    "body.user.name": {
                        "raw": 50,
                        "noise": 0,
                        "noise_estimate": 0.0,
                        "relative": 100.0,
                        "absolute": 5.0,
                        "reported": True,
                        "kinds": {"PrimitiveDifference": 50},
                        "examples": [
                            {
                                "request": f"GET /api/orders/{i}",
                                "primary": '"Ann"',
                                "candidate": '"ann"',
                            }
                            for i in range(5)
                        ],
                    }
                },
            },
            "GET /api/users": {
                "total": 1,
                "differing": 0,
                "noise_sampled": 0,
                "critical": False,
                "untracked_differences": 0,
                "fields": {},
            },
        },
    }
    json.dumps(data, allow_nan=False)  # plain JSON


def test_a_report_without_noise_estimates_reads_them_as_the_counts() -> None:
    """Reports written before the noise was sampled had it counted on every request."""
    data = sample_report().to_json()
    field = data["endpoints"]["GET /api/orders"]["fields"]["body.user.name"]
    field["noise"] = 7
    del field["noise_estimate"]
    [read] = DiffReport.from_json(data).endpoints[0].fields
    assert (read.noise, read.noise_estimate) == (7, 7.0)


def test_the_report_reads_back() -> None:
    report = sample_report()
    assert DiffReport.from_json(json.loads(json.dumps(report.to_json()))) == report


counts = st.integers(min_value=0, max_value=10**9)
percent = st.floats(min_value=0, max_value=100)
texts = st.text(max_size=20)
field_reports = st.builds(
    FieldReport,
    path=texts,
    raw=counts,
    noise=counts,
    noise_estimate=st.floats(min_value=0, max_value=1e12),
    relative=percent,
    absolute=percent,
    reported=st.booleans(),
    kinds=st.dictionaries(texts, counts, max_size=3).map(lambda d: tuple(d.items())),
    examples=st.lists(st.builds(Example, texts, texts, texts), max_size=5).map(tuple),
)
endpoint_reports = st.builds(
    EndpointReport,
    endpoint=texts,
    total=counts,
    differing=counts,
    noise_sampled=counts,
    untracked_differences=counts,
    critical=st.booleans(),
    fields=st.lists(field_reports, max_size=4, unique_by=lambda f: f.path).map(tuple),
)
reports = st.builds(
    DiffReport,
    endpoints=st.lists(endpoint_reports, max_size=4, unique_by=lambda e: e.endpoint).map(tuple),
    thresholds=st.builds(NoiseFilter, percent, percent),
    untracked_requests=counts,
)


@given(reports)
def test_any_report_survives_a_json_round_trip(report: DiffReport) -> None:
    text = json.dumps(report.to_json())
    assert DiffReport.from_json(json.loads(text)) == report


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(version=2), "version: expected 1, got 2"),
        (lambda d: d.update(endpoints=[]), "endpoints: expected an object, got []"),
        (
            lambda d: d["endpoints"]["GET /api/orders"].update(total=-1),
            "endpoints['GET /api/orders'].total: expected an integer >= 0, got -1",
        ),
        (
            lambda d: d["endpoints"]["GET /api/orders"]["fields"]["body.user.name"].update(
                relative="high"
            ),
            "endpoints['GET /api/orders'].fields['body.user.name'].relative: "
            "expected a finite number, got 'high'",
        ),
        (
            lambda d: d["endpoints"]["GET /api/orders"]["fields"]["body.user.name"].update(
                examples=[{"request": 1}]
            ),
            "endpoints['GET /api/orders'].fields['body.user.name'].examples[0]: "
            "expected request, primary and candidate strings, got {'request': 1}",
        ),
        (
            lambda d: d["endpoints"]["GET /api/orders"].update(critical="yes"),
            "endpoints['GET /api/orders'].critical: expected true or false, got 'yes'",
        ),
        (
            lambda d: d["thresholds"].update(absolute=None),
            "thresholds.absolute: expected a finite number, got None",
        ),
    ],
)
def test_a_bad_report_names_the_path(mutate: Any, message: str) -> None:
    data = sample_report().to_json()
    mutate(data)
    with pytest.raises(ValidationError) as caught:
        DiffReport.from_json(data)
    assert [str(issue) for issue in caught.value.issues] == [message]


def test_a_report_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        DiffReport.from_json([1, 2])
    assert [str(issue) for issue in caught.value.issues] == [
        "(report): expected an object, got [1, 2]"
    ]


def test_reported_lists_the_fields_that_passed() -> None:
    (orders, users) = sample_report().endpoints
    assert [f.path for f in orders.reported()] == ["body.user.name"]
    assert users.reported() == ()
