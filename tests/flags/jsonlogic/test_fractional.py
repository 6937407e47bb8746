"""The ``fractional`` operator: flagd-testbed scenarios for v2 and v3, bad input, fast paths."""

from __future__ import annotations

from typing import Any

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from stageless.flags.bucketing import assign, cumulative, murmur3_32, v2_hash, v3_hash
from stageless.flags.jsonlogic.compiler import Compiler, LimitError, Limits, Options
from tests.flags.jsonlogic.flagd_support import OPERATORS, compile_for

SUITS = [["clubs", 25], ["diamonds", 25], ["hearts", 25], ["spades", 25]]
FRACTIONAL_FLAG = {
    "fractional": [{"cat": [{"var": "$flagd.flagKey"}, {"var": "user.name"}]}, *SUITS]
}
SHARED_SEED = {"fractional": [{"cat": ["shared-seed", {"var": "user.name"}]}, *SUITS]}
SHORTHAND = {"fractional": [["heads"], ["tails", 1]]}
HASH_EDGE = {"fractional": [{"var": "targetingKey"}, ["lower", 50], ["upper", 50]]}
BASIC = {"fractional": [{"var": "hashing_input"}, *[[f"bucket{i}", 4] for i in range(1, 26)]]}


def evaluate(rule: Any, data: Any, *, flag_key: str | None = "flag", version: int = 2) -> Any:
    return compile_for(rule, flag_key=flag_key, version=version)(data)


@pytest.mark.parametrize(
    ("name", "v2", "v3"),
    [
        ("jack", "hearts", "diamonds"),
        ("queen", "spades", "diamonds"),
        ("ten", "clubs", "clubs"),
        ("nine", "diamonds", "clubs"),
        ("3", "clubs", "spades"),
    ],
)
def test_fractional_flag(name: str, v2: str, v3: str) -> None:
    data = {"user": {"name": name}}
    assert evaluate(FRACTIONAL_FLAG, data, flag_key="fractional-flag") == v2
    assert evaluate(FRACTIONAL_FLAG, data, flag_key="fractional-flag", version=3) == v3


@pytest.mark.parametrize(
    ("targeting_key", "v2", "v3"),
    [
        ("jon@company.com", "heads", "tails"),
        ("jane@company.com", "tails", "tails"),
        ("user-1", None, "heads"),
        ("user-2", None, "tails"),
        ("user-3", None, "heads"),
    ],
)
def test_shorthand_hashes_flag_key_and_targeting_key(
    targeting_key: str, v2: str | None, v3: str
) -> None:
    data = {"targetingKey": targeting_key}
    key = "fractional-flag-shorthand"
    if v2 is not None:
        assert evaluate(SHORTHAND, data, flag_key=key) == v2
    assert evaluate(SHORTHAND, data, flag_key=key, version=3) == v3


@pytest.mark.parametrize("version", [2, 3])
@pytest.mark.parametrize(
    "data",
    [
        {},
        {"irrelevant": "none"},
        {"targetingKey": 12345},
        {"targetingKey": True},
        {"targetingKey": ""},
        {"targetingKey": None},
        None,
        [],
        "jon",
    ],
)
def test_shorthand_without_a_string_targeting_key_is_null(version: int, data: Any) -> None:
    assert evaluate(SHORTHAND, data, flag_key="fractional-flag-shorthand", version=version) is None


def test_shorthand_without_a_flag_key_hashes_the_targeting_key_alone() -> None:
    rule = {"fractional": [["a", 1], ["b", 1], ["c", 1]]}
    for user in ("u1", "u2", "u3", "u4", "u5"):
        expected = assign(v2_hash(user), (1, 2, 3), "abc")
        assert evaluate(rule, {"targetingKey": user}, flag_key=None) == expected
        assert (
            evaluate(rule, {"targetingKey": user, "$flagd": {"flagKey": "x"}}, flag_key=None)
            == expected
        )


