"""Flags with the same rule share one evaluator, unless the rule can tell flags apart.

The oracle for sharing is the flag compiled on its own (a document with only that flag): a
rule wrongly shared would carry another flag's key into ``$flagd.flagKey`` or the fractional
shorthand, and resolve differently from the flag alone.
"""

from __future__ import annotations

import datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from stageless.clock import FakeClock
from stageless.errors import ValidationError
from stageless.flags import NO_RESULT, FlagSet, parse_flag_set
from stageless.flags.evaluate import plan_flag
from stageless.flags.jsonlogic import PROGRAM_RULES
from stageless.flags.sharing import sharing_key
from tests.flags.jsonlogic.test_codegen import identical
from tests.flags.test_evaluate import OPERATORS, contexts, scalars

CONDITION = {"in": [{"var": "country"}, ["NL", "DE"]]}
BY_EMAIL = {"if": [CONDITION, {"fractional": [{"var": "email"}, ["on", 50], ["off", 50]]}, "off"]}


def test_a_rule_that_cannot_tell_flags_apart_has_a_sharing_key() -> None:
    assert sharing_key(BY_EMAIL) is not None
    assert sharing_key({"<": [{"var": "$flagd.timestamp"}, 2_000_000_000]}) is not None
    assert sharing_key(BY_EMAIL) == sharing_key({**BY_EMAIL})
    assert sharing_key({"==": [1, {"var": "n"}]}) != sharing_key({"==": [1.0, {"var": "n"}]})
    assert sharing_key({"==": [True, {"var": "n"}]}) != sharing_key({"==": [1, {"var": "n"}]})


def test_a_rule_that_may_read_the_flag_key_has_none() -> None:
    shorthand = {"fractional": [["on", 50], ["off", 50]]}
    flag_key = {"==": [{"var": "$flagd.flagKey"}, "x"]}
    whole_flagd = {"var": "$flagd"}
    unit = {"fractional": [{"cat": [{"var": "$flagd.flagKey"}, {"var": "email"}]}, ["a", 1]]}
    computed_var = {"var": {"cat": ["$fla", "gd.flagKey"]}}
    computed_missing = {"missing": [{"cat": ["$fla", "gd.flagKey"]}]}
    computed_some = {"missing_some": [1, [{"var": "which"}]]}

    for rule in (shorthand, flag_key, whole_flagd, unit, computed_var, computed_missing):
        assert sharing_key(rule) is None, rule
        assert sharing_key({"if": [True, rule, None]}) is None, rule
    assert sharing_key(computed_some) is None
    assert sharing_key({"if": [CONDITION, "a", {"date": datetime.date(2026, 1, 1)}]}) is None


def document(rules: dict[str, Any]) -> dict[str, Any]:
    return {
        "flags": {
            key: {
                "state": "ENABLED",
                "variants": {"on": "on", "off": "off", "a": "a"},
                "defaultVariant": "off",
                "targeting": rule,
            }
            for key, rule in rules.items()
        }
    }


def test_flags_with_the_same_independent_rule_get_one_evaluator() -> None:
    shorthand = {"fractional": [["on", 50], ["off", 50]]}
    flags = parse_flag_set(
        document({"f1": BY_EMAIL, "f2": BY_EMAIL, "s1": shorthand, "s2": shorthand})
    )

    assert flags.rule_of("f1") is flags.rule_of("f2")
    assert flags.rule_of("s1") is not flags.rule_of("s2")
    assert flags.rule_of("nope") is None


def test_the_shorthand_still_buckets_each_flag_on_its_own_key() -> None:
    shorthand = {"fractional": [["on", 50], ["off", 50]]}
    keys = [f"flag-{i}" for i in range(8)]
    flags = parse_flag_set(document(dict.fromkeys(keys, shorthand)))
    users = [{"targetingKey": f"user-{n}"} for n in range(40)]

    columns = {key: [flags.evaluate(key, user).variant for user in users] for key in keys}

    assert len({tuple(column) for column in columns.values()}) > 1  # flags split differently
    for key in keys:
        alone = parse_flag_set(document({key: shorthand}))
        assert columns[key] == [alone.evaluate(key, user).variant for user in users]


leaves = (
    scalars
    | st.sampled_from(
        ["on", "off", "a", "email", "targetingKey", "$flagd.flagKey", "$flagd", "$flagd.timestamp"]
    )
    | st.sampled_from(
        [
            {"var": "$flagd.flagKey"},
            {"var": "$flagd.timestamp"},
            {"fractional": [["on", 1], ["off", 1], ["a", 1]]},
            {"fractional": [{"var": "targetingKey"}, ["on", 1], ["off", 1]]},
            {"cat": [{"var": "$flagd.flagKey"}, {"var": "targetingKey"}]},
        ]
    )
)
rules = st.recursive(
    leaves,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.builds(
            lambda op, args: {op: args}, st.sampled_from(OPERATORS), st.lists(inner, max_size=4)
        )
    ),
    max_leaves=15,
)


