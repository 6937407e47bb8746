"""The per-request routing decision: which version serves a request, as which traffic class,
and whether a copy of it goes to the candidate (shadowing).

Rules, in order:

1. A valid routing token for this service (already verified: :func:`~.tokens.verify_token`),
   when the service honours testers: the candidate, as the token's class (tester or
   synthetic). Test traffic is never shadowed.
2. Otherwise the sticky split (:mod:`.split`): the candidate for users whose sticky hash is
   below the threshold, else stable; class user.
3. A user request routed to stable is shadowed when its method is one the route allows and the
   uniform draw in [0, 1) the caller passes is below the shadow share. A user already on the
   candidate is not copied.

:class:`RoutingPolicy` holds everything that is fixed per service and route, computed once per
configuration; :func:`decide` allocates nothing: it returns one of a few shared
:class:`Decision` instances, which carry the header values the proxy sends upstream.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from stageless.analysis.batch import TrafficClass, Version
from stageless.routing.split import split_threshold
from stageless.routing.tokens import RoutingClaims

__all__ = [
    "SAFE_METHODS",
    "Decision",
    "RoutingPolicy",
    "decide",
    "routing_policy",
]

SAFE_METHODS = frozenset({b"GET", b"HEAD", b"OPTIONS"})
"""The methods shadowed unless a route opts others in."""


@dataclass(frozen=True, slots=True)
class RoutingPolicy:
    """A service's (or route's) routing, precomputed: build it with :func:`routing_policy`."""

    service: str
    threshold: int
    testers: bool
    shadow_fraction: float
    shadow_methods: frozenset[bytes]


def routing_policy(
    service: str,
    *,
    weight: float,
    testers: bool = True,
    shadow_share: float = 0.0,
    shadow_methods: Iterable[str | bytes] = SAFE_METHODS,
) -> RoutingPolicy:
    """The policy of a split at ``weight`` percent with ``shadow_share`` percent shadowed.

    Methods are upper-cased ASCII (``"get"`` and ``b"GET"`` are the same method).

    Raises:
        ValueError: a weight or share that is not a percentage from 0 to 100.
    """
    if type(shadow_share) is bool or not isinstance(shadow_share, int | float):
        raise ValueError(f"shadow share must be a number, got {shadow_share!r}")
    if not (math.isfinite(shadow_share) and 0 <= shadow_share <= 100):
        raise ValueError(f"shadow share is {shadow_share!r}; expected a percentage 0 to 100")
    methods = frozenset(
        (method.encode("ascii") if isinstance(method, str) else bytes(method)).upper()
        for method in shadow_methods
    )
    return RoutingPolicy(
        service=service,
        threshold=split_threshold(weight),
        testers=testers,
        shadow_fraction=shadow_share / 100,
        shadow_methods=methods,
    )


@dataclass(frozen=True, slots=True)
class Decision:
    """Where a request goes. ``version_value`` and ``traffic_value`` are the bytes of the
    ``x-stageless-version`` and ``x-stageless-traffic`` headers (``traffic_value`` is ``None``
    for user traffic, which is not tagged)."""

    version: Version
    traffic_class: TrafficClass
    shadow: bool
    version_value: bytes
    traffic_value: bytes | None


def _decision(version: Version, traffic_class: TrafficClass, *, shadow: bool) -> Decision:
    tag = None if traffic_class is TrafficClass.USER else traffic_class.value.encode()
    return Decision(version, traffic_class, shadow, version.value.encode(), tag)


STABLE_USER = _decision(Version.STABLE, TrafficClass.USER, shadow=False)
STABLE_USER_SHADOWED = _decision(Version.STABLE, TrafficClass.USER, shadow=True)
CANDIDATE_USER = _decision(Version.CANDIDATE, TrafficClass.USER, shadow=False)
CANDIDATE_TESTER = _decision(Version.CANDIDATE, TrafficClass.TESTER, shadow=False)
CANDIDATE_SYNTHETIC = _decision(Version.CANDIDATE, TrafficClass.SYNTHETIC, shadow=False)


def decide(
    policy: RoutingPolicy,
    hash_value: int,
    claims: RoutingClaims | None,
    method: bytes,
    draw: float,
) -> Decision:
    """Route one request (see the module docstring for the rules).

    Args:
        policy: the service's (or route's) policy.
        hash_value: the request's sticky hash (:func:`~.split.sticky_hash`).
        claims: the verified routing token, or ``None``; claims for another service are ignored.
        method: the request method as sent (upper-case bytes).
        draw: a uniform random number in [0, 1), used only for shadowing.
    """
    if claims is not None and policy.testers and claims.service == policy.service:
        if claims.traffic_class is TrafficClass.SYNTHETIC:
            return CANDIDATE_SYNTHETIC
        return CANDIDATE_TESTER
    if hash_value < policy.threshold:
        return CANDIDATE_USER
    if draw < policy.shadow_fraction and method in policy.shadow_methods:
        return STABLE_USER_SHADOWED
    return STABLE_USER
