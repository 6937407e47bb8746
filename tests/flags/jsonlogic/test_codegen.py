"""Generated rule functions against the closures they replace: the same answer, the same error.

The differential property draws rules from the shapes ``codegen`` writes as code (with
operators it leaves to closures mixed in) and contexts with every kind of JSON value, and
compares :func:`compile_generated` with :func:`compile_rule` on each.
"""

from __future__ import annotations

import io
import keyword
import math
import re
import tokenize
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stageless.clock import FakeClock
from stageless.flags.jsonlogic import Limits, Options, compile_generated, compile_rule
from stageless.flags.jsonlogic.codegen import HELPERS, MAX_NESTING, generate

from .conftest import NOW, flagd_options

KEYS = ["a", "b", "email", "age", "targetingKey", "1", "length"]
PATHS = [*KEYS, "a.b", "a.0", "b.length", "a.b.c", "", "$flagd.flagKey", "$flagd.timestamp"]

texts = st.one_of(
    st.sampled_from(["", "a", "ab", "1", "2.5", " 1 ", "0x1", "@x", "é", "\U0001f600"]),
    st.text(alphabet="ab1 .@-0xé\U0001f600", max_size=6),
)
numbers = st.one_of(
    st.sampled_from([0, 1, 2, -1, 18, 0.5, 1.0, 2.5]),
    st.integers(-3, 3),
    st.integers(min_value=-(2**60), max_value=2**60),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1.5, 2**53, 2**53 + 1, 1e21]),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, texts)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(KEYS), inner, max_size=3)
    ),
    max_leaves=8,
)
constant_lists = st.lists(scalars, max_size=4)
literal_objects: st.SearchStrategy[dict[str, Any]] = st.one_of(
    st.just({}), st.just({"x": 1, "y": [2]})
)  # not operations


def _op(name: str, args: Any) -> dict[str, Any]:
    return {name: args}


