"""Table-driven cases for every standard operator, with json-logic-js's answers.

The table (cases.json) holds ``[rule, data, expected]`` rows per operator group. The expected
values are what json-logic-js computes, except where JavaScript would give NaN or Infinity,
which JSON cannot carry: those are ``null`` here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from stageless.flags.jsonlogic import apply, compile_generated, compile_rule

from .conftest import flagd_options, same

TABLE = json.loads((Path(__file__).parent / "cases.json").read_text(encoding="utf-8"))
ROWS = [
    pytest.param(rule, data, expected, id=f"{group}-{i}:{json.dumps(rule)[:60]}")
    for group, rows in TABLE.items()
    for i, (rule, data, expected) in enumerate(rows)
]


@pytest.mark.parametrize(("rule", "data", "expected"), ROWS)
def test_rule_gives_json_logic_js_answer(rule: Any, data: Any, expected: Any) -> None:
    actual = apply(rule, data, flagd_options())
    assert same(actual, expected), f"{rule} on {data}: got {actual!r}, expected {expected!r}"


@pytest.mark.parametrize(("rule", "data", "expected"), ROWS)
def test_compiled_rule_gives_the_same_answer_every_time(
    rule: Any, data: Any, expected: Any
) -> None:
    evaluate = compile_rule(rule, flagd_options())
    first = evaluate(data)
    second = evaluate(data)
    assert same(first, expected)
    assert same(second, expected)


@pytest.mark.parametrize(("rule", "data", "expected"), ROWS)
def test_generated_rule_gives_the_same_answer(rule: Any, data: Any, expected: Any) -> None:
    evaluate = compile_generated(rule, flagd_options())
    assert same(evaluate(data), expected)
    if type(data) is not dict:  # the generated function reads dicts; try the rule on one too
        wrapped = compile_generated({"if": [True, rule]}, flagd_options())
        assert same(wrapped({"data": data}), compile_rule(rule, flagd_options())({"data": data}))


def test_every_standard_operator_has_cases() -> None:
    from stageless.flags.jsonlogic import STANDARD_OPERATORS

    used: set[str] = set()
    stack: list[Any] = [row[0] for rows in TABLE.values() for row in rows]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            used.update(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    assert set(STANDARD_OPERATORS) <= used, set(STANDARD_OPERATORS) - used
