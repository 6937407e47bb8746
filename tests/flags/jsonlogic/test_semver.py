"""``sem_ver``: the flagd-testbed scenarios, SemVer 2.0.0 precedence and bad input."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stageless.flags.jsonlogic.operators.semver import parse_version
from tests.flags.jsonlogic.flagd_support import compile_for


def sem_ver(left: Any, op: Any, right: Any) -> Any:
    return compile_for({"sem_ver": [left, op, right]})({})


def with_version(rule: Any, version: Any) -> Any:
    return compile_for(rule)({"version": version})


EQUAL_GREATER_LESSER = {
    "if": [
        {"sem_ver": [{"var": "version"}, "=", "2.0.0"]},
        "equal",
        {
            "if": [
                {"sem_ver": [{"var": "version"}, ">", "2.0.0"]},
                "greater",
                {"if": [{"sem_ver": [{"var": "version"}, "<", "2.0.0"]}, "lesser", "none"]},
            ]
        },
    ]
}
MAJOR_MINOR = {
    "if": [
        {"sem_ver": [{"var": "version"}, "~", "3.0.0"]},
        "minor",
        {"if": [{"sem_ver": [{"var": "version"}, "^", "3.0.0"]}, "major", "none"]},
    ]
}


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("2.0.0", "equal"),
        ("2.1.0", "greater"),
        ("1.9.0", "lesser"),
        ("2.0.0-alpha", "lesser"),
        ("2.0.0.0", "none"),
    ],
)
def test_numeric_comparison(version: str, expected: str) -> None:
    assert with_version(EQUAL_GREATER_LESSER, version) == expected


@pytest.mark.parametrize(
    ("version", "expected"), [("3.0.1", "minor"), ("3.1.0", "major"), ("4.0.0", "none")]
)
def test_major_and_minor_ranges(version: str, expected: str) -> None:
    assert with_version(MAJOR_MINOR, version) == expected


@pytest.mark.parametrize(
    ("rule", "version", "expected"),
    [
        # semver-v-prefix-flag: = v1.0.0
        ({"sem_ver": [{"var": "version"}, "=", "v1.0.0"]}, "1.0.0", True),
        ({"sem_ver": [{"var": "version"}, "=", "v1.0.0"]}, "v1.0.0", True),
        ({"sem_ver": [{"var": "version"}, "=", "v1.0.0"]}, "V1.0.0", True),
        ({"sem_ver": [{"var": "version"}, "=", "v1.0.0"]}, "2.0.0", False),
        # semver-partial-version-flag: ^ 1
        ({"sem_ver": [{"var": "version"}, "^", "1"]}, "1.5.0", True),
        ({"sem_ver": [{"var": "version"}, "^", "1"]}, "1.0.0", True),
        ({"sem_ver": [{"var": "version"}, "^", "1"]}, "1.0", True),
        ({"sem_ver": [{"var": "version"}, "^", "1"]}, "1", True),
        ({"sem_ver": [{"var": "version"}, "^", "1"]}, 1, True),
        ({"sem_ver": [{"var": "version"}, "^", "1"]}, 1.0, True),
        ({"sem_ver": [{"var": "version"}, "^", "1"]}, 1.2, True),
        ({"sem_ver": [{"var": "version"}, "^", "1"]}, "2.0.0", False),
        # semver-numeric-context-flag: > 1.1
        ({"sem_ver": [{"var": "version"}, ">", "1.1"]}, 1.2, True),
        ({"sem_ver": [{"var": "version"}, ">", "1.1"]}, 1.1, False),
        ({"sem_ver": [{"var": "version"}, ">", "1.1"]}, 2, True),
        ({"sem_ver": [{"var": "version"}, ">", "1.1"]}, 1, False),
        ({"sem_ver": [{"var": "version"}, ">", "1.1"]}, "1.2", True),
        # semver-build-metadata-flag: = 1.0.0+build
        ({"sem_ver": [{"var": "version"}, "=", "1.0.0+build"]}, "1.0.0", True),
        ({"sem_ver": [{"var": "version"}, "=", "1.0.0+build"]}, "1.0.0+other", True),
        ({"sem_ver": [{"var": "version"}, "=", "1.0.0+build"]}, "2.0.0", False),
    ],
)
def test_testbed_edge_cases(rule: Any, version: Any, expected: bool) -> None:
    assert with_version(rule, version) is expected


@pytest.mark.parametrize(
    ("rule", "version"),
    [
        ({"sem_ver": [{"var": "version"}, "=", "1.0.0"]}, "not-a-version"),
        ({"sem_ver": [{"var": "version"}, "===", "1.0.0"]}, "1.0.0"),
        ({"sem_ver": [{"var": "version"}, "="]}, "1.0.0"),
        ({"sem_ver": [{"var": "version"}, "=", "1.0.0", "1.0.0"]}, "1.0.0"),
        ({"sem_ver": "1.0.0"}, "1.0.0"),
        ({"sem_ver": []}, "1.0.0"),
        ({"sem_ver": [{"var": "version"}, "=", "1.0.0"]}, None),
        ({"sem_ver": [{"var": "version"}, "=", "1.0.0"]}, True),
        ({"sem_ver": [{"var": "version"}, "=", "1.0.0"]}, ["1.0.0"]),
        ({"sem_ver": [{"var": "version"}, "=", "x"]}, "1.0.0"),
        ({"sem_ver": [{"var": "version"}, 1, "1.0.0"]}, "1.0.0"),
        ({"sem_ver": [{"var": "version"}, {"var": "version"}, "1.0.0"]}, "1.0.0"),
    ],
)
def test_bad_input_is_null(rule: Any, version: Any) -> None:
    assert with_version(rule, version) is None


@pytest.mark.parametrize(
    "text",
    [
        "",
        "v",
        "1.",
        "1..0",
        "01.0.0",
        "1.02.0",
        "1.0.00",
        "1.0.0-",
        "1.0.0-01",
        "1.0.0-a..b",
        "1.0.0+",
        "1.0.0+a..b",
        "1.0.0 ",
        " 1.0.0",
        "vv1.0.0",
        "1.0.0-a_b",
        "1.2.3.4",
        "-1.0.0",
        "1.0.0-é",
        "１.0.0",
        "1e5",
    ],
)
def test_invalid_versions(text: str) -> None:
    assert parse_version(text) is None


@pytest.mark.parametrize(
    "text",
    ["1.0.0-0", "1.0.0-0a", "1.0.0-a-b.c-d", "1.0.0+001", "1.0.0-rc.1+build.5", "v1.2-rc.1"],
)
def test_valid_versions(text: str) -> None:
    assert parse_version(text) is not None


# SemVer 2.0.0 §11's example, in increasing precedence.
ORDERED = [
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.beta",
    "1.0.0-beta",
    "1.0.0-beta.2",
    "1.0.0-beta.11",
    "1.0.0-rc.1",
    "1.0.0",
    "1.0.1",
    "1.1.0",
    "1.10.0",
    "2.0.0",
]


@pytest.mark.parametrize("index", range(len(ORDERED) - 1))
def test_precedence_follows_semver(index: int) -> None:
    lower, higher = ORDERED[index], ORDERED[index + 1]
    assert sem_ver(lower, "<", higher) is True
    assert sem_ver(lower, "<=", higher) is True
    assert sem_ver(higher, ">", lower) is True
    assert sem_ver(higher, ">=", lower) is True
    assert sem_ver(lower, "!=", higher) is True
    assert sem_ver(lower, "=", higher) is False
    assert sem_ver(lower, ">", higher) is False


@pytest.mark.parametrize(
    ("left", "op", "right", "expected"),
    [
        ("1.2.3", "^", "1.9.9", True),
        ("1.2.3", "^", "2.0.0", False),
        ("1.2.3", "~", "1.2.9", True),
        ("1.2.3", "~", "1.3.0", False),
        ("1.2.3-rc.1", "~", "1.2.0", True),
        ("1.2.3", "<=", "1.2.3+build", True),
        ("1.2.3", ">=", "v1.2.3", True),
    ],
)
def test_operators(left: str, op: str, right: str, expected: bool) -> None:
    assert sem_ver(left, op, right) is expected


def test_operator_and_target_may_be_expressions() -> None:
    rule = {"sem_ver": [{"var": "a"}, {"var": "op"}, {"var": "b"}]}
    evaluate = compile_for(rule)
    assert evaluate({"a": "1.0.0", "op": "<", "b": "1.0.1"}) is True
    assert evaluate({"a": "1.0.0", "op": "<", "b": "bad"}) is None
    assert evaluate({"a": "1.0.0", "op": "?", "b": "1.0.1"}) is None


VERSIONS = st.builds(
    lambda core, pre: ".".join(map(str, core)) + (f"-{'.'.join(pre)}" if pre else ""),
    st.tuples(*[st.integers(0, 20)] * 3),
    st.lists(st.sampled_from(["alpha", "beta", "rc", "0", "1", "2", "10", "x-y"]), max_size=3),
)


@given(VERSIONS, VERSIONS)
def test_comparisons_are_consistent(left: str, right: str) -> None:
    less, equal, greater = (
        sem_ver(left, "<", right),
        sem_ver(left, "=", right),
        sem_ver(left, ">", right),
    )
    assert [less, equal, greater].count(True) == 1
    assert sem_ver(right, ">", left) is less
    assert sem_ver(left, "!=", right) is not equal
    assert sem_ver("v" + left, "=", left + "+build.1") is True


def test_parsed_versions_are_remembered_without_changing_results() -> None:
    evaluate = compile_for({"sem_ver": [{"var": "version"}, ">=", "1.500.0"]})
    for _ in range(2):  # the second round reads what the first parsed, past the bound
        for minor in range(0, 3000, 7):
            assert evaluate({"version": f"1.{minor}.0"}) is (minor >= 500)
    assert evaluate({"version": "1.x"}) is None
    assert evaluate({"version": "1.x"}) is None
