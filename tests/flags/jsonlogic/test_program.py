"""Programs (``stageless.flags.jsonlogic.program``): several rules in one function, their
common sub-rules computed once, against each rule's own generated function.

The rules and contexts are drawn from the strategies of test_codegen.py.
"""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from stageless.flags.jsonlogic import Limits, Options, compile_generated, compile_rule
from stageless.flags.jsonlogic.codegen import HELPERS
from stageless.flags.jsonlogic.program import compile_program, fast_program, generate_program
from stageless.flags.sharing import sharing_key

from .test_codegen import (
    KEYS,
    _op,
    assert_only_our_names,
    deep_rules,
    identical,
    json_values,
    options,
    outcome,
    rules,
)

FAILED = object()


def _key_of(rule: Any) -> str | None:
    return sharing_key(rule)


@st.composite
def programs(draw: st.DrawFn) -> list[Any]:
    """2-6 rules made of a few common parts (so that sub-rules repeat across the rules)."""
    parts = draw(st.lists(rules, min_size=1, max_size=3))
    part = st.sampled_from(parts)
    combined = st.builds(
        _op, st.sampled_from(["and", "or", "if", "!", "==", "<", "in"]), st.lists(part | rules)
    )
    return draw(st.lists(part | combined | rules, min_size=2, max_size=6))


@settings(max_examples=700, deadline=None)
@given(
    rule_list=programs(),
    data=st.lists(st.dictionaries(st.sampled_from(KEYS), json_values, max_size=5), max_size=3),
    opts=options,
)
def test_a_program_gives_what_each_rule_gives(
    rule_list: list[Any], data: list[dict[str, Any]], opts: Options
) -> None:
    """Each rule's own generated function is the oracle; flags have different keys, so the
    sub-rules that read ``$flagd.flagKey`` must not be shared, and a rule that raises gives
    ``FAILED`` while the others still run."""
    items: list[tuple[Any, Options] | None] = []
    alone: list[Callable[[Any], Any] | None] = []
    for index, rule in enumerate(rule_list):
        flag_opts = dataclasses.replace(opts, flag_key=f"flag-{index}")
        if outcome(lambda r, o=flag_opts: compile_rule(r, o), rule)[0] == "raised":
            items.append(None)
            alone.append(None)
            continue
        items.append((rule, flag_opts))
        alone.append(compile_generated(rule, flag_opts))
    items.append(None)  # a slot without a rule
    alone.append(None)
    program = compile_program(items, _key_of, FAILED)
    assert_only_our_names(*generate_program(items, _key_of))
    for item in [{}, *data]:
        results = program(item)
        assert len(results) == len(items)
        for rule_function, result in zip(alone, results, strict=True):
            if rule_function is None:
                assert result is FAILED
                continue
            expected = outcome(rule_function, item)
            if expected[0] == "raised":
                assert result is FAILED, (rule_list, item, expected)
            else:
                assert identical(result, expected[1]), (rule_list, item, result, expected)


def counting_scope(code: Any, namespace: dict[str, Any], calls: list[Any]) -> dict[str, Any]:
    """``code`` run over ``namespace`` with every closure replaced by one that appends its
    argument to ``calls`` and returns True (it stands for an expensive operator)."""

    def counted(data: Any) -> bool:
        calls.append(data)
        return True

    values = {name: counted if callable(value) else value for name, value in namespace.items()}
    scope: dict[str, Any] = {"__builtins__": {}, **HELPERS, **values}
    scope.update(_U=object(), _failed=FAILED, _Exception=Exception)
    exec(code, scope)  # noqa: S102  # generated source
    return scope


