"""A collector's state through JSON: the round trip is exact, merging JSON deltas equals merging
the states, and a malformed state names every bad path."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given

from stageless.diff import CollectorState, DiffCollector, state_from_json, state_to_json
from stageless.errors import ValidationError
from tests.diff.test_collector import requests, run


def through_json(state: CollectorState) -> CollectorState:
    return state_from_json(json.loads(json.dumps(state_to_json(state))))


@given(requests)
def test_a_state_survives_json_exactly(items: Any) -> None:
    state = run(items).state
    assert through_json(state) == state


@given(requests, requests)
def test_merging_json_deltas_equals_one_collector_fed_everything(first: Any, second: Any) -> None:
    everything = run(first + second)
    one, two = run(first), DiffCollector()
    for n, (endpoint, primary, candidate, secondary) in enumerate(second, start=len(first)):
        two.record(endpoint, primary, candidate, secondary, f"req {n}")
    merged = DiffCollector()
    merged.merge(through_json(one.take()))
    merged.merge(through_json(two.take()))
    assert merged.report() == everything.report()


def test_an_empty_object_is_an_empty_state() -> None:
    assert state_from_json({}) == CollectorState()


def test_every_bad_path_is_named() -> None:
    raw = {
        "untracked_requests": -1,
        "endpoints": {
            "GET /a": {
                "total": 1,
                "differing": 2,
                "colour": "red",
                "fields": {
                    "body.x": {"raw": "3", "kinds": {"PrimitiveDifference": 1.5}, "examples": [1]}
                },
            },
            "GET /b": [],
        },
    }
    with pytest.raises(ValidationError) as caught:
        state_from_json(raw, where="diff")
    paths = [issue.path for issue in caught.value.issues]
    assert paths == [
        "diff.endpoints['GET /a'].colour",
        "diff.endpoints['GET /a'].differing",
        "diff.endpoints['GET /a'].fields['body.x'].kinds['PrimitiveDifference']",
        "diff.endpoints['GET /a'].fields['body.x'].examples[0]",
        "diff.endpoints['GET /a'].fields['body.x'].raw",
        "diff.endpoints['GET /b']",
        "diff.untracked_requests",
    ]
    messages = {issue.path: issue.message for issue in caught.value.issues}
    assert messages["diff.untracked_requests"] == "-1 is not a count; expected a whole number >= 0"
    assert messages["diff.endpoints['GET /a'].differing"] == "2 exceeds total (1)"
    assert messages["diff.endpoints['GET /b']"] == "expected a JSON object, got list"


def test_a_state_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(ValidationError, match="diff: expected a JSON object, got null"):
        state_from_json(None)
