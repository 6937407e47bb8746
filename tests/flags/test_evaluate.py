"""Evaluation semantics: reasons, error codes, typed calls, context limits, never raising."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stageless.clock import FakeClock
from stageless.errors import ValidationError
from stageless.flags import (
    ErrorCode,
    EvaluationError,
    FlagSet,
    FlagType,
    Reason,
    Resolution,
    parse_flag_set,
)
from stageless.flags.evaluate import DEFAULT_MAX_CONTEXT_KEYS

B, S, F = FlagType.BOOLEAN, FlagType.STRING, FlagType.FLOAT
INT, OBJ = FlagType.INTEGER, FlagType.OBJECT
STATIC, MATCH, DEFAULT = Reason.STATIC, Reason.TARGETING_MATCH, Reason.DEFAULT
DISABLED, ERROR = Reason.DISABLED, Reason.ERROR

IS_STAFF = {"ends_with": [{"var": "email"}, "@example.com"]}

FLAGS: dict[str, Any] = {
    "metadata": {"flagSetId": "shop"},
    "flags": {
        "kill-switch": {
            "state": "ENABLED",
            "variants": {"on": True, "off": False},
            "defaultVariant": "on",
            "metadata": {"owner": "sre"},
        },
        "checkout": {
            "state": "ENABLED",
            "variants": {"new": "new", "old": "old"},
            "defaultVariant": "old",
            "targeting": {"if": [IS_STAFF, "new", None]},
        },
        "no-default": {
            "state": "ENABLED",
            "variants": {"new": "new", "old": "old"},
            "targeting": {"if": [IS_STAFF, "new", None]},
        },
        "static-no-default": {"state": "ENABLED", "variants": {"a": 1, "b": 2}},
        "off": {"state": "DISABLED", "variants": {"a": "a"}, "defaultVariant": "a"},
        "bool-result": {
            "state": "ENABLED",
            "variants": {"true": 2, "false": 1},
            "defaultVariant": "false",
            "targeting": IS_STAFF,
        },
        "bool-result-no-variant": {
            "state": "ENABLED",
            "variants": {"yes": 1},
            "defaultVariant": "yes",
            "targeting": IS_STAFF,
        },
        "returns-number": {
            "state": "ENABLED",
            "variants": {"a": "a"},
            "defaultVariant": "a",
            "targeting": {"+": [1, 2]},
        },
        "returns-array": {
            "state": "ENABLED",
            "variants": {"a": "a"},
            "defaultVariant": "a",
            "targeting": {"merge": [["a"]]},
        },
        "unknown-variant": {
            "state": "ENABLED",
            "variants": {"a": "a"},
            "defaultVariant": "a",
            "targeting": {"var": "pick"},
        },
        "ints": {"state": "ENABLED", "variants": {"ten": 10, "one": 1}, "defaultVariant": "ten"},
        "whole-floats": {"state": "ENABLED", "variants": {"a": 2.0}, "defaultVariant": "a"},
        "floats": {"state": "ENABLED", "variants": {"a": 0.5, "b": 1}, "defaultVariant": "a"},
        "object": {
            "state": "ENABLED",
            "variants": {"t": {"title": "Hi"}},
            "defaultVariant": "t",
        },
        "flag-key": {
            "state": "ENABLED",
            "variants": {"flag-key": "yes", "other": "no"},
            "defaultVariant": "other",
            "targeting": {"var": "$flagd.flagKey"},
        },
        "timed": {
            "state": "ENABLED",
            "variants": {"before": "before", "after": "after"},
            "defaultVariant": "before",
            "targeting": {"if": [{">=": [{"var": "$flagd.timestamp"}, 2_000_000_000]}, "after"]},
        },
    },
}

STAFF = {"targetingKey": "u1", "email": "ada@example.com"}
GUEST = {"targetingKey": "u2", "email": "bob@example.org"}

# key, context, requested type -> value, variant, reason, error code
CASES: list[tuple[str, Any, FlagType | None, Any, str | None, Reason, ErrorCode | None]] = [
    ("kill-switch", None, B, True, "on", STATIC, None),
    ("kill-switch", GUEST, None, True, "on", STATIC, None),
    ("checkout", STAFF, S, "new", "new", MATCH, None),
    ("checkout", GUEST, S, "old", "old", DEFAULT, None),
    ("checkout", None, S, "old", "old", DEFAULT, None),
    ("no-default", STAFF, S, "new", "new", MATCH, None),
    ("no-default", GUEST, S, None, None, DEFAULT, None),
    ("static-no-default", None, INT, None, None, DEFAULT, None),
    ("off", STAFF, S, None, None, DISABLED, None),
    ("off", STAFF, B, None, None, DISABLED, None),  # disabled wins over the type check
    ("bool-result", STAFF, INT, 2, "true", MATCH, None),
    ("bool-result", GUEST, INT, 1, "false", MATCH, None),
    ("bool-result-no-variant", STAFF, INT, None, None, ERROR, ErrorCode.GENERAL),
    ("returns-number", None, S, None, None, ERROR, ErrorCode.GENERAL),
    ("returns-array", None, S, None, None, ERROR, ErrorCode.GENERAL),
    ("unknown-variant", {"pick": "zzz"}, S, None, None, ERROR, ErrorCode.GENERAL),
    ("unknown-variant", {"pick": "a"}, S, "a", "a", MATCH, None),
    ("unknown-variant", {"pick": None}, S, "a", "a", DEFAULT, None),
    ("missing", None, B, None, None, ERROR, ErrorCode.FLAG_NOT_FOUND),
    ("kill-switch", None, S, None, None, ERROR, ErrorCode.TYPE_MISMATCH),
    ("checkout", STAFF, B, None, None, ERROR, ErrorCode.TYPE_MISMATCH),
    ("checkout", GUEST, B, None, None, ERROR, ErrorCode.TYPE_MISMATCH),
    ("ints", None, INT, 10, "ten", STATIC, None),
    ("ints", None, F, 10.0, "ten", STATIC, None),
    ("ints", None, None, 10, "ten", STATIC, None),
    ("whole-floats", None, INT, 2, "a", STATIC, None),
    ("whole-floats", None, F, 2.0, "a", STATIC, None),
    ("floats", None, F, 0.5, "a", STATIC, None),
    ("floats", None, INT, None, None, ERROR, ErrorCode.TYPE_MISMATCH),
    ("object", None, OBJ, {"title": "Hi"}, "t", STATIC, None),
    ("object", None, S, None, None, ERROR, ErrorCode.TYPE_MISMATCH),
    ("flag-key", None, S, "yes", "flag-key", MATCH, None),
    ("flag-key", {"$flagd": {"flagKey": "other"}}, S, "yes", "flag-key", MATCH, None),
    ("timed", None, S, "before", "before", DEFAULT, None),
    ("checkout", MappingProxyType(STAFF), S, "new", "new", MATCH, None),
    ("checkout", [("email", "x")], S, None, None, ERROR, ErrorCode.INVALID_CONTEXT),
    ("checkout", "email=x", S, None, None, ERROR, ErrorCode.INVALID_CONTEXT),
]


@pytest.fixture(scope="module")
def flags() -> FlagSet:
    return parse_flag_set(FLAGS, clock=FakeClock(1_900_000_000))


@pytest.mark.parametrize(
    ("key", "context", "flag_type", "value", "variant", "reason", "error_code"), CASES
)
def test_evaluation_table(
    flags: FlagSet,
    key: str,
    context: Any,
    flag_type: FlagType | None,
    value: Any,
    variant: str | None,
    reason: Reason,
    error_code: ErrorCode | None,
) -> None:
    result = flags.evaluate(key, context, flag_type)
    assert (result.value, result.variant, result.reason, result.error_code) == (
        value,
        variant,
        reason,
        error_code,
    ), result
    if isinstance(value, dict):
        assert isinstance(result.value, dict)  # a read-only dict subclass
    else:
        assert type(result.value) is type(value)
    assert result.key == key
    assert (result.error_message is None) == (error_code is None)


def test_error_messages_say_what_went_wrong(flags: FlagSet) -> None:
    cases = {
        ("unknown-variant", "zzz"): "targeting returned variant 'zzz', which is not one of ['a']",
        ("returns-number", None): "targeting returned 3; expected a variant name or null",
        ("kill-switch", None): "flag 'kill-switch' is of type boolean, requested string",
        ("missing", None): "flag 'missing' not found",
    }
    for (key, pick), message in cases.items():
        assert flags.evaluate(key, {"pick": pick}, FlagType.STRING).error_message == message


def test_the_clock_feeds_flagd_timestamp() -> None:
    clock = FakeClock(1_999_999_999)
    flags = parse_flag_set(FLAGS, clock=clock)
    assert flags.evaluate("timed").variant == "before"
    clock.advance(1)
    assert flags.evaluate("timed").variant == "after"


def test_metadata_comes_with_every_resolution(flags: FlagSet) -> None:
    assert dict(flags.evaluate("kill-switch").metadata) == {"flagSetId": "shop", "owner": "sre"}
    assert dict(flags.evaluate("off").metadata) == {"flagSetId": "shop"}
    assert dict(flags.evaluate("missing").metadata) == {"flagSetId": "shop"}
    assert dict(flags.evaluate("kill-switch", None, FlagType.STRING).metadata)["owner"] == "sre"


def test_the_happy_path_returns_shared_precomputed_resolutions(flags: FlagSet) -> None:
    assert flags.evaluate("checkout", STAFF, S) is flags.evaluate("checkout", dict(STAFF), S)
    assert flags.evaluate("checkout", GUEST, S) is flags.evaluate("checkout", GUEST, S)
    assert flags.evaluate("kill-switch") is flags.evaluate("kill-switch", GUEST)


def test_evaluate_all_resolves_every_flag_in_document_order(flags: FlagSet) -> None:
    results = flags.evaluate_all(STAFF)
    assert list(results) == list(FLAGS["flags"])
    assert results["checkout"].variant == "new"
    assert all(isinstance(r, Resolution) for r in results.values())


def test_raise_for_error_is_opt_in(flags: FlagSet) -> None:
    flags.evaluate("kill-switch").raise_for_error()
    with pytest.raises(EvaluationError, match="FLAG_NOT_FOUND"):
        flags.evaluate("missing").raise_for_error()


def test_fractional_version_is_chosen_per_flag_set() -> None:
    # flags-spec.md §3 vectors: user "jack" buckets to hearts in v2 and diamonds in v3.
    rule = {
        "fractional": [
            {"cat": [{"var": "$flagd.flagKey"}, {"var": "user.name"}]},
            ["clubs", 25],
            ["diamonds", 25],
            ["hearts", 25],
            ["spades", 25],
        ]
    }
    names = ["clubs", "diamonds", "hearts", "spades"]
    source = {
        "flags": {
            "fractional-flag": {
                "state": "ENABLED",
                "variants": {name: name for name in names},
                "defaultVariant": "clubs",
                "targeting": rule,
            }
        }
    }
    context = {"user": {"name": "jack"}}
    v2 = parse_flag_set(source).evaluate("fractional-flag", context)
    v3 = parse_flag_set(source, fractional_version=3).evaluate("fractional-flag", context)
    assert (v2.value, v3.value) == ("hearts", "diamonds")


# --- limits and the never-raise boundary ---------------------------------------------------


def test_too_many_context_keys_is_invalid_context(flags: FlagSet) -> None:
    context = {f"k{i}": i for i in range(DEFAULT_MAX_CONTEXT_KEYS + 1)}
    result = flags.evaluate("checkout", context, S)
    assert result.error_code is ErrorCode.INVALID_CONTEXT
    assert result.error_message == (
        f"the evaluation context has {DEFAULT_MAX_CONTEXT_KEYS + 1} top-level keys; "
        f"the limit is {DEFAULT_MAX_CONTEXT_KEYS}"
    )
    # Static flags do not read the context, so its size does not matter to them.
    assert flags.evaluate("kill-switch", context).reason is STATIC


def test_data_beyond_the_engine_limits_is_invalid_context() -> None:
    rule = {"if": [{"in": ["needle", {"cat": [{"var": "tags"}]}]}, "a", None]}
    flags = parse_flag_set(
        {"flags": {"f": {"state": "ENABLED", "variants": {"a": "a"}, "targeting": rule}}}
    )
    deep: list[Any] = []
    for _ in range(200):
        deep = [deep]
    for tags in (deep, list(range(200_000))):
        result = flags.evaluate("f", {"tags": tags})
        assert (result.reason, result.error_code) == (Reason.ERROR, ErrorCode.INVALID_CONTEXT)
        assert result.error_message


class Hostile(Mapping[str, Any]):
    """A mapping that fails when read, with ``error``."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def __getitem__(self, key: str) -> Any:
        raise self.error

    def __iter__(self) -> Iterator[str]:
        raise self.error

    def __len__(self) -> int:
        return 1


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (RuntimeError("boom"), "RuntimeError: boom"),
        (RecursionError("deep"), "evaluation recursed too deeply"),
    ],
)
def test_any_failure_during_evaluation_becomes_general(
    flags: FlagSet, error: BaseException, message: str
) -> None:
    result = flags.evaluate("checkout", Hostile(error), S)
    assert (result.reason, result.error_code, result.error_message) == (
        Reason.ERROR,
        ErrorCode.GENERAL,
        message,
    )


