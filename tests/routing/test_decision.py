"""The per-request decision: testers, the split, shadowing, and shared results."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stageless.analysis.batch import TrafficClass, Version
from stageless.routing import (
    SAFE_METHODS,
    Decision,
    RoutingClaims,
    decide,
    routing_policy,
    split_threshold,
)
from stageless.routing.decision import (
    CANDIDATE_SYNTHETIC,
    CANDIDATE_TESTER,
    CANDIDATE_USER,
    STABLE_USER,
    STABLE_USER_SHADOWED,
)

BELOW = 0  # a sticky hash every positive weight sends to the candidate
ABOVE = 2**32 - 1  # a sticky hash only a weight of 100 sends to the candidate


def claims(traffic_class: TrafficClass, service: str = "checkout") -> RoutingClaims:
    return RoutingClaims(
        service=service,
        traffic_class=traffic_class,
        subject="alice",
        issued_at=0,
        expires_at=10,
        key_id="k1",
    )


SHARED = (CANDIDATE_SYNTHETIC, CANDIDATE_TESTER, CANDIDATE_USER, STABLE_USER, STABLE_USER_SHADOWED)
TESTER = claims(TrafficClass.TESTER)
SYNTHETIC = claims(TrafficClass.SYNTHETIC)

hashes = st.integers(0, 2**32 - 1)
draws = st.floats(0, 1, exclude_max=True)
weights = st.integers(0, 100_000).map(lambda units: units / 1000)
shares = st.integers(0, 100)
methods = st.sampled_from([b"GET", b"HEAD", b"OPTIONS", b"POST", b"PUT", b"DELETE", b"PATCH"])
tokens = st.sampled_from([None, TESTER, SYNTHETIC, claims(TrafficClass.TESTER, "search")])


def test_a_tester_goes_to_the_candidate_whatever_the_weight() -> None:
    policy = routing_policy("checkout", weight=0, shadow_share=100)
    decision = decide(policy, ABOVE, TESTER, b"GET", 0.0)
    assert (decision.version, decision.traffic_class, decision.shadow) == (
        Version.CANDIDATE,
        TrafficClass.TESTER,
        False,
    )
    assert decide(policy, ABOVE, SYNTHETIC, b"GET", 0.0).traffic_class is TrafficClass.SYNTHETIC


def test_tokens_are_ignored_where_testers_are_off() -> None:
    policy = routing_policy("checkout", weight=0, testers=False)
    decision = decide(policy, ABOVE, TESTER, b"GET", 0.5)
    assert (decision.version, decision.traffic_class) == (Version.STABLE, TrafficClass.USER)


def test_claims_for_another_service_are_ignored() -> None:
    policy = routing_policy("checkout", weight=0)
    decision = decide(policy, ABOVE, claims(TrafficClass.TESTER, "search"), b"GET", 0.5)
    assert (decision.version, decision.traffic_class) == (Version.STABLE, TrafficClass.USER)


def test_users_follow_the_split() -> None:
    policy = routing_policy("checkout", weight=5)
    threshold = split_threshold(5)
    assert decide(policy, threshold - 1, None, b"GET", 0.5).version is Version.CANDIDATE
    assert decide(policy, threshold, None, b"GET", 0.5).version is Version.STABLE
    assert decide(policy, threshold - 1, None, b"GET", 0.5).traffic_class is TrafficClass.USER


@pytest.mark.parametrize(
    ("method", "draw", "share", "shadowed"),
    [
        (b"GET", 0.0, 10, True),
        (b"GET", 0.0999, 10, True),
        (b"GET", 0.1, 10, False),
        (b"HEAD", 0.5, 100, True),
        (b"OPTIONS", 0.999999, 100, True),
        (b"POST", 0.0, 100, False),
        (b"GET", 0.0, 0, False),
        (b"get", 0.0, 100, False),  # methods are case-sensitive on the wire
    ],
)
def test_shadowing_on_stable(method: bytes, draw: float, share: float, shadowed: bool) -> None:
    policy = routing_policy("checkout", weight=0, shadow_share=share)
    decision = decide(policy, ABOVE, None, method, draw)
    assert decision.version is Version.STABLE
    assert decision.shadow is shadowed


def test_a_route_can_opt_other_methods_in() -> None:
    policy = routing_policy("checkout", weight=0, shadow_share=100, shadow_methods=["get", "POST"])
    assert policy.shadow_methods == frozenset({b"GET", b"POST"})
    assert decide(policy, ABOVE, None, b"POST", 0.5).shadow
    assert not decide(policy, ABOVE, None, b"HEAD", 0.5).shadow


def test_a_user_on_the_candidate_is_not_shadowed() -> None:
    policy = routing_policy("checkout", weight=100, shadow_share=100)
    decision = decide(policy, ABOVE, None, b"GET", 0.0)
    assert decision.version is Version.CANDIDATE
    assert not decision.shadow


def test_decisions_carry_their_header_values() -> None:
    policy = routing_policy("checkout", weight=50, shadow_share=100)
    tester = decide(policy, ABOVE, TESTER, b"GET", 0.0)
    assert (tester.version_value, tester.traffic_value) == (b"candidate", b"tester")
    synthetic = decide(policy, ABOVE, SYNTHETIC, b"GET", 0.0)
    assert (synthetic.version_value, synthetic.traffic_value) == (b"candidate", b"synthetic")
    user = decide(policy, ABOVE, None, b"GET", 0.0)
    assert (user.version_value, user.traffic_value, user.shadow) == (b"stable", None, True)


@pytest.mark.parametrize(
    ("weight", "share", "message"),
    [
        (101, 0, "weight"),
        (-1, 0, "weight"),
        (5, 100.5, "shadow share"),
        (5, -1, "shadow share"),
        (5, float("nan"), "shadow share"),
        (5, True, "shadow share"),
    ],
)
def test_a_bad_policy_is_refused(weight: float, share: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        routing_policy("checkout", weight=weight, shadow_share=share)


def test_the_default_shadow_methods_are_the_safe_ones() -> None:
    assert routing_policy("checkout", weight=1).shadow_methods == SAFE_METHODS
    assert routing_policy("checkout", weight=1).shadow_fraction == 0.0


@given(hashes, tokens, methods, draws, weights, shares, st.booleans())
def test_the_rules_hold_for_every_request(
    hash_value: int,
    token: RoutingClaims | None,
    method: bytes,
    draw: float,
    weight: float,
    share: int,
    testers: bool,
) -> None:
    policy = routing_policy("checkout", weight=weight, testers=testers, shadow_share=share)
    decision = decide(policy, hash_value, token, method, draw)
    assert isinstance(decision, Decision)
    honoured = token is not None and testers and token.service == "checkout"
    if honoured:
        assert token is not None
        assert decision.version is Version.CANDIDATE
        assert decision.traffic_class is token.traffic_class
        assert not decision.shadow
        return
    assert decision.traffic_class is TrafficClass.USER
    on_candidate = hash_value < split_threshold(weight)
    assert decision.version is (Version.CANDIDATE if on_candidate else Version.STABLE)
    expected_shadow = not on_candidate and method in SAFE_METHODS and draw < share / 100
    assert decision.shadow is expected_shadow
    # the same inputs always give the very same (shared) result
    assert decide(policy, hash_value, token, method, draw) is decision


@given(hashes, tokens, methods, draws, weights, shares)
def test_decide_allocates_nothing_it_returns_shared_results(
    hash_value: int,
    token: RoutingClaims | None,
    method: bytes,
    draw: float,
    weight: float,
    share: int,
) -> None:
    policy = routing_policy("checkout", weight=weight, shadow_share=share)
    decision = decide(policy, hash_value, token, method, draw)
    assert any(decision is shared for shared in SHARED)
