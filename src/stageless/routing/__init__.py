"""Routing for the proxy (pure): the sticky split, signed routing tokens, header hygiene and the
per-request decision. No I/O here: the proxy (``stageless.proxy``) reads the wire, draws random
numbers and keeps time, and passes them in. See docs/routing.md.
"""

from stageless.routing.decision import (
    SAFE_METHODS,
    Decision,
    RoutingPolicy,
    decide,
    routing_policy,
)
from stageless.routing.headers import (
    Headers,
    cookie_value,
    request_cookie,
    sanitize_baggage,
    sanitize_request_headers,
    sticky_key,
    sticky_key_cookie,
    strip_cookie,
    tagged_baggage,
)
from stageless.routing.split import (
    SPLIT_UNITS,
    is_candidate,
    split_threshold,
    split_units,
    sticky_hash,
    sticky_prefix,
)
from stageless.routing.tokens import (
    MAX_TOKEN_BYTES,
    MIN_SECRET_BYTES,
    RoutingClaims,
    SigningKey,
    TokenProblem,
    issue_token,
    verification_keys,
    verify_token,
    verify_token_detail,
)

__all__ = [
    "MAX_TOKEN_BYTES",
    "MIN_SECRET_BYTES",
    "SAFE_METHODS",
    "SPLIT_UNITS",
    "Decision",
    "Headers",
    "RoutingClaims",
    "RoutingPolicy",
    "SigningKey",
    "TokenProblem",
    "cookie_value",
    "decide",
    "is_candidate",
    "issue_token",
    "request_cookie",
    "routing_policy",
    "sanitize_baggage",
    "sanitize_request_headers",
    "split_threshold",
    "split_units",
    "sticky_hash",
    "sticky_key",
    "sticky_key_cookie",
    "sticky_prefix",
    "strip_cookie",
    "tagged_baggage",
    "verification_keys",
    "verify_token",
    "verify_token_detail",
]
