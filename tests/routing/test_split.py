"""The sticky split: thresholds, stickiness, monotonicity, shares, and equivalence with a flag."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stageless.flags import parse_flag_set
from stageless.flags.bucketing import bucket_of, murmur3_32
from stageless.routing import (
    SPLIT_UNITS,
    is_candidate,
    split_threshold,
    split_units,
    sticky_hash,
    sticky_prefix,
)

weights = st.integers(0, SPLIT_UNITS).map(lambda units: units / 1000)
services = st.text(min_size=1, max_size=20)
keys = st.text(max_size=40)
nonempty_keys = st.text(min_size=1, max_size=40)


def candidate_share(service: str, weight: float, users: list[str]) -> int:
    threshold = split_threshold(weight)
    return sum(is_candidate(sticky_hash(service, user), threshold) for user in users)


def test_thresholds_at_the_ends_and_in_between() -> None:
    assert split_threshold(0) == 0
    assert split_threshold(100) == 2**32
    assert split_threshold(50) == 2**31
    assert split_threshold(0.001) == math.ceil(2**32 / SPLIT_UNITS)
    assert split_threshold(5) == math.ceil(5_000 * 2**32 / SPLIT_UNITS)


@pytest.mark.parametrize(
    ("weight", "units"),
    [
        (0, 0),
        (0.001, 1),
        (0.1, 100),
        (5, 5_000),
        (12.345, 12_345),
        (99.999, 99_999),
        (100, 100_000),
    ],
)
def test_a_weight_counts_in_thousandths_of_a_percent(weight: float, units: int) -> None:
    assert split_units(weight) == units


@pytest.mark.parametrize(
    "weight", [-0.001, 100.001, math.nan, math.inf, -math.inf, True, "5", None]
)
def test_a_weight_outside_0_to_100_is_refused(weight: object) -> None:
    with pytest.raises(ValueError, match="weight"):
        split_threshold(weight)  # type: ignore[arg-type]


def test_a_key_of_another_type_is_refused() -> None:
    with pytest.raises(TypeError, match="str or bytes"):
        sticky_hash("checkout", 42)  # type: ignore[arg-type]


@given(services, keys, weights)
def test_a_user_does_not_flip_at_a_fixed_weight(service: str, key: str, weight: float) -> None:
    threshold = split_threshold(weight)
    first = is_candidate(sticky_hash(service, key), threshold)
    assert all(is_candidate(sticky_hash(service, key), threshold) is first for _ in range(3))
    assert 0 <= sticky_hash(service, key) < 2**32


@given(services, keys, weights, weights)
def test_raising_the_weight_only_adds_users(
    service: str, key: str, low: float, high: float
) -> None:
    low, high = sorted((low, high))
    assert split_threshold(low) <= split_threshold(high)
    hash_value = sticky_hash(service, key)
    if is_candidate(hash_value, split_threshold(low)):
        assert is_candidate(hash_value, split_threshold(high))


@given(services, keys)
def test_weight_0_takes_nobody_and_100_everybody(service: str, key: str) -> None:
    hash_value = sticky_hash(service, key)
    assert not is_candidate(hash_value, split_threshold(0))
    assert is_candidate(hash_value, split_threshold(100))


@given(services, st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=40))
def test_a_bytes_key_hashes_as_its_text(service: str, key: str) -> None:
    assert sticky_hash(service, key.encode()) == sticky_hash(service, key)


def test_the_hash_is_murmur3_of_service_then_key() -> None:
    # MurmurHash3 x86 32-bit, seed 0, of b"checkoutalice" (the reference implementation's value
    # is pinned by tests/flags/test_bucketing.py; this pins the concatenation order).
    assert sticky_hash("checkout", "alice") == murmur3_32(b"checkoutalice")
    assert sticky_hash("checkout", b"alice") == murmur3_32(b"checkoutalice")
    assert sticky_hash("other", "alice") != sticky_hash("checkout", "alice")


def test_a_service_name_with_a_lone_surrogate_still_hashes() -> None:
    # Impossible in a YAML or JSON configuration, but sticky_hash must not raise on it.
    assert sticky_hash("svc\udc80", b"key") == murmur3_32("svc\ufffd".encode() + b"key")
    assert sticky_hash("svc\udc80", "key") == sticky_hash("svc\ufffd", "key")


def binomial_bounds(count: int, share: float, sigmas: float = 6.0) -> tuple[float, float]:
    mean = count * share
    spread = sigmas * math.sqrt(count * share * (1 - share))
    return mean - spread - 1, mean + spread + 1


@given(st.integers(0, 2**64), st.sampled_from([0.1, 1, 5, 25, 50, 90, 99.9]))
def test_the_observed_share_is_within_binomial_bounds(seed: int, weight: float) -> None:
    rng = random.Random(seed)  # noqa: S311 (test data, not security)
    users = [f"{rng.getrandbits(128):032x}" for _ in range(4_000)]
    low, high = binomial_bounds(len(users), weight / 100)
    assert low <= candidate_share("checkout", weight, users) <= high


def test_the_share_of_many_sequential_user_ids_is_close_to_the_weight() -> None:
    users = [f"user-{i}" for i in range(50_000)]
    for weight in (0.5, 5, 33.333, 80):
        low, high = binomial_bounds(len(users), weight / 100)
        assert low <= candidate_share("checkout", weight, users) <= high, weight


# ---------------------------------------------------------------------------------------------
# Differential: the split is a flagd fractional flag keyed by the service
# ---------------------------------------------------------------------------------------------


def split_flag(service: str, units: int, *, explicit: bool) -> str | dict[str, object]:
    buckets = [["candidate", units], ["stable", SPLIT_UNITS - units]]
    if explicit:  # flagd's recommended form: bucket on flagKey + targetingKey spelt out
        unit = {"cat": [{"var": "$flagd.flagKey"}, {"var": "targetingKey"}]}
        targeting: dict[str, object] = {"fractional": [unit, *buckets]}
    else:  # the shorthand: no bucketing expression, flagKey + targetingKey implied
        targeting = {"fractional": buckets}
    return {
        "flags": {
            service: {
                "state": "ENABLED",
                "variants": {"candidate": "candidate", "stable": "stable"},
                "defaultVariant": "stable",
                "targeting": targeting,
            }
        }
    }


@given(services, nonempty_keys, weights, st.booleans())
def test_the_split_equals_a_fractional_flag(
    service: str, key: str, weight: float, explicit: bool
) -> None:
    flags = parse_flag_set(split_flag(service, split_units(weight), explicit=explicit))
    resolution = flags.evaluate(service, {"targetingKey": key})
    assert resolution.error_code is None, resolution
    expected = "candidate" if resolution.variant == "candidate" else "stable"
    ours = is_candidate(sticky_hash(service, key), split_threshold(weight))
    assert ("candidate" if ours else "stable") == expected


@given(services, st.lists(nonempty_keys, min_size=1, max_size=30, unique=True), weights)
def test_the_split_equals_the_flag_for_many_users_of_one_service(
    service: str, users: list[str], weight: float
) -> None:
    flags = parse_flag_set(split_flag(service, split_units(weight), explicit=False))
    threshold = split_threshold(weight)
    for user in users:
        variant = flags.evaluate(service, {"targetingKey": user}).variant
        assert (variant == "candidate") is is_candidate(sticky_hash(service, user), threshold)


def test_the_differential_sees_both_variants() -> None:
    # Guard against a vacuous differential: at 50 % both outcomes occur and still agree.
    flags = parse_flag_set(split_flag("checkout", 50_000, explicit=False))
    threshold = split_threshold(50)
    seen = set()
    for i in range(200):
        variant = flags.evaluate("checkout", {"targetingKey": f"u{i}"}).variant
        assert (variant == "candidate") is is_candidate(sticky_hash("checkout", f"u{i}"), threshold)
        seen.add(variant)
    assert seen == {"candidate", "stable"}


@given(st.integers(0, 2**32 - 1), st.integers(0, SPLIT_UNITS))
def test_the_threshold_is_flagds_bucket_rule(hash_value: int, units: int) -> None:
    # flagd: bucket = (h * W) >> 32, and the first variant gets the buckets below its weight.
    threshold = split_threshold(units / 1000)
    assert is_candidate(hash_value, threshold) is (bucket_of(hash_value, SPLIT_UNITS) < units)


@pytest.mark.parametrize("units", [1, 2, 3, 777, 5_000, 12_345, 33_333, 50_000, 99_999])
def test_the_threshold_sits_exactly_on_flagds_bucket_boundary(units: int) -> None:
    threshold = split_threshold(units / 1000)
    assert bucket_of(threshold - 1, SPLIT_UNITS) == units - 1
    assert bucket_of(threshold, SPLIT_UNITS) == units
    assert is_candidate(threshold - 1, threshold)
    assert not is_candidate(threshold, threshold)


@given(st.text(), st.binary())
def test_a_bytes_key_hashes_after_the_services_prefix(service: str, key: bytes) -> None:
    """What the proxy relies on to hash each request with one call."""
    assert sticky_hash(service, key) == murmur3_32(sticky_prefix(service) + key)