@pytest.mark.parametrize(
    ("name", "v2", "v3"),
    [
        ("seven", "hearts", "hearts"),
        ("eight", "diamonds", "hearts"),
        ("nine", "clubs", "diamonds"),
        ("two", "spades", "diamonds"),
    ],
)
def test_shared_seed_flags_bucket_alike(name: str, v2: str, v3: str) -> None:
    data = {"user": {"name": name}}
    for key in ("fractional-flag-A-shared-seed", "fractional-flag-B-shared-seed"):
        assert evaluate(SHARED_SEED, data, flag_key=key) == v2
        assert evaluate(SHARED_SEED, data, flag_key=key, version=3) == v3


@pytest.mark.parametrize(
    ("key", "variant"),
    [
        ("ejOoVL", "lower"),
        ("bY9fO-", "lower"),
        ("SI7p-", "lower"),
        ("6LvT0", "upper"),
        ("ceQdGm", "upper"),
    ],
)
def test_hash_edge_keys(key: str, variant: str) -> None:
    assert (
        evaluate(HASH_EDGE, {"targetingKey": key}, flag_key="fractional-hash-edge-flag") == variant
    )


@pytest.mark.parametrize("version", [2, 3])
def test_single_entry_always_resolves_to_it(version: int) -> None:
    rule = {"fractional": [["single", 1]]}
    assert evaluate(rule, {"targetingKey": "some-targeting-key"}, version=version) == "single"


@pytest.mark.parametrize(
    ("value", "variant"),
    [
        (True, "bucket5"),
        (False, "bucket1"),
        ("user1", "bucket22"),
        (123, "bucket20"),
        (1.23, "bucket14"),
        (0, "bucket8"),
        (0.0, "bucket8"),
        (-0.0, "bucket8"),
        (4294967296, "bucket19"),
        (5.960464477539063e-08, "bucket23"),
        (1e20, "bucket19"),
        ({"b": 2, "a": 1}, "bucket23"),
    ],
)
def test_v3_buckets_typed_values(value: Any, variant: str) -> None:
    assert evaluate(BASIC, {"hashing_input": value}, version=3) == variant


@pytest.mark.parametrize("value", [None, [1, 2], ["a"]])
def test_v3_null_and_arrays_do_not_bucket(value: Any) -> None:
    assert evaluate(BASIC, {"hashing_input": value}, version=3) is None
    assert evaluate(BASIC, {}, version=3) is None


@pytest.mark.parametrize("value", [None, 123, 1.5, True, {"a": 1}, ["a"]])
def test_v2_bucketing_value_must_be_a_string(value: Any) -> None:
    assert evaluate(BASIC, {"hashing_input": value}) is None


def test_v2_bucketing_value_may_be_an_empty_string() -> None:
    expected = assign(v2_hash(""), cumulative([4] * 25), [f"bucket{i}" for i in range(1, 26)])
    assert evaluate(BASIC, {"hashing_input": ""}) == expected


def test_missing_bucket_key_is_null() -> None:
    rule = {"fractional": [{"var": "missing_key"}, ["one", 50], ["two", 50]]}
    assert evaluate(rule, {"targetingKey": "jon"}) is None
    assert evaluate({"fractional": [None, ["one"]]}, {"targetingKey": "jon"}) is None


# --- nested expressions (@fractional-nested) -----------------------------------------------

NESTED_IF = {
    "fractional": [
        {"var": "targetingKey"},
        [{"if": [{"==": [{"var": "tier"}, "premium"]}, "premium", "standard"]}, 50],
        ["standard", 50],
    ]
}
NESTED_VAR = {"fractional": [{"var": "targetingKey"}, [{"var": "color"}, 50], ["blue", 50]]}
NESTED_WEIGHT = {
    "fractional": [
        {"var": "targetingKey"},
        ["red", {"if": [{"==": [{"var": "tier"}, "premium"]}, 100, 0]}],
        ["blue", 10],
    ]
}


@pytest.mark.parametrize(
    ("user", "tier", "variant"),
    [
        ("jon@company.com", "premium", "premium"),
        ("jon@company.com", "basic", "standard"),
        ("user1", "premium", "standard"),
        ("user1", "basic", "standard"),
    ],
)
def test_variant_may_be_an_expression(user: str, tier: str, variant: str) -> None:
    assert evaluate(NESTED_IF, {"targetingKey": user, "tier": tier}) == variant


