"""The bucketing mechanism: flagd's hash vectors, v3 CBOR encodings and split properties."""

from __future__ import annotations

import json
from bisect import bisect_right

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stageless.flags.bucketing import (
    MAX_TOTAL_WEIGHT,
    TooDeepError,
    assign,
    bucket_of,
    cbor_text,
    cumulative,
    deterministic_cbor,
    hash_thresholds,
    murmur3_32,
    v2_hash,
    v3_hash,
)

HASHES = st.integers(min_value=0, max_value=2**32 - 1)
WEIGHT_LISTS = st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=8).filter(
    lambda weights: sum(weights) > 0
)


def test_murmur3_matches_the_reference_vector() -> None:
    assert murmur3_32(b"hello") == 0x248BFA47
    assert v2_hash("hello") == 0x248BFA47


# fractional-hash-edge-flag: [{"var": "targetingKey"}, ["lower", 50], ["upper", 50]]
@pytest.mark.parametrize(
    ("key", "hash_value", "bucket", "variant"),
    [
        ("ejOoVL", 0x00000000, 0, "lower"),
        ("bY9fO-", 0x00000001, 0, "lower"),
        ("SI7p-", 0x7FFFFFFF, 49, "lower"),
        ("6LvT0", 0x80000000, 50, "upper"),
        ("ceQdGm", 0xFFFFFFFF, 99, "upper"),
    ],
)
def test_v2_hash_edge_vectors(key: str, hash_value: int, bucket: int, variant: str) -> None:
    assert v2_hash(key) == hash_value
    assert bucket_of(hash_value, 100) == bucket
    assert assign(hash_value, (50, 100), ("lower", "upper")) == variant


# fractional-flag: cat($flagd.flagKey, user.name), clubs/diamonds/hearts/spades, 25 each
@pytest.mark.parametrize(
    ("name", "hash_value", "bucket", "variant"),
    [
        ("jack", 2682799072, 62, "hearts"),
        ("queen", 4278517551, 99, "spades"),
        ("ten", 801845258, 18, "clubs"),
        ("nine", 1406129861, 32, "diamonds"),
        ("3", 604371928, 14, "clubs"),
    ],
)
def test_v2_fractional_flag_vectors(name: str, hash_value: int, bucket: int, variant: str) -> None:
    suits = ("clubs", "diamonds", "hearts", "spades")
    assert v2_hash("fractional-flag" + name) == hash_value
    assert bucket_of(hash_value, 100) == bucket
    assert assign(hash_value, cumulative([25, 25, 25, 25]), suits) == variant


def test_v2_hashes_lone_surrogates_as_the_replacement_character() -> None:
    assert v2_hash("a\ud800b") == v2_hash("a\ufffdb")
    assert cbor_text("a\ud800b") == cbor_text("a\ufffdb")


@pytest.mark.parametrize(
    ("value", "encoding"),
    [
        (123, "187b"),
        (1.23, "fb3ff3ae147ae147ae"),
        (0, "00"),
        (0.0, "00"),
        (-0.0, "00"),
        (1.0, "01"),
        (-2.0, "21"),
        (5.960464477539063e-08, "f90001"),
        (4294967296, "1b0000000100000000"),
        (1e20, "fb4415af1d78b58c40"),
        (True, "f5"),
        (False, "f4"),
        ("user1", "657573657231"),
        ("", "60"),
        (-(2**63), "3b7fffffffffffffff"),
        (2**64 - 1, "1bffffffffffffffff"),
        ({"z": 1, "aa": 2}, "a2617a0162616102"),
    ],
)
def test_v3_deterministic_cbor_vectors(value: object, encoding: str) -> None:
    assert deterministic_cbor(value) == bytes.fromhex(encoding)


@pytest.mark.parametrize("value", [None, [], [1, 2], ["a"], (), object()])
def test_v3_values_that_do_not_bucket(value: object) -> None:
    assert v3_hash(value) is None


def _bucket25(value: object) -> int:
    # fractional-basic-flag: bucket1 … bucket25, weight 4 each.
    hash_value = v3_hash(value)
    assert hash_value is not None
    return bisect_right(cumulative([4] * 25), bucket_of(hash_value, 100)) + 1