def test_a_sub_rule_common_to_several_rules_is_computed_once_per_call() -> None:
    common = {"sem_ver": [{"var": "v"}, ">=", "1.0.0"]}
    rules_ = [{"and": [common, {">=": [{"var": "age"}, n]}]} for n in (18, 21, 30)]
    items: list[tuple[Any, Options] | None] = [(rule, Options(flag_key="f")) for rule in rules_]
    source, namespace = generate_program(items, _key_of)
    assert "_s0" in source and "_s1" not in source  # one slot: the sem_ver test
    # Replace the sem_ver closure by the counter: the same code, one call per program call.
    closures = [name for name, value in namespace.items() if callable(value)]
    assert len(closures) == 3  # one per occurrence; the slot makes only the first one run
    program = compile_program(items, _key_of, FAILED)
    assert program({"v": "1.2.0", "age": 25}) == (True, True, False)
    assert program({"v": "0.9.0", "age": 25}) == (False, False, False)

    calls: list[Any] = []
    counting = counting_scope(compile(source, "<test program>", "exec"), namespace, calls)
    assert counting["_program"]({"v": "x", "age": 40}) == (True, True, True)
    assert len(calls) == 1


def test_a_sub_rule_that_reads_the_flag_key_is_not_shared() -> None:
    by_key = {"fractional": [["on", 50], ["off", 50]]}  # buckets on flagKey + targetingKey
    keys = [f"flag-{n}" for n in range(12)]
    items: list[tuple[Any, Options] | None] = [(by_key, Options(flag_key=key)) for key in keys]
    source, _ = generate_program(items, _key_of)
    assert "_s0" not in source
    program = compile_program(items, _key_of, FAILED)
    for user in ("u1", "u2", "u3"):
        data = {"targetingKey": user}
        expected = [compile_generated(by_key, Options(flag_key=key))(data) for key in keys]
        assert list(program(data)) == expected
    assert len({tuple(program({"targetingKey": f"u{n}"})) for n in range(30)}) > 1


def test_a_program_of_no_rules_or_only_empty_slots_compiles() -> None:
    assert compile_program([], _key_of, FAILED)({}) == ()
    assert compile_program([None], _key_of, FAILED)({"a": 1}) == (FAILED,)


def test_deep_rules_in_one_program_agree() -> None:
    # The same deep rules, twice each, in one program: every level is a common sub-rule.
    deep, wide, chain = deep_rules()
    items: list[tuple[Any, Options] | None] = [
        (rule, Options(flag_key=f"f{n}"))
        for n, rule in enumerate([deep, wide, chain, deep, wide, chain])
    ]
    program = compile_program(items, _key_of, FAILED)
    for data in ({"a": 1}, {"a": 0}, {"a": 40}, {"a": 150}, {}):
        expected = [compile_rule(rule)(data) for rule in (deep, wide, chain)]
        assert program(data) == (*expected, *expected)


COUNTRY = {"in": [{"var": "country"}, ["NL", "DE"]]}


def test_a_slot_certainly_computed_by_an_earlier_rule_is_read_without_a_test() -> None:
    # Each rule starts with the country test: once the first rule has run, the slot is set.
    items: list[tuple[Any, Options] | None] = [
        ({"if": [{"and": [COUNTRY, {">=": [{"var": "age"}, n]}]}, "on", "off"]}, Options())
        for n in range(18, 38)
    ]
    source, _ = generate_program(items, _key_of)
    tree = ast.parse(source)
    fast = ast.unparse(fast_program(tree.body[0]))
    assert source.count("_s0 if _s0 is not _U") == 20
    assert fast.count("_s0 if _s0 is not _U") == 1  # the first rule's; the others read _s0
    program = compile_program(items, _key_of, FAILED)
    assert program({"country": "NL", "age": 20}) == ("on",) * 3 + ("off",) * 17
    assert program({"country": "FR", "age": 40}) == ("off",) * 20


def test_a_slot_that_an_earlier_rule_may_skip_is_still_tested() -> None:
    # The first rule reaches the country test only when a == 1; the second must compute it
    # itself when the first did not.
    items: list[tuple[Any, Options] | None] = [
        ({"and": [{"==": [{"var": "a"}, 1]}, COUNTRY]}, Options()),
        ({"if": [COUNTRY, "yes", "no"]}, Options()),
        (COUNTRY, Options()),
    ]
    program = compile_program(items, _key_of, FAILED)
    assert program({"a": 2, "country": "FR"}) == (False, "no", False)
    assert program({"a": 2, "country": "NL"}) == (False, "yes", True)
    assert program({"a": 1, "country": "NL"}) == (True, "yes", True)


