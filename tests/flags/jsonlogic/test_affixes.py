"""``starts_with`` and ``ends_with``: the flagd-testbed scenarios and bad input."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.flags.jsonlogic.flagd_support import compile_for

STARTS_ENDS = {
    "if": [
        {"starts_with": [{"var": "id"}, "abc"]},
        "prefix",
        {"if": [{"ends_with": [{"var": "id"}, "xyz"]}, "postfix", "none"]},
    ]
}


@pytest.mark.parametrize(
    ("value", "expected"),
    [("abcdef", "prefix"), ("uvwxyz", "postfix"), ("abcxyz", "prefix"), ("lmnopq", "none")],
)
def test_substring_operators(value: str, expected: str) -> None:
    assert compile_for(STARTS_ENDS)({"id": value}) == expected


@pytest.mark.parametrize("op", ["starts_with", "ends_with"])
@pytest.mark.parametrize(
    "args",
    [
        [{"var": "num"}, "abc"],
        ["abc"],
        [],
        ["abc", "a", "b"],
        ["abc", 1],
        ["abc", None],
        ["abc", ["a"]],
        [None, "a"],
        [["abc"], "a"],
        ["abc", {"var": "num"}],
    ],
)
def test_bad_input_is_null_not_false(op: str, args: list[Any]) -> None:
    assert compile_for({op: args})({"num": 123}) is None


def test_single_argument_shorthand_is_null() -> None:
    assert compile_for({"starts_with": "abc"})({}) is None


@pytest.mark.parametrize(
    ("op", "text", "affix", "expected"),
    [
        ("starts_with", "abc", "", True),
        ("ends_with", "abc", "", True),
        ("starts_with", "", "a", False),
        ("starts_with", "Abc", "a", False),
        ("ends_with", "café", "é", True),
    ],
)
def test_edge_cases(op: str, text: str, affix: str, expected: bool) -> None:
    assert compile_for({op: [text, affix]})({}) is expected


@given(st.text(), st.text())
def test_dynamic_affix_agrees_with_constant_affix(text: str, affix: str) -> None:
    for op, method in (("starts_with", str.startswith), ("ends_with", str.endswith)):
        constant = compile_for({op: [{"var": "t"}, affix]})({"t": text})
        dynamic = compile_for({op: [{"var": "t"}, {"var": "a"}]})({"t": text, "a": affix})
        assert constant is dynamic is method(text, affix)


data_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=2), inner),
    max_leaves=8,
)


@given(st.dictionaries(st.sampled_from(["t", "u"]), data_values) | data_values, st.text())
def test_a_plain_var_read_inline_agrees_with_a_computed_path(data: Any, affix: str) -> None:
    # {"var": "t"} is read with data.get inline; a computed path goes through the var operator.
    for op in ("starts_with", "ends_with"):
        inline = compile_for({op: [{"var": "t"}, affix]})(data)
        general = compile_for({op: [{"var": [{"cat": ["t"]}]}, affix]})(data)
        assert inline is general