# The flagd-testbed v3 scenarios (gherkin/targeting.feature, fractional-basic-flag).
V3_SCALARS = [
    (True, 5),
    (False, 1),
    ("user1", 22),
    ("user2", 16),
    (123, 20),
    (456, 12),
    (1.23, 14),
    (4.56, 18),
    ("123", 22),
    ("true", 24),
    ("false", 1),
    ("null", 8),
    ("1.23", 4),
    (0, 8),
    (1.0, 23),
    (1, 23),
    (1.0000000000000001, 23),
    (-2.0, 12),
    (-2, 12),
    (9007199254740992.0, 10),
    (9007199254740992, 10),
    (0.0, 8),
    (-0.0, 8),
    (2147483647, 10),
    (2147483648, 25),
    (-2147483648, 8),
    (-2147483649, 18),
    (9007199254740991, 2),
    (23, 21),
    (24, 11),
    (255, 13),
    (256, 13),
    (65535, 4),
    (65536, 11),
    (4294967295, 14),
    (4294967296, 19),
    (-24, 4),
    (-25, 16),
    (1e20, 19),
    (-1e20, 25),
    (65504.0, 16),
    (-65504.0, 9),
    (0.00006103515625, 22),
    (0.000000059604644775390625, 23),
    (65505.0, 17),
    (-65505.0, 17),
    (3.4028234663852886e38, 10),
    (-3.4028234663852886e38, 3),
    (1.1754943508222875e-38, 24),
    (3.5e38, 1),
    (-3.5e38, 6),
    (1.7976931348623157e308, 17),
    (-1.7976931348623157e308, 9),
    (2.2250738585072014e-308, 11),
    (4.9406564584124654e-324, 2),
    ("", 4),
    ("a", 6),
    ("12345678901234567890123", 4),
    ("123456789012345678901234", 14),
    ("a" * 255, 18),
    ("a" * 256, 7),
    ("あいうえおかき", 17),
    ("あいうえおかきく", 16),
    ("é" * 11, 16),
    ("é" * 12, 19),
    ("café façade résumé café", 9),
    ("A\\u0000B", 15),  # the testbed's table holds these escapes as literal text
    ("e\\u0301", 7),
    ("\\uD83D\\uDE00", 23),
]


@pytest.mark.parametrize(("value", "bucket"), V3_SCALARS)
def test_v3_testbed_scalar_vectors(value: object, bucket: int) -> None:
    assert _bucket25(value) == bucket


V3_OBJECTS = [
    ('{"a": 1, "b": 2}', 23),
    ('{"b": 2, "a": 1}', 23),
    ('{"a": 1, "b": 2, "c": 3}', 18),
    ('{"c": 3, "a": 1, "b": 2}', 18),
    ('{"z": 1, "aa": 2}', 21),
    ('{"aa": 2, "z": 1}', 21),
    ('{"a": {"b": 1}, "b": 2}', 9),
    ('{"a": true, "bbb": 1, "c": "text", "dddd": 2.5}', 25),
    ('{"c": "text", "bbb": 1, "a": true, "dddd": 2.5}', 25),
    ('{"aaa": 1, "ÿ": 2}', 12),
    ('{"ÿ": 2, "aaa": 1}', 12),
    ('{"": 2, "abc": 1}', 25),
    ('{"key": -0.0}', 10),
    ('{"key": 0}', 10),
    ('{"key": 0.0}', 10),
    ('{"b": -0.0, "a": {"b": 1}, "c": 0.0}', 8),
    ('{"café": "façade", "b": {"résumé": {"ÿ": true}}}', 22),
    ("{}", 3),
    ('{"a": {} }', 20),
    ('{"b": 2, "a": {} }', 20),
    ('{"a": {}, "b": {}}', 21),
    ('{"a": {}, "b": []}', 7),
    ('{"c": 0.0, "a": []}', 18),
    ('{"c": 0.0, "b": -0.0, "a": {"b": []}}', 9),
    ('{"a": [] }', 12),
    ('{"a": [1, [], 3], "b": null}', 3),
    ('{"a": ["a", "b", {}], "b": [1, null, 2]}', 23),
    ('{"a": [1, "two", true, [], null]}', 23),
    ('{"a": [false, 2.5, ""], "b": [], "c": [{}], "c": null}', 15),
    ('{"x": [{"a": 1}, {"b": 2}, {"b": null}]}', 3),
    ('{"x": [{"a": {"b": []}}] }', 16),
    ('{"x": [{"a": {"b": null}}] }', 6),
    ('{"x": [{"a": {"b": {}}}] }', 2),
    ('{"": "", "": [], "": {}, "": null}', 25),
    ('{"": {"": ""}, "": ["", {"": ""}], "": {"": {"": ""}}}', 11),
    ('{"a": [[[[[]]]]] }', 15),
    ('{"a": [[[[null]]]] }', 7),
    ('{"a": {"b": {"c": {"d": {}}} } }', 21),
    ('{"a": {"b": {"c": {"d": null}} } }', 19),
]


@pytest.mark.parametrize(("document", "bucket"), V3_OBJECTS)
def test_v3_testbed_object_vectors(document: str, bucket: int) -> None:
    assert _bucket25(json.loads(document)) == bucket


def test_v3_refuses_objects_nested_too_deeply() -> None:
    value: dict[str, object] = {}
    for _ in range(10):
        value = {"a": value}
    assert v3_hash(value, max_depth=11) is not None
    with pytest.raises(TooDeepError):
        v3_hash(value, max_depth=10)