@pytest.mark.parametrize(
    ("user", "color", "variant"),
    [
        ("jon@company.com", "red", "red"),
        ("jon@company.com", "yellow", "yellow"),
        ("user1", "red", "blue"),
        ("jon@company.com", None, None),
    ],
)
def test_variant_may_be_read_from_the_data(user: str, color: str | None, variant: str) -> None:
    assert evaluate(NESTED_VAR, {"targetingKey": user, "color": color}) == variant


@pytest.mark.parametrize(
    ("user", "tier", "variant"),
    [
        ("jon@company.com", "premium", "red"),
        ("jon@company.com", "basic", "blue"),
        ("user1", "premium", "red"),
        ("user1", "basic", "blue"),
    ],
)
def test_weight_may_be_an_expression(user: str, tier: str, variant: str) -> None:
    assert evaluate(NESTED_WEIGHT, {"targetingKey": user, "tier": tier}) == variant


def test_fractional_as_a_condition() -> None:
    always = {"if": [{"fractional": [[False, 0], [True, 100]]}, "big", "small"]}
    never = {"if": [{"fractional": [[False, 100], [True, 0]]}, "big", "small"]}
    data = {"targetingKey": "some-targeting-key"}
    assert evaluate(always, data) == "big"
    assert evaluate(never, data) == "small"


def test_dynamic_variants_are_checked_like_constant_ones() -> None:
    rule = {"fractional": [{"var": "k"}, [{"var": "v"}, 1], ["b", 1]]}
    for bad in ({"x": 1}, ["x"]):
        assert evaluate(rule, {"k": "u1", "v": bad}) is None


# --- weights and malformed rules ------------------------------------------------------------


@pytest.mark.parametrize(
    ("buckets", "expected"),
    [
        ([["one", 0], ["two", 0]], None),
        ([["one", -50], ["two", 100]], "two"),
        ([["one", 50.0], ["two", 0.0]], "one"),
        ([["one", None], ["two", 0]], "one"),
        ([["one", 1, "ignored"], ["two", 0]], "one"),
        ([["one", 1.5], ["two", 1]], None),
        ([["one", "50"], ["two", 1]], None),
        ([["one", True], ["two", 1]], None),
        ([["one", float("inf")], ["two", 1]], None),
        ([["one", 2_147_483_647]], "one"),
        ([["one", 2_147_483_647], ["two", 1]], None),
        ([["one", 1], []], None),
        ([["one", 1], "two"], None),
        ([[{"a": 1, "b": 2}, 1]], None),
        ([[["a"], 1]], None),
        ([[None, 1]], None),
        ([[7, 1]], 7),
        ([[2.5, 1]], 2.5),
        ([], None),
    ],
)
@pytest.mark.parametrize("version", [2, 3])
def test_weights_and_malformed_buckets(buckets: list[Any], expected: Any, version: int) -> None:
    data = {"targetingKey": "any-user"}
    assert (
        evaluate({"fractional": [{"var": "targetingKey"}, *buckets]}, data, version=version)
        == expected
    )
    if buckets and type(buckets[0]) is list:
        assert evaluate({"fractional": buckets}, data, version=version) == expected


@pytest.mark.parametrize(
    "rule", [{"fractional": []}, {"fractional": "abc"}, {"fractional": [{"var": "k"}]}]
)
def test_degenerate_rules_are_null(rule: Any) -> None:
    assert evaluate(rule, {"k": "x", "targetingKey": "x"}) is None


def test_v3_bucketing_value_nested_too_deeply_hits_the_limit() -> None:
    value: dict[str, Any] = {}
    for _ in range(20):
        value = {"a": value}
    options = Options(flag_key="f", fractional_version=3, limits=Limits(max_data_depth=10))
    evaluator = Compiler(OPERATORS, options).compile(BASIC)
    with pytest.raises(LimitError, match="fractional"):
        evaluator({"hashing_input": value})


def test_lone_surrogates_hash_as_the_replacement_character() -> None:
    assert evaluate(HASH_EDGE, {"targetingKey": "x\ud800"}) == evaluate(
        HASH_EDGE, {"targetingKey": "x\ufffd"}
    )
    assert evaluate(FRACTIONAL_FLAG, {"user": {"name": "\udfff"}}) == evaluate(
        FRACTIONAL_FLAG, {"user": {"name": "\ufffd"}}
    )


