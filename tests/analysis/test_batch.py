"""Parsing and writing batches, in particular the optional ``new_users`` count."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from stageless.analysis.batch import Batch, TrafficClass, Version, parse_batch
from stageless.errors import ValidationError


def raw(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "ts": 1_764_100_000.0,
        "interval_s": 10,
        "service": "checkout",
        "route": "/api",
        "version": "candidate",
        "traffic_class": "user",
        "configured_share": 0.05,
        "requests": 120,
        "errors": 2,
        "client_errors": 3,
        "users": 97,
        "latency_ms": {"samples": [12.5], "histogram": {"le": [10, "+Inf"], "counts": [0, 1]}},
    }
    base.update(changes)
    return base


def issues(value: Any) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        parse_batch(value, where="line 3")
    return [f"{i.path}: {i.message}" for i in caught.value.issues]


def test_new_users_is_optional_and_absent_means_no_count() -> None:
    assert parse_batch(raw()).new_users is None
    assert parse_batch(raw(new_users=None)).new_users is None
    assert "new_users" not in parse_batch(raw()).to_json()


def test_new_users_is_read_and_written() -> None:
    parsed = parse_batch(raw(new_users=41))
    assert parsed.new_users == 41
    assert parsed.to_json()["new_users"] == 41
    assert parse_batch(raw(new_users=0, users=0)).new_users == 0


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (-1, "line 3.new_users: -1 is not a count; expected a whole number >= 0"),
        (2.5, "line 3.new_users: 2.5 is not a count; expected a whole number >= 0"),
        ("7", "line 3.new_users: '7' is not a count; expected a whole number >= 0"),
        (98, "line 3.new_users: 98 exceeds users (97); expected at most users"),
    ],
)
def test_a_bad_new_users_count_names_the_field(value: Any, message: str) -> None:
    assert issues(raw(new_users=value)) == [message]


counts = st.integers(min_value=0, max_value=10_000)


@given(
    requests=counts,
    users=counts,
    new_fraction=st.none() | st.floats(min_value=0.0, max_value=1.0),
)
def test_to_json_and_parse_batch_round_trip(
    requests: int, users: int, new_fraction: float | None
) -> None:
    new_users = None if new_fraction is None else int(users * new_fraction)
    first = parse_batch(raw(requests=requests, errors=0, client_errors=0, users=users))
    if new_users is not None:
        first = parse_batch({**first.to_json(), "new_users": new_users})
    assert parse_batch(first.to_json()) == first
    assert first.new_users == new_users


@given(st.lists(st.floats(min_value=0.0, max_value=1e5, allow_nan=False), max_size=30))
def test_a_batch_built_from_an_array_equals_one_built_from_the_tuple(values: list[float]) -> None:
    fields: dict[str, Any] = {
        "ts": 1.0,
        "interval_s": 10.0,
        "service": "s",
        "route": "/",
        "version": Version.CANDIDATE,
        "traffic_class": TrafficClass.USER,
        "configured_share": 0.1,
        "requests": len(values),
        "errors": 0,
        "client_errors": 0,
        "users": 1,
    }
    array = np.asarray(values, dtype=np.float64)
    fast = Batch.with_sample_array(array, **fields)
    plain = Batch(samples=tuple(values), **fields)
    assert fast == plain
    assert fast.to_json() == plain.to_json()
    assert fast.samples_array().tolist() == plain.samples_array().tolist() == values
    assert plain.samples_array() is plain.samples_array()  # converted once
    with pytest.raises(ValueError, match="read-only"):
        fast.samples_array()[:1] = 0.0
    array[:1] = -1.0  # the batch kept its own copy
    assert fast.samples_array().tolist() == values
