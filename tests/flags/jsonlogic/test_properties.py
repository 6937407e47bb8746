"""Property tests: arithmetic against a slow float reference, truthiness, and robustness of
every operator on random JSON data (nothing but LimitError may escape, results stay JSON)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stageless.flags.jsonlogic import (
    STANDARD_OPERATORS,
    LimitError,
    apply,
    compile_rule,
    contains_logic,
    js,
)

SAFE = 2**53
numbers = st.one_of(
    st.integers(min_value=-SAFE, max_value=SAFE),
    st.floats(allow_nan=False, allow_infinity=False),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, st.integers(), st.text(max_size=8))
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=12,
)


def reference(op: str, a: float, b: float) -> float | None:
    """What JavaScript computes, with plain Python floats (doubles)."""
    x, y = float(a), float(b)
    if op == "/":
        result = x / y if y != 0 else math.nan
    elif op == "%":
        result = math.fmod(x, y) if y != 0 else math.nan
    else:
        result = {"+": x + y, "-": x - y, "*": x * y, "min": min(x, y), "max": max(x, y)}[op]
    return result if math.isfinite(result) else None


@pytest.mark.parametrize("op", ["+", "-", "*", "/", "%", "min", "max"])
@given(a=numbers, b=numbers)
def test_arithmetic_matches_double_arithmetic(op: str, a: float, b: float) -> None:
    expected = reference(op, a, b)
    for rule, data in (
        ({op: [a, b]}, None),
        ({op: [{"var": "a"}, {"var": "b"}]}, {"a": a, "b": b}),
        ({op: [{"var": "a"}, {"var": "b"}]}, {"a": js.number_to_string(a), "b": b}),
    ):
        actual = compile_rule(rule)(data)
        if expected is None:
            assert actual is None, (rule, data, actual)
        else:
            assert actual == expected, (rule, data, actual, expected)


@given(a=numbers, b=numbers)
def test_comparisons_of_numbers_are_python_comparisons(a: float, b: float) -> None:
    data = {"a": a, "b": b}
    assert compile_rule({"<": [{"var": "a"}, {"var": "b"}]})(data) is (a < b)
    assert compile_rule({"<=": [{"var": "a"}, b]})(data) is (float(a) <= float(b))
    assert compile_rule({">": [a, {"var": "b"}]})(data) is (float(a) > float(b))
    assert compile_rule({"==": [{"var": "a"}, {"var": "b"}]})(data) is (float(a) == float(b))


@given(value=json_values)
def test_double_negation_is_truthiness(value: Any) -> None:
    evaluate = compile_rule({"!!": [{"var": "v"}]})
    assert evaluate({"v": value}) is js.truthy(value)
    assert compile_rule({"!": [{"var": "v"}]})({"v": value}) is not js.truthy(value)


@given(values=st.lists(json_values, max_size=5))
def test_and_or_return_one_of_their_arguments(values: list[Any]) -> None:
    data = {str(i): value for i, value in enumerate(values)}
    args = [{"var": str(i)} for i in range(len(values))]
    for op in ("and", "or"):
        result = compile_rule({op: args})(data)
        if values:
            assert any(result is value for value in values)
        else:
            assert result is None
    if values:
        first_falsy = next((v for v in values if not js.truthy(v)), values[-1])
        assert compile_rule({"and": args})(data) is first_falsy


@given(a=json_values, b=json_values)
def test_equality_is_symmetric_and_strict_implies_loose(a: Any, b: Any) -> None:
    try:
        loose = js.loose_equals(a, b)
        assert loose is js.loose_equals(b, a)
    except LimitError:
        return
    if js.strict_equals(a, b):
        assert loose


@given(number=numbers)
def test_numbers_print_in_a_form_that_reads_back(number: float) -> None:
    text = js.number_to_string(number)
    assert float(text) == float(number)
    assert js.to_number(text) == float(number)


def _rules(op: str) -> list[Any]:
    a, b, c = {"var": "a"}, {"var": "b"}, {"var": "c"}
    return [{op: []}, {op: [a]}, {op: [a, b]}, {op: [a, b, c]}, {op: [a, {"var": ""}, c]}]


COMPILED = {
    op: [compile_rule(rule) for rule in _rules(op)]
    for op in sorted(STANDARD_OPERATORS)
    if op != "*"
}
COMPILED["*"] = [compile_rule(rule) for rule in _rules("*")[1:]]


@settings(max_examples=300)
@given(
    data=st.one_of(
        json_values,
        st.fixed_dictionaries({"a": json_values, "b": json_values, "c": json_values}),
    )
)
def test_every_operator_survives_random_data(data: Any) -> None:
    for evaluators in COMPILED.values():
        for evaluate in evaluators:
            try:
                result = evaluate(data)
            except LimitError:
                continue
            json.dumps(result, allow_nan=False)  # no NaN or Infinity leaks into results


@given(a=json_values, b=json_values)
def test_every_operator_survives_random_literal_arguments(a: Any, b: Any) -> None:
    if contains_logic([a, b]):
        return
    for op in STANDARD_OPERATORS:
        try:
            result = apply({op: [a, b]}, {"a": a})
        except LimitError:
            continue
        json.dumps(result, allow_nan=False)
