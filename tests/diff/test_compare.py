"""Differences between lifted responses: each kind, ignore rules, tolerance, properties."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stageless.diff import (
    ABSENT,
    CompareRules,
    DifferenceKind,
    compare,
    describe,
    differences,
    lift,
)
from stageless.diff.lift import OBJECT
from tests.diff.factories import JSON_HEADERS, documents, json_response, shuffled

K = DifferenceKind
ORDERED = CompareRules(unordered_arrays=False)


def diff(a: Any, b: Any, rules: CompareRules | None = None) -> dict[str, str]:
    return dict(differences(json_response(a, rules), json_response(b, rules)))


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ({"a": 1}, {"a": 1}, {}),
        ({"a": 1}, {"a": 1.0}, {}),
        ({"a": 1}, {"a": 2}, {"body.a": K.PRIMITIVE}),
        ({"a": "x"}, {"a": "y"}, {"body.a": K.PRIMITIVE}),
        ({"a": True}, {"a": False}, {"body.a": K.PRIMITIVE}),
        ({"a": True}, {"a": 1}, {"body.a": K.TYPE}),
        ({"a": "1"}, {"a": 1}, {"body.a": K.TYPE}),
        ({"a": None}, {"a": 0}, {"body.a": K.TYPE}),
        ({"a": {"b": 1}}, {"a": [1]}, {"body.a": K.TYPE}),
        ({"a": {"b": 1, "c": {"d": 2}}}, {"a": 3}, {"body.a": K.TYPE}),
        ({"a": 1, "b": 2}, {"a": 1}, {"body.b": K.MISSING}),
        ({"a": 1}, {"a": 1, "b": 2}, {"body.b": K.EXTRA}),
        ({"m": {"x": 1, "y": {"z": 2}}}, {}, {"body.m": K.MISSING}),
        ({}, {"m": {"x": 1, "y": {"z": 2}}}, {"body.m": K.EXTRA}),
        ({"xs": [1, 2]}, {"xs": [1, 2, 3]}, {"body.xs": K.SEQ_SIZE}),
        ({"xs": [1, 2]}, {"xs": [2, 1]}, {}),
        ({"xs": [1, 2]}, {"xs": [1, 3]}, {"body.xs[]": K.PRIMITIVE}),
        ({"xs": [1, "2"]}, {"xs": [1, 2]}, {"body.xs[]": K.TYPE}),
        (
            {"xs": [{"id": 1, "n": "a"}]},
            {"xs": [{"id": 1, "n": "b"}]},
            {"body.xs[].n": K.PRIMITIVE},
        ),
        ({"xs": [{"id": 1}]}, {"xs": [{"id": 1, "n": 2}]}, {"body.xs[].n": K.EXTRA}),
        ({"xs": [{"id": 1}]}, {"xs": [5]}, {"body.xs[]": K.TYPE}),
        ({"xs": [[1, 2]]}, {"xs": [[2, 1]]}, {}),
        ({"xs": [[-1, -2], [3]]}, {"xs": [[3], [-2, -1]]}, {}),  # -1 and -2 hash alike
        ({"xs": [[1, 2], [3, 4, 5]]}, {"xs": [[3, 4], [2, 1]]}, {"body.xs[]": K.SEQ_SIZE}),
        ({"xs": [[1, 2]]}, {"xs": [[1, 3]]}, {"body.xs[][]": K.PRIMITIVE}),
    ],
)
def test_difference_kinds(a: Any, b: Any, expected: dict[str, str]) -> None:
    assert diff(a, b) == expected


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ({"xs": [1, 2]}, {"xs": [2, 1]}, {"body.xs": K.ORDERING}),
        ({"xs": [1, 2]}, {"xs": [1, 3]}, {"body.xs[]": K.PRIMITIVE}),
        ({"xs": [[1, 2]]}, {"xs": [[2, 1]]}, {"body.xs[]": K.ORDERING}),
        ({"xs": [{"a": 1}, {"a": 2}]}, {"xs": [{"a": 2}, {"a": 1}]}, {"body.xs": K.ORDERING}),
    ],
)
def test_ordered_arrays(a: Any, b: Any, expected: dict[str, str]) -> None:
    assert diff(a, b, ORDERED) == expected


def test_status_and_header_differences() -> None:
    rules = CompareRules(headers=("content-type", "etag"))
    a = lift(200, [*JSON_HEADERS, (b"etag", b"1")], b'{"a": 1}', rules)
    b = lift(500, [(b"content-type", b"text/plain"), (b"etag", b"1")], b"boom", rules)
    assert differences(a, b) == {
        "status": K.PRIMITIVE,
        "headers.content-type": K.PRIMITIVE,
        "body": K.TYPE,
    }
    c = lift(200, JSON_HEADERS, b'{"a": 1}', rules)
    assert differences(a, c) == {"headers.etag": K.MISSING}
    assert differences(c, a) == {"headers.etag": K.EXTRA}


def test_an_empty_body_against_a_json_body() -> None:
    a = lift(200, JSON_HEADERS, b'{"a": {"b": 1}}', CompareRules())
    b = lift(200, JSON_HEADERS, b"", CompareRules())
    assert differences(a, b) == {"body": K.MISSING}


def test_ignore_fields_hide_differences() -> None:
    rules = CompareRules(ignore_fields=("body.id", "body.meta.*", "body.items[].at"))
    a = {"id": 1, "meta": {"t": 1}, "items": [{"at": 1, "v": 1}], "x": 1}
    b = {"id": 2, "meta": {"t": 2}, "items": [{"at": 2, "v": 1}], "x": 1}
    assert diff(a, b, rules) == {}
    assert diff(a, {**b, "x": 2}, rules) == {"body.x": K.PRIMITIVE}


def test_ignore_headers_hide_differences() -> None:
    rules = CompareRules(headers=("*",), ignore_headers=("x-trace",))
    a = lift(200, [(b"x-trace", b"1")], b"", rules)
    b = lift(200, [(b"x-trace", b"2")], b"", rules)
    assert differences(a, b) == {}


def test_numeric_tolerance_is_relative_to_the_larger_magnitude() -> None:
    rules = CompareRules(numeric_tolerance=0.01)
    assert diff({"p": 100.0}, {"p": 100.9}, rules) == {}
    assert diff({"p": 100.0}, {"p": 101.0}, rules) == {}
    assert diff({"p": 100.0}, {"p": 101.1}, rules) == {"body.p": K.PRIMITIVE}
    assert diff({"p": 0}, {"p": 0.0001}, rules) == {"body.p": K.PRIMITIVE}
    assert diff({"p": [1.0, 2.0]}, {"p": [1.001, 2.0]}, rules) == {}
    assert diff({"p": 100.0}, {"p": 100.9}) == {"body.p": K.PRIMITIVE}


def test_unordered_elements_pair_with_the_most_similar_element() -> None:
    a = {"xs": [{"id": 1, "s": "a", "k": 1}, {"id": 2, "s": "b", "k": 2}]}
    b = {"xs": [{"id": 2, "s": "b", "k": 3}, {"id": 1, "s": "A", "k": 1}]}
    assert diff(a, b) == {"body.xs[].s": K.PRIMITIVE, "body.xs[].k": K.PRIMITIVE}


def test_several_kinds_at_one_array_path_keep_the_strongest() -> None:
    a = {"xs": [{"id": 1, "v": 1}, {"id": 2, "v": 2}]}
    b = {"xs": [{"id": 1, "v": "1"}, {"id": 2, "v": 3}]}
    assert diff(a, b) == {"body.xs[].v": K.TYPE}
    assert diff(b, a) == {"body.xs[].v": K.TYPE}


def test_identical_responses_are_settled_without_parsing_the_body() -> None:
    body = json.dumps({"xs": list(range(1000))}).encode()
    a = lift(200, JSON_HEADERS, body, CompareRules())
    b = lift(200, JSON_HEADERS, bytes(body), CompareRules())
    assert differences(a, b) == {}
    assert not a.flattened
    assert not b.flattened
    c = lift(200, JSON_HEADERS, body.replace(b"[0, 1", b"[1, 0"), CompareRules())
    assert differences(a, c) == {}  # unordered: the same multiset
    assert a.flattened
    assert c.flattened


def test_the_same_bytes_under_other_rules_are_compared_field_by_field() -> None:
    a = lift(200, JSON_HEADERS, b"[1, 2]", CompareRules())
    b = lift(200, JSON_HEADERS, b"[1, 2]", CompareRules(ignore_fields=("body",)))
    assert not a.same_bytes(b)
    assert differences(a, b) == {"body": K.MISSING}


def test_compare_keeps_both_values_for_examples() -> None:
    found = compare(json_response({"a": "x", "b": 1}), json_response({"a": "y"}))
    assert found["body.a"].primary == "x"
    assert found["body.a"].other == "y"
    assert found["body.b"].other is ABSENT


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("x", '"x"'),
        (None, "null"),
        (3, "3"),
        (1.5, "1.5"),
        (OBJECT, "{…}"),
        (ABSENT, "(absent)"),
        ((1, "a"), '[1, "a"] (2 items)'),
        ((1,), "[1] (1 item)"),
        (tuple(range(7)), "[0, 1, 2, 3, 4, …] (7 items)"),
    ],
)
def test_describe_renders_leaves_briefly(value: Any, text: str) -> None:
    assert describe(value) == text


def test_describe_cuts_long_values() -> None:
    assert describe("x" * 500, 20) == '"' + "x" * 18 + "…"
    array = json_response([{"a": 1}]).fields["body"]
    assert describe(array) == "[{…}] (1 item)"


@given(documents)
def test_a_response_never_differs_from_itself(document: Any) -> None:
    assert differences(json_response(document), json_response(document)) == {}
    assert differences(json_response(document, ORDERED), json_response(document, ORDERED)) == {}


@given(documents, documents, st.booleans())
def test_the_differing_paths_are_symmetric(a: Any, b: Any, unordered: bool) -> None:
    rules = CompareRules(unordered_arrays=unordered)
    forward = differences(json_response(a, rules), json_response(b, rules))
    backward = differences(json_response(b, rules), json_response(a, rules))
    assert forward.keys() == backward.keys()
    mirrored = {K.MISSING: K.EXTRA, K.EXTRA: K.MISSING}
    for path, kind in forward.items():
        if kind not in mirrored and backward[path] not in mirrored:
            assert backward[path] == kind, path


@given(documents, st.randoms(use_true_random=False))
def test_unordered_arrays_ignore_any_permutation(document: Any, rng: random.Random) -> None:
    assert differences(json_response(document), json_response(shuffled(document, rng))) == {}


@given(documents, documents)
def test_differences_appear_exactly_when_the_documents_differ(a: Any, b: Any) -> None:
    found = differences(json_response(a, ORDERED), json_response(b, ORDERED))
    same = json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    if same:
        assert found == {}
    elif _numbers_equal(a, b):
        pass  # 1 and 1.0, or -0.0 and 0: equal numbers written differently
    else:
        assert found, (a, b)


def _numbers_equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return bool(a == b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_numbers_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_numbers_equal(a[k], b[k]) for k in a)
    return bool(a == b) and type(a) is type(b)