def test_v3_big_integers_are_bignums() -> None:
    assert deterministic_cbor(2**64) == cbor2.dumps(2**64, canonical=True)
    assert deterministic_cbor(-(2**63) - 1) == bytes.fromhex("3b8000000000000000")
    assert deterministic_cbor(2.0**64) == cbor2.dumps(2.0**64, canonical=True)  # stays a float


@given(st.text())
def test_text_encoding_matches_cbor2(text: str) -> None:
    assert cbor_text(text) == cbor2.dumps(text, canonical=True)


@given(st.integers(min_value=-(2**64), max_value=2**65))
def test_integer_encoding_matches_cbor2(number: int) -> None:
    assert deterministic_cbor(number) == cbor2.dumps(number, canonical=True)


@given(st.floats(allow_nan=False))
def test_integer_valued_floats_bucket_with_their_integer(number: float) -> None:
    if number.is_integer() and -(2**63) <= number <= 2**64 - 1:
        assert deterministic_cbor(number) == deterministic_cbor(int(number))
    else:
        assert deterministic_cbor(number) == cbor2.dumps(number, canonical=True)


@given(HASHES, st.integers(min_value=1, max_value=MAX_TOTAL_WEIGHT))
def test_bucket_is_always_within_the_total_weight(hash_value: int, total: int) -> None:
    assert 0 <= bucket_of(hash_value, total) < total


@given(st.text())
def test_bucketing_is_deterministic(key: str) -> None:
    assert v2_hash(key) == v2_hash(key)
    assert v3_hash(key) == v3_hash(key)


@given(HASHES, WEIGHT_LISTS)
def test_thresholds_agree_with_bucket_and_bisect(hash_value: int, weights: list[int]) -> None:
    ends = cumulative(weights)
    thresholds = hash_thresholds(ends)
    by_bucket = bisect_right(ends, bucket_of(hash_value, ends[-1]))
    assert bisect_right(thresholds, hash_value) == by_bucket
    # Exactly at every threshold the assignment changes, and not one hash before it.
    for index, threshold in enumerate(thresholds[:-1]):
        if 0 < threshold < 2**32:
            below = bisect_right(ends, bucket_of(threshold - 1, ends[-1]))
            assert below <= index < bisect_right(ends, bucket_of(threshold, ends[-1]))


@given(HASHES, WEIGHT_LISTS)
def test_assigned_variant_has_a_positive_weight(hash_value: int, weights: list[int]) -> None:
    index = assign(hash_value, cumulative(weights), range(len(weights)))
    assert weights[index] > 0


@given(HASHES, WEIGHT_LISTS, st.integers(min_value=0, max_value=10_000))
def test_raising_the_first_weight_keeps_its_users(
    hash_value: int, weights: list[int], extra: int
) -> None:
    before = assign(hash_value, cumulative(weights), range(len(weights)))
    raised = [weights[0] + extra, *weights[1:]]
    after = assign(hash_value, cumulative(raised), range(len(weights)))
    if before == 0:
        assert after == 0


@given(HASHES, st.integers(0, 10_000), st.integers(1, 10_000), st.integers(0, 10_000))
def test_with_two_variants_raising_the_first_only_moves_users_into_it(
    hash_value: int, first: int, second: int, extra: int
) -> None:
    before = assign(hash_value, cumulative([first, second]), (0, 1))
    after = assign(hash_value, cumulative([first + extra, second]), (0, 1))
    assert after == before or after == 0


def test_with_three_variants_raising_the_first_reshuffles_the_others() -> None:
    # Cumulative ranges shift right, so a user can move between variants 1 and 2: the reason
    # the docs tell users to grow a rollout from the first variant of a two-way split.
    ends_before, ends_after = cumulative([2, 1, 1]), cumulative([6, 1, 1])
    hash_value = 3 * 2**30  # 75 % of the hash space
    assert assign(hash_value, ends_before, "abc") == "c"
    assert assign(hash_value, ends_after, "abc") == "b"


@settings(max_examples=20)
@given(WEIGHT_LISTS.filter(lambda weights: len(weights) <= 5), st.text(max_size=8))
def test_shares_stay_close_to_the_weights(weights: list[int], salt: str) -> None:
    units = 20_000
    ends = cumulative(weights)
    counts = [0] * len(weights)
    for index in range(units):
        counts[assign(v2_hash(f"{salt}user-{index}"), ends, range(len(weights)))] += 1
    total = ends[-1]
    for weight, count in zip(weights, counts, strict=True):
        share = weight / total
        # Five standard deviations of a binomial share, plus one bucket of rounding.
        tolerance = 5 * (share * (1 - share) / units) ** 0.5 + 1 / total + 1e-9
        assert abs(count / units - share) <= tolerance
