"""Shared helpers for the JSON Logic tests."""

from __future__ import annotations

from typing import Any

from stageless.clock import FakeClock
from stageless.flags.jsonlogic import Options

FLAG_KEY = "my-flag"
NOW = 1_700_000_000.75


def flagd_options() -> Options:
    """Options as a flag named ``my-flag`` would get them, at a fixed time."""
    return Options(flag_key=FLAG_KEY, clock=FakeClock(NOW))


def same(actual: Any, expected: Any) -> bool:
    """JSON equality that tells booleans from numbers (Python's ``True == 1`` does not)."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(actual) is type(expected) and actual == expected
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(expected)
            and all(same(a, e) for a, e in zip(actual, expected, strict=True))
        )
    if isinstance(expected, dict):
        return (
            isinstance(actual, dict)
            and actual.keys() == expected.keys()
            and all(same(actual[k], expected[k]) for k in expected)
        )
    if expected is None:
        return actual is None
    if type(expected) in (int, float):
        return type(actual) in (int, float) and actual == expected
    return type(actual) is type(expected) and actual == expected