SUFFIX = {"ends_with": [{"var": "email"}, "@example.com"]}


def test_a_cheap_shared_test_is_computed_before_the_rules() -> None:
    # The suffix test comes after each rule's own threshold, so no rule certainly reaches it:
    # _fast computes it once at the start instead of testing its slot in every rule.
    items: list[tuple[Any, Options] | None] = [
        ({"if": [{"and": [{">=": [{"var": "age"}, n]}, SUFFIX]}, "on", "off"]}, Options())
        for n in range(18, 38)
    ]
    source, _ = generate_program(items, _key_of)
    fast = ast.unparse(fast_program(ast.parse(source).body[0]))
    assert source.count("_s0 if _s0 is not _U") == 20
    assert "_s0 is not _U" not in fast
    assert fast.index("_s0 = _t0.endswith") < fast.index("_r0 =")
    program = compile_program(items, _key_of, FAILED)
    assert program({"age": 20, "email": "a@example.com"}) == ("on",) * 3 + ("off",) * 17
    assert program({"age": 20, "email": "a@elsewhere.org"}) == ("off",) * 20
    assert program({"age": 10, "email": 7}) == ("off",) * 20


def test_a_shared_test_that_calls_a_closure_is_computed_only_where_reached() -> None:
    common = {"sem_ver": [{"var": "v"}, ">=", "1.0.0"]}
    rules_ = [{"and": [{"==": [{"var": "a"}, 1]}, common]} for _ in range(3)]
    items: list[tuple[Any, Options] | None] = [(rule, Options(flag_key="f")) for rule in rules_]
    source, namespace = generate_program(items, _key_of)
    tree = ast.parse(source)
    tree.body.append(fast_program(tree.body[0]))
    calls: list[Any] = []
    fast = counting_scope(compile(tree, "<test program>", "exec"), namespace, calls)["_fast"]

    assert fast({"a": 2, "v": "1.2.0"}) == (False, False, False)
    assert calls == []  # no rule reached it, so it never ran
    assert fast({"a": 1, "v": "1.2.0"}) == (True, True, True)
    assert len(calls) == 1


def test_a_rule_that_raises_makes_the_program_run_each_rule_on_its_own() -> None:
    # The slot is set by the first rule; the second raises when the merged array is over the
    # limit: the program falls back to the one that isolates each rule, with the same results.
    limited = Options(limits=Limits(max_array_length=3))
    merged = {"in": [1, {"merge": [{"var": "xs"}, [1]]}]}
    rules_ = [COUNTRY, {"and": [COUNTRY, merged]}, {"!": [COUNTRY]}]
    items: list[tuple[Any, Options] | None] = [(rule, limited) for rule in rules_]
    program = compile_program(items, _key_of, FAILED)
    assert program({"country": "NL", "xs": [2]}) == (True, True, False)
    assert program({"country": "NL", "xs": [2, 3, 4]}) == (True, FAILED, False)  # 4 items
    assert program({"country": "FR", "xs": [2, 3, 4]}) == (False, False, True)  # not reached


def test_an_array_is_computed_again_by_each_rule_that_needs_it() -> None:
    # Arrays are not kept in a slot (JavaScript compares them by identity), so the second
    # rule must not take the first rule's evaluation of the merge as having set the slot.
    merged = {"merge": [{"var": "xs"}, [2]]}
    items: list[tuple[Any, Options] | None] = [
        ({"in": [1, merged]}, Options()),
        ({"in": [2, merged]}, Options()),
        ({"in": [3, merged]}, Options()),
    ]
    program = compile_program(items, _key_of, FAILED)
    assert program({"xs": [1]}) == (True, True, False)
    assert program({"xs": [3]}) == (False, True, True)