def test_an_unknown_requested_type_is_an_error_not_an_exception(flags: FlagSet) -> None:
    result = flags.evaluate("kill-switch", None, "decimal")  # type: ignore[arg-type]
    assert result.error_code is ErrorCode.GENERAL


# --- properties ------------------------------------------------------------------------------

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)
contexts = st.dictionaries(
    st.sampled_from(["targetingKey", "email", "pick", "user", "tags", "age", "$flagd", "x"])
    | st.text(max_size=6),
    json_values,
    max_size=8,
)
requested = st.sampled_from([None, *FlagType]) | st.just("bogus")
PROPERTY_FLAGS = parse_flag_set(FLAGS, clock=FakeClock())


@given(context=contexts | json_values, flag_type=requested)
def test_evaluate_never_raises_and_is_deterministic(context: Any, flag_type: Any) -> None:
    flags = PROPERTY_FLAGS
    for key in [*flags.keys(), "missing"]:
        first = flags.evaluate(key, context, flag_type)
        assert isinstance(first, Resolution)
        assert first == flags.evaluate(key, context, flag_type)
        assert (first.variant is None) == (first.value is None)
        assert (first.error_code is None) == (first.reason is not Reason.ERROR)


OPERATORS = [
    "var", "if", "==", "===", "!=", "!", "!!", "and", "or", "<", "<=", ">", ">=", "in", "cat",
    "substr", "+", "-", "*", "/", "%", "min", "max", "merge", "missing", "missing_some", "map",
    "filter", "reduce", "all", "some", "none", "fractional", "sem_ver", "starts_with",
    "ends_with", "$ref", "nope",
]  # fmt: skip
rules = st.recursive(
    scalars | st.sampled_from(["a", "b", "true", "email", "targetingKey", "user.name"]),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.builds(
            lambda op, args: {op: args}, st.sampled_from(OPERATORS), st.lists(inner, max_size=4)
        )
        | st.builds(lambda op, arg: {op: arg}, st.sampled_from(OPERATORS), inner)
    ),
    max_leaves=25,
)
documents = st.fixed_dictionaries(
    {
        "flags": st.dictionaries(
            st.text(min_size=1, max_size=5),
            st.fixed_dictionaries(
                {
                    "state": st.sampled_from(["ENABLED", "DISABLED", "maybe"]),
                    "variants": st.sampled_from(
                        [{"a": "a", "b": "b"}, {"true": True, "false": False}, {"a": 1, "b": 2.5}]
                    ),
                },
                optional={
                    "defaultVariant": st.sampled_from([None, "a", "b", "true", "zzz"]),
                    "targeting": st.dictionaries(st.sampled_from(OPERATORS), rules, max_size=1),
                },
            ),
            max_size=3,
        )
    },
    optional={"$evaluators": st.dictionaries(st.sampled_from(["e", "f"]), rules, max_size=2)},
)