# --- the fast paths agree with the reference definition ------------------------------------

JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
JSON = st.recursive(
    JSON_SCALARS,
    # Objects with one key would be operations, so generated objects have none or several.
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=3), inner, max_size=3).filter(lambda obj: len(obj) != 1)
    ),
    max_leaves=6,
)
CONTEXTS = st.dictionaries(
    st.sampled_from(["email", "targetingKey", "user", "other"]),
    JSON | st.fixed_dictionaries({"name": JSON}),
)
WEIGHTS = st.lists(st.integers(min_value=-5, max_value=50), min_size=1, max_size=5)


def reference(unit: Any, weights: list[int], version: int) -> Any:
    """flagd's definition, straight from the bucketing primitives."""
    hash_value = v3_hash(unit) if version == 3 else v2_hash(unit) if type(unit) is str else None
    ends = cumulative(weights)
    if hash_value is None or ends[-1] == 0:
        return None
    return assign(hash_value, ends, [f"v{i}" for i in range(len(weights))])


def _read(data: dict[str, Any], *path: str) -> Any:
    value: Any = data
    for part in path:
        if type(value) is not dict or part not in value:
            return None
        value = value[part]
    return value


@given(CONTEXTS, WEIGHTS, st.sampled_from([2, 3]))
def test_recommended_expression_matches_the_reference(
    data: dict[str, Any], weights: list[int], version: int
) -> None:
    buckets = [[f"v{i}", weight] for i, weight in enumerate(weights)]
    rule = {"fractional": [{"cat": [{"var": "$flagd.flagKey"}, {"var": "email"}]}, *buckets]}
    email = data.get("email")
    if type(email) is str:
        assert evaluate(rule, data, flag_key="my-flag", version=version) == reference(
            "my-flag" + email, weights, version
        )
    else:  # the general path: whatever cat makes of it, hashed the same way
        assert evaluate(rule, data, flag_key="my-flag", version=version) == evaluate(
            {
                "fractional": [
                    {"cat": ["my-flag", {"if": [True, {"var": "email"}, None]}]},
                    *buckets,
                ]
            },
            data,
            flag_key="my-flag",
            version=version,
        )


@given(CONTEXTS, WEIGHTS, st.sampled_from([2, 3]))
def test_var_and_nested_var_match_the_reference(
    data: dict[str, Any], weights: list[int], version: int
) -> None:
    buckets = [[f"v{i}", weight] for i, weight in enumerate(weights)]
    for path in (("email",), ("user", "name")):
        rule = {"fractional": [{"var": ".".join(path)}, *buckets]}
        assert evaluate(rule, data, version=version) == reference(
            _read(data, *path), weights, version
        )


@given(CONTEXTS, WEIGHTS, st.sampled_from([2, 3]))
def test_shorthand_matches_the_reference(
    data: dict[str, Any], weights: list[int], version: int
) -> None:
    buckets = [[f"v{i}", weight] for i, weight in enumerate(weights)]
    key = data.get("targetingKey")
    if type(key) is not str or not key:
        expected = None
    elif version == 2:
        expected = reference("my-flag" + key, weights, 2)
    else:
        expected = _v3_pair(key, weights)
    assert evaluate({"fractional": buckets}, data, flag_key="my-flag", version=version) == expected


def _v3_pair(key: str, weights: list[int]) -> Any:
    ends = cumulative(weights)
    if ends[-1] == 0:
        return None
    hash_value = murmur3_32(cbor2.dumps(["my-flag", key], canonical=True))
    return assign(hash_value, ends, [f"v{i}" for i in range(len(weights))])


@given(JSON, CONTEXTS, st.sampled_from([2, 3]))
def test_bad_input_never_raises(first: Any, data: dict[str, Any], version: int) -> None:
    for rule in (
        {"fractional": [first, ["a", 1], ["b", 1]]},
        {"fractional": [{"var": "email"}, [first, 1], ["b", first]]},
        {"fractional": [["a", first], ["b", 1]]},
        {"fractional": first},
    ):
        evaluate(rule, data, version=version)
