"""CompareRules: normalisation, validation with path-level messages, path patterns."""

from __future__ import annotations

from typing import Any

import pytest

from stageless.diff import VOLATILE_HEADERS, CompareRules
from stageless.diff.rules import compile_patterns
from stageless.errors import ValidationError


def test_defaults_follow_the_proxy_configuration() -> None:
    rules = CompareRules()
    assert rules.headers == ("content-type",)
    assert rules.unordered_arrays is True
    assert rules.numeric_tolerance == 0.0
    assert rules.ignored is None


def test_header_names_are_lower_cased() -> None:
    rules = CompareRules(headers=("Content-Type", "ETag"), ignore_headers=("X-Trace",))
    assert rules.headers == ("content-type", "etag")
    assert rules.ignore_headers == ("x-trace",)
    assert rules.compares_header("etag")
    assert not rules.compares_header("x-trace")
    assert not rules.compares_header("vary")


def test_star_compares_all_but_volatile_headers() -> None:
    rules = CompareRules(headers=("*",))
    assert rules.compares_header("etag")
    assert "date" in VOLATILE_HEADERS
    assert not any(rules.compares_header(name) for name in VOLATILE_HEADERS)


def test_lists_are_accepted_and_rules_compare_by_value() -> None:
    rules = CompareRules(headers=["etag"], ignore_fields=["body.id"])  # type: ignore[arg-type]
    assert rules == CompareRules(headers=("etag",), ignore_fields=("body.id",))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"headers": "content-type"}, "headers: expected a list of strings, got 'content-type'"),
        ({"headers": ("etag", "")}, "headers[1]: expected a non-empty string, got ''"),
        ({"ignore_fields": (3,)}, "ignore_fields[0]: expected a non-empty string, got 3"),
        ({"ignore_headers": None}, "ignore_headers: expected a list of strings, got None"),
        ({"unordered_arrays": "yes"}, "unordered_arrays: expected true or false, got 'yes'"),
        ({"numeric_tolerance": -0.1}, "numeric_tolerance: expected a number >= 0, got -0.1"),
        ({"numeric_tolerance": float("nan")}, "numeric_tolerance: expected a number >= 0, got nan"),
        ({"numeric_tolerance": True}, "numeric_tolerance: expected a number >= 0, got True"),
        ({"max_body_bytes": -1}, "max_body_bytes: expected an integer >= 0, got -1"),
        ({"max_body_bytes": 1.5}, "max_body_bytes: expected an integer >= 0, got 1.5"),
    ],
)
def test_bad_rules_name_the_field(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        CompareRules(**kwargs)
    assert [str(issue) for issue in caught.value.issues] == [message]


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ValidationError) as caught:
        CompareRules(numeric_tolerance=-1, max_body_bytes=-1)
    assert len(caught.value.issues) == 2


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("body.id", "body.id", True),
        ("body.id", "body.ids", False),
        ("body.id", "xbody.id", False),
        ("body.*", "body.meta", True),
        ("body.*", "body.meta.at", False),
        ("body.**", "body.meta.at", True),
        ("body.*.at", "body.meta.at", True),
        ("body.items[].id", "body.items[].id", True),
        ("body.items[].id", "body.itemsX.id", False),
        ("body.*.id", "body.items[].id", True),
        ("headers.x-*", "headers.x-trace", True),
        ('body["a.b"]', 'body["a.b"]', True),
    ],
)
def test_path_patterns(pattern: str, path: str, matches: bool) -> None:
    matcher = compile_patterns([pattern])
    assert matcher is not None
    assert bool(matcher(path)) is matches


def test_no_patterns_compile_to_none() -> None:
    assert compile_patterns([]) is None