@given(rule=rules, copies=st.integers(2, 4), context=contexts)
def test_every_flag_resolves_as_it_does_alone(
    rule: Any, copies: int, context: dict[str, Any]
) -> None:
    keys = [f"k{i}" for i in range(copies)]
    clock = FakeClock(1_900_000_000)
    try:
        flags = parse_flag_set(document(dict.fromkeys(keys, rule)), clock=clock)
    except ValidationError:
        return

    many = flags.evaluate_many(keys, context)
    results = flags.targeting_results(keys, context)
    for key, resolution in zip(keys, many, strict=True):
        alone = parse_flag_set(document({key: rule}), clock=clock).evaluate(key, context)
        assert flags.evaluate(key, context) == alone
        assert resolution == alone
        assert_result_agrees(flags, key, results, keys.index(key), alone)


def assert_result_agrees(
    flags: FlagSet, key: str, results: list[Any] | None, index: int, expected: Any
) -> None:
    """``resolution_for`` of the raw result is the resolution, wherever it gives one."""
    assert results is not None  # generated contexts are always admitted
    result = results[index]
    if result is NO_RESULT:
        assert expected.error_code is not None or flags.rule_of(key) is None
        return
    found = flags.resolution_for(key, result)
    if found is not None:
        assert found == expected


def test_targeting_results_refuses_a_context_the_engine_refuses() -> None:
    flags = parse_flag_set(document({"f1": BY_EMAIL}))

    assert flags.targeting_results(["f1"], ["not", "a", "mapping"]) is None  # type: ignore[arg-type]
    results = flags.targeting_results(["f1", "nope"], {"country": "US"})
    assert results is not None
    assert results[0] == "off"
    assert results[1] is NO_RESULT


@given(
    parts=st.lists(rules, min_size=1, max_size=3),
    picks=st.lists(st.tuples(st.integers(0, 2), rules), min_size=2, max_size=6),
    context=contexts,
)
def test_a_targeting_program_gives_what_targeting_results_give(
    parts: list[Any], picks: list[tuple[int, Any]], context: dict[str, Any]
) -> None:
    """Flags whose rules have parts in common, with the flag key and the shorthand among the
    leaves: the program shares only what cannot tell flags apart."""
    document_rules = {
        f"k{i}": {"if": [parts[pick % len(parts)], own, parts[0]]}
        for i, (pick, own) in enumerate(picks)
    }
    try:
        flags = parse_flag_set(document(document_rules), clock=FakeClock(1_900_000_000))
    except ValidationError:
        return
    keys = [*document_rules, "absent"]

    expected = flags.targeting_results(keys, context)
    results = flags.targeting_program(keys)(context)

    assert results is not None and expected is not None
    assert len(results) == len(expected)
    for got, want in zip(results, expected, strict=True):
        assert got is want if want is NO_RESULT else identical(got, want)


def test_a_targeting_program_refuses_what_the_engine_refuses_and_runs_long_lists() -> None:
    keys = [f"f{i}" for i in range(PROGRAM_RULES * 2 + 3)]
    rules_ = {key: {"if": [CONDITION, {">=": [{"var": "age"}, i]}, "off"]} for i, key in
              enumerate(keys)}  # fmt: skip
    flags = parse_flag_set(document({**rules_, "g": BY_EMAIL}))
    program = flags.targeting_program([*keys, "g"])

    assert program(["not", "a", "mapping"]) is None  # type: ignore[arg-type]
    assert program({str(n): n for n in range(1_001)}) is None  # over the key limit
    context = {"country": "NL", "age": 40, "email": "a@b.c"}
    results = program(context)
    assert results is not None
    assert list(results) == flags.targeting_results([*keys, "g"], context)
    assert list(results[:3]) == [True, True, True] and results[-1] in ("on", "off")


def test_a_flag_set_built_without_compile_options_runs_each_evaluator() -> None:
    flags = parse_flag_set(document({"f1": BY_EMAIL}))
    flag = flags.flag("f1")
    calls: list[object] = []

    def rule(data: object) -> str:
        calls.append(data)
        return "a"

    by_hand = FlagSet([plan_flag(flag, rule)])
    context = {"country": "NL"}

    assert by_hand.targeting_program(["f1", "nope"])(context) == ["a", NO_RESULT]
    assert calls == [context]


def test_a_targeting_program_of_no_flags_gives_no_results() -> None:
    flags = parse_flag_set(document({}))

    results = flags.targeting_program([])({"country": "NL"})
    assert results is not None and list(results) == []
    assert flags.targeting_program([])(["not", "a", "mapping"]) is None  # type: ignore[arg-type]
