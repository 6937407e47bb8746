"""Deep or huge rules and data stop at explicit limits, never at a RecursionError or a hang."""

from __future__ import annotations

from typing import Any

import pytest

from stageless.flags.jsonlogic import LimitError, Limits, Options, RuleError, apply, compile_rule

DEEP = 10_000


def nested_rule(depth: int) -> Any:
    rule: Any = {"var": "a"}
    for _ in range(depth):
        rule = {"!": [rule]}
    return rule


def nested_array(depth: int, bottom: Any = "x") -> Any:
    value = bottom
    for _ in range(depth):
        value = [value]
    return value


def test_a_rule_nested_ten_thousand_deep_is_refused_when_compiled() -> None:
    with pytest.raises(RuleError, match="nested deeper than 64 levels"):
        compile_rule(nested_rule(DEEP))


def test_logic_buried_in_deep_literal_arrays_is_refused_too() -> None:
    with pytest.raises(RuleError, match="nested deeper"):
        compile_rule({"cat": nested_array(DEEP, {"var": "a"})})


def test_the_depth_limit_is_configurable() -> None:
    options = Options(limits=Limits(max_rule_depth=10))
    assert compile_rule(nested_rule(8), options)({"a": 1}) is True
    with pytest.raises(RuleError):
        compile_rule(nested_rule(10), options)


def test_a_rule_with_too_many_nodes_is_refused() -> None:
    rule = {"and": [{"var": "a"}] * 20_000}
    with pytest.raises(RuleError, match="more than 10000 nodes"):
        compile_rule(rule)


def test_a_huge_literal_array_is_refused_and_a_large_one_accepted() -> None:
    with pytest.raises(RuleError, match="literal array has more than 100000 items"):
        compile_rule({"in": [{"var": "id"}, list(range(100_001))]})
    allowed = compile_rule({"in": [{"var": "id"}, [str(i) for i in range(50_000)]]})
    assert allowed({"id": "49999"}) is True
    assert allowed({"id": "50000"}) is False


def test_a_deep_literal_array_without_logic_compiles_but_hits_the_data_limit() -> None:
    evaluate = compile_rule({"cat": [nested_array(DEEP)]})
    with pytest.raises(LimitError):
        evaluate(None)


@pytest.mark.parametrize(
    "rule",
    [
        {"cat": [{"var": "deep"}]},
        {"==": [{"var": "deep"}, "x"]},
        {"==": ["x", {"var": "deep"}]},
        {"<": [{"var": "deep"}, 1]},
        {"<": [{"var": "deep"}, {"var": "other"}]},
        {"in": [{"var": "deep"}, "abc"]},
        {"in": [{"var": "deep"}, {"var": "other"}]},
        {"substr": [{"var": "deep"}, 1]},
        {"+": [{"var": "deep"}, 1]},
        {"-": [{"var": "deep"}, 1]},
        {"max": [{"var": "deep"}, 1]},
        {"var": {"var": "deep"}},
    ],
)
def test_a_context_nested_ten_thousand_deep_is_a_limit_error(rule: Any) -> None:
    data = {"deep": nested_array(DEEP), "other": "s"}
    with pytest.raises(LimitError):
        apply(rule, data)


def test_deep_context_is_fine_where_nothing_walks_it() -> None:
    data = {"deep": nested_array(DEEP)}
    assert apply({"!!": [{"var": "deep"}]}, data) is True
    assert apply({"===": [{"var": "deep"}, {"var": "deep"}]}, data) is True
    assert apply({"merge": [{"var": "deep"}, 1]}, data)[1] == 1
    deep_path = ".".join(["0"] * DEEP)
    assert apply({"var": f"deep.{deep_path}"}, data) == "x"


@pytest.mark.parametrize(
    "rule",
    [
        {"map": [{"var": "big"}, {"var": ""}]},
        {"filter": [{"var": "big"}, True]},
        {"reduce": [{"var": "big"}, {"var": "current"}, 0]},
        {"all": [{"var": "big"}, True]},
        {"some": [{"var": "big"}, False]},
        {"none": [{"var": "big"}, False]},
        {"merge": [{"var": "big"}]},
        {"in": [1, {"var": "big"}]},
        {"cat": [{"var": "big"}]},
        {"missing": {"var": "big"}},
    ],
)
def test_arrays_longer_than_the_limit_are_a_limit_error(rule: Any) -> None:
    options = Options(limits=Limits(max_array_length=1_000))
    evaluate = compile_rule(rule, options)
    evaluate({"big": list(range(1_000))})  # at the limit: fine
    with pytest.raises(LimitError):
        evaluate({"big": list(range(1_001))})


def test_merge_checks_the_merged_length() -> None:
    options = Options(limits=Limits(max_array_length=10))
    with pytest.raises(LimitError, match="merged array"):
        apply({"merge": [{"var": "a"}, {"var": "a"}]}, {"a": list(range(6))}, options)


@pytest.mark.parametrize(
    ("rule", "path", "message"),
    [
        ({"bogus": [1]}, "", "unknown operator 'bogus'"),
        ({"and": [{"==": [1, 1]}, {"bogus": []}]}, "and[1]", "unknown operator 'bogus'"),
        ({"if": [{"var": "a"}, {"*": []}, 1]}, "if[1].*", "needs at least one argument"),
        ([1, {"nope": 1}], "[1]", "unknown operator 'nope'"),
    ],
)
def test_malformed_rules_name_the_json_path(rule: Any, path: str, message: str) -> None:
    with pytest.raises(RuleError) as caught:
        apply(rule, {})
    assert caught.value.path == path
    assert message in str(caught.value)
    assert str(caught.value).startswith(f"{path}: " if path else message)


def test_unknown_operators_in_untaken_branches_are_still_reported() -> None:
    with pytest.raises(RuleError, match="unknown operator"):
        compile_rule({"if": [True, 1, {"bogus": []}]})