def _rules(kids: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    some = st.lists(kids, max_size=5)
    var_path = st.one_of(st.sampled_from(PATHS), st.integers(0, 2), st.none(), kids)
    return st.one_of(
        st.builds(lambda path: {"var": path}, st.sampled_from(PATHS)),
        st.builds(
            lambda p, d: {"var": [p, d]},
            var_path,
            st.one_of(scalars, constant_lists, literal_objects, kids),
        ),
        st.builds(_op, st.sampled_from(["if", "?:", "and", "or"]), some),
        st.builds(_op, st.sampled_from(["!", "!!"]), st.one_of(kids, st.lists(kids, max_size=2))),
        st.builds(
            _op,
            st.sampled_from(["==", "===", "!=", "!==", "<", "<=", ">", ">="]),
            st.lists(st.one_of(kids, numbers, texts), max_size=3),
        ),
        st.builds(
            lambda needle, haystack: {"in": [needle, haystack]},
            kids,
            st.one_of(constant_lists, texts, kids, literal_objects),
        ),
        st.builds(
            _op,
            st.sampled_from(["starts_with", "ends_with"]),
            st.one_of(
                st.tuples(kids, st.one_of(texts, scalars, kids)).map(list),
                st.lists(kids, max_size=3),
            ),
        ),
        st.builds(
            lambda unit, buckets: {"fractional": [unit, *buckets]},
            st.one_of(
                st.builds(lambda k: {"var": k}, st.sampled_from(KEYS)),
                st.just({"cat": [{"var": "$flagd.flagKey"}, {"var": "email"}]}),
                kids,
            ),
            st.lists(
                st.tuples(st.one_of(texts, st.booleans()), st.integers(0, 5)).map(list),
                min_size=1,
                max_size=3,
            ),
        ),
        st.builds(lambda buckets: {"fractional": buckets}, st.just([["x", 1], ["y", 2]])),
        # Operators left to closures, with generated code inside and around them.
        st.builds(lambda v, op: {"sem_ver": [v, op, "1.2.3"]}, kids, st.sampled_from(["<", "^"])),
        st.builds(_op, st.sampled_from(["cat", "+", "merge"]), some),
        st.builds(lambda items, rule: {"map": [items, rule]}, kids, kids),
        st.builds(lambda items: [items, {"var": "a"}], kids),
    )


pool = st.sampled_from([0, 1, 2, 18, 2.5, 1.0, "", "a", "1", "2.5", True, False, None])
# The common targeting shape, a data value against a constant; the contexts draw from the same
# small pool, so that equal and neighbouring values meet often.
tests_of_data = st.builds(
    lambda op, key, value, flip: {op: [value, {"var": key}] if flip else [{"var": key}, value]},
    st.sampled_from(
        ["==", "===", "!=", "!==", "<", "<=", ">", ">=", "in", "starts_with", "ends_with"]
    ),
    st.sampled_from(KEYS[:4]),
    st.one_of(pool, st.lists(pool, max_size=3), texts),
    st.booleans(),
)
rules = st.recursive(st.one_of(scalars, constant_lists, tests_of_data), _rules, max_leaves=12)
contexts = st.one_of(
    st.dictionaries(st.sampled_from(KEYS[:4]), st.one_of(pool, st.lists(pool, max_size=2))),
    st.dictionaries(st.sampled_from(KEYS), json_values, max_size=5),
    st.dictionaries(st.sampled_from(KEYS), scalars, max_size=5),
    json_values,  # data that is not a dict goes to the closure of the whole rule
)
options = st.builds(
    lambda version, small: Options(
        flag_key="my-flag",
        fractional_version=version,
        clock=FakeClock(NOW),
        limits=Limits(max_data_depth=2, max_array_length=3) if small else Limits(),
    ),
    st.sampled_from([2, 3]),
    st.booleans(),
)


def outcome(evaluate: Any, data: Any) -> tuple[Any, ...]:
    """What an evaluation gives: its value, or the exception's type and message."""
    try:
        return ("value", evaluate(data))
    except Exception as exc:  # compared, not swallowed
        return ("raised", type(exc), str(exc))


def identical(a: Any, b: Any) -> bool:
    """Equal values of the same types all the way down (NaN is NaN, True is not 1)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(identical(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(identical(a[k], b[k]) for k in a)
    return bool(a == b)


@settings(max_examples=1500, deadline=None)
@given(rule=rules, data=st.lists(contexts, min_size=1, max_size=4), opts=options)
def test_generated_code_gives_what_the_closures_give(
    rule: Any, data: list[Any], opts: Options
) -> None:
    compiled = outcome(lambda r: compile_rule(r, opts), rule)
    if compiled[0] == "raised":  # a rule past the limits: refused the same way
        assert outcome(lambda r: compile_generated(r, opts), rule) == compiled
        return
    closures = compiled[1]
    generated = compile_generated(rule, opts)
    written = generate(rule, opts)
    if written is not None:
        assert_only_our_names(*written)
    for item in data:
        expected = outcome(closures, item)
        actual = outcome(generated, item)
        assert len(actual) == len(expected), (rule, item, actual, expected)
        assert all(identical(x, y) for x, y in zip(actual, expected, strict=True)), (
            rule,
            item,
            actual,
            expected,
        )


shallow_rules = st.recursive(
    tests_of_data,
    lambda kids: st.builds(
        _op, st.sampled_from(["and", "or", "if", "!", "!!"]), st.lists(kids, max_size=4)
    ),
    max_leaves=5,
)
pool_contexts = st.dictionaries(
    st.sampled_from(KEYS[:4]), st.one_of(pool, st.lists(pool, max_size=2), texts)
)


@settings(max_examples=1000, deadline=None)
@given(rule=shallow_rules, data=st.lists(pool_contexts, min_size=1, max_size=6))
def test_generated_tests_of_data_give_what_the_closures_give(rule: Any, data: list[Any]) -> None:
    closures = compile_rule(rule, flagd_options())
    generated = compile_generated(rule, flagd_options())
    for item in data:
        expected = outcome(closures, item)
        actual = outcome(generated, item)
        assert all(identical(x, y) for x, y in zip(actual, expected, strict=True)), (
            rule,
            item,
            actual,
            expected,
        )


POOL = [0, 1, 18, -1, 2.5, 1.0, 2**53 + 1, math.nan, "", "a", "ab", "1", "18", True, False, None]
POOL_VALUES = [*POOL, [], [1], ["a"], {}, {"a": 1}]
LEAF_OPERATORS = ["==", "===", "!=", "!==", "<", "<=", ">", ">=", "in", "starts_with", "ends_with"]


def test_every_test_of_a_value_against_a_constant_agrees() -> None:
    """Exhaustive over a small pool: each operator, each constant on either side (and
    constant arrays for ``in``), each value of the data, present or missing."""
    constants: list[Any] = [*POOL, [], ["a", 1, None], "ab1"]
    contexts = [{}, *({"a": value} for value in POOL_VALUES)]
    for op in LEAF_OPERATORS:
        for constant in constants:
            for rule in ({op: [{"var": "a"}, constant]}, {op: [constant, {"var": "a"}]}):
                closures = compile_rule(rule)
                generated = compile_generated(rule)
                for data in contexts:
                    expected, actual = outcome(closures, data), outcome(generated, data)
                    assert all(identical(x, y) for x, y in zip(actual, expected, strict=True)), (
                        rule,
                        data,
                        actual,
                        expected,
                    )
    value = {"var": "a"}
    tests = {"==": [value, 1]}
    shapes: list[dict[str, Any]] = [
        {"<": [1, value, 18]},
        {"!": value},
        {"!!": [value]},
        {"and": [value, "x"]},
        {"or": [value, "x"]},
        {"and": [tests, value]},
        {"or": [tests, value]},
        {"if": [value, "x", "y"]},
        {"if": [tests, value, {"!": tests}, "x"]},
        {"!": [{"starts_with": [value, "a"]}]},
        {"!!": [{"ends_with": [value, "a"]}]},
        {"!": {"if": [tests, "x", value]}},
        {"or": [{"if": [tests, "x", value]}, "y"]},
        {"and": [{"or": [tests, value]}, "y"]},
        {"!": {"and": [{"!!": value}, value]}},
    ]
    for rule in shapes:
        for data in contexts:
            actual, expected = (
                outcome(compile_generated(rule), data),
                outcome(compile_rule(rule), data),
            )
            assert all(identical(x, y) for x, y in zip(actual, expected, strict=True)), (
                rule,
                data,
            )


BENCH_RULE = {  # the shape of bench/ofrep.py's targeted flags
    "if": [
        {
            "and": [
                {">": [{"var": "seats"}, 5]},
                {"in": [{"var": "plan"}, ["team", "enterprise"]]},
                {"starts_with": [{"var": "email"}, "admin@"]},
            ]
        },
        {"fractional": [{"var": "email"}, ["on", 50], ["off", 50]]},
        "off",
    ]
}


def test_common_rules_become_one_function_without_closure_calls() -> None:
    written = generate(BENCH_RULE, flagd_options())
    assert written is not None
    source, namespace = written
    calls = [name for name in namespace if name.startswith("_c") and f"{name}(data)" in source]
    # Only the fractional operator's own closure, for a unit that is not a string.
    assert len(calls) == 1
    evaluate = compile_generated(BENCH_RULE, flagd_options())
    assert evaluate.__name__ == "_rule"
    context = {"plan": "team", "seats": 30, "email": "admin@example.com"}
    assert evaluate(context) == compile_rule(BENCH_RULE, flagd_options())(context)
    assert evaluate({"plan": "free", "seats": 30}) == "off"


def test_a_rule_with_nothing_to_write_is_its_closure() -> None:
    assert generate({"cat": ["a", {"var": "b"}]}, Options()) is None
    assert generate("on", Options()) is None
    assert compile_generated({"cat": ["a", {"var": "b"}]})({"b": 1}) == "a1"


OUR_NAMES = {
    "data", "_make", "_rule", "_fallback", "get", "startswith", "endswith", "isascii",
    "_program", "_U", "_failed", "_Exception",
}  # fmt: skip


def assert_only_our_names(source: str, namespace: dict[str, Any]) -> None:
    """The source holds no string literal, no number but the hash seed 0, and no name but
    keywords, the helpers, ``data``, a few methods and counter names bound in ``namespace``."""
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        assert token.type != tokenize.STRING, token
        if token.type == tokenize.NUMBER:
            assert token.string == "0", token
        if token.type == tokenize.NAME and not keyword.iskeyword(token.string):
            name = token.string
            counter = re.fullmatch(r"_[ctsvrn][0-9]+", name)
            assert counter or name in OUR_NAMES or name in HELPERS or name in namespace, name
            if name.startswith("_c"):
                assert name in namespace, name


HOSTILE = [
    "'); __import__('os').system('touch /tmp/pwned') #",
    '"""\nimport os\nos._exit(3)\n"""',
    "\\x00\n\r\t{}{0}%s",
    "__import__",
    "data.get",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_document_strings_are_data_never_code(text: str) -> None:
    rule = {
        "if": [
            {"==": [{"var": "k"}, text]},
            text,
            {"==": [{"var": text}, text]},
            text,
            {"in": [{"var": "a"}, [text, "x"]]},
            {"var": [text, text]},
            {"starts_with": [{"var": "a"}, text]},
            {"fractional": [{"cat": [text, {"var": "a"}]}, [text, 1], ["b", 1]]},
            {"in": [text, {"var": "a"}]},
            {">=": [{"var": f"{text}.{text}"}, 3]},
        ]
    }
    opts = Options(flag_key=text)
    written = generate(rule, opts)
    assert written is not None
    source, namespace = written
    assert_only_our_names(source, namespace)
    evaluate = compile_generated(rule, opts)
    closures = compile_rule(rule, opts)
    for data in ({"k": text}, {text: text}, {"a": text}, {"a": f"{text}!"}, {}, {text: {text: 5}}):
        assert outcome(evaluate, data) == outcome(closures, data)
    assert evaluate({"k": text}) == text


def deep_rules() -> tuple[Any, Any, Any]:
    """Rules past the generator's bounds: 60 levels deep, 200 arguments wide, 100 ``if`` arms."""
    deep: Any = {"var": "a"}
    for i in range(60):
        deep = {"!": deep} if i % 2 else {"and": [True, deep]}
    wide = {"or": [{"==": [{"var": "a"}, i]} for i in range(200)]}
    chain = {"if": [x for i in range(100) for x in ({"==": [{"var": "a"}, i]}, i)]}
    return deep, wide, chain


def test_deep_rules_are_bounded_and_still_agree() -> None:
    deep, wide, chain = deep_rules()
    for data in ({"a": 1}, {"a": 0}, {}):
        assert compile_generated(deep)(data) == compile_rule(deep)(data)
    assert compile_generated(wide)({"a": 150}) is True
    assert compile_generated(chain)({"a": 40}) == 40
    assert Limits().max_rule_depth > MAX_NESTING