@given(document=documents, context=contexts, flag_type=requested)
def test_any_document_loads_or_is_rejected_and_then_never_raises(
    document: dict[str, Any], context: dict[str, Any], flag_type: Any
) -> None:
    try:
        flags = parse_flag_set(document, fractional_version=3)
    except ValidationError as exc:
        assert exc.issues
        return
    for key in flags:
        first = flags.evaluate(key, context, flag_type)
        assert isinstance(first, Resolution)
        assert first == flags.evaluate(key, dict(context), flag_type)
        if flags.flag(key).targeting_error is not None and flags.flag(key).enabled:
            assert first.error_code in (ErrorCode.PARSE_ERROR, ErrorCode.GENERAL)
    assert set(flags.evaluate_all(context)) == set(flags.keys())


@given(context=contexts | json_values)
def test_evaluate_many_resolves_as_evaluate_does(context: Any) -> None:
    flags = PROPERTY_FLAGS
    keys = [*flags.keys(), "missing", *reversed(list(flags.keys()))]

    assert flags.evaluate_many(keys, context) == [flags.evaluate(key, context) for key in keys]


@given(document=documents, context=contexts)
def test_evaluate_many_agrees_on_any_document(document: dict[str, Any], context: Any) -> None:
    try:
        flags = parse_flag_set(document, fractional_version=3)
    except ValidationError:
        return
    keys = list(flags.keys())

    assert flags.evaluate_many(keys, context) == [flags.evaluate(key, context) for key in keys]


def test_evaluate_many_refuses_a_context_with_too_many_keys_per_targeted_flag(
    flags: FlagSet,
) -> None:
    context = {f"k{i}": i for i in range(DEFAULT_MAX_CONTEXT_KEYS + 1)}
    keys = list(flags.keys())

    resolutions = flags.evaluate_many(keys, context)

    assert resolutions == [flags.evaluate(key, context) for key in keys]
    assert any(r.error_code is ErrorCode.INVALID_CONTEXT for r in resolutions)
    assert any(r.error_code is None for r in resolutions)  # flags without targeting still serve
