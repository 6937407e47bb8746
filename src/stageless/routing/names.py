"""Wire names of the proxy's routing: headers, cookies and baggage keys, all as bytes.

The proxy keeps header names lower-cased as ``bytes``; these constants are in that form. Every
incoming header whose name starts with :data:`HEADER_PREFIX`, the :data:`ROUTE_COOKIE` cookie and
every baggage member whose key starts with :data:`BAGGAGE_PREFIX` are stripped before any
upstream sees a request; the proxy then adds its own (:data:`TRAFFIC_HEADER`,
:data:`VERSION_HEADER`, :data:`BAGGAGE_TRAFFIC_KEY`).
"""

from __future__ import annotations

HEADER_PREFIX = b"x-stageless-"
"""Every incoming header with this (lower-cased) name prefix is removed."""

ROUTE_HEADER = b"x-stageless-route"
"""Request header carrying a signed routing token (looked at before the cookie)."""

ROUTE_COOKIE = b"stageless-route"
"""Cookie carrying a signed routing token."""

TRAFFIC_HEADER = b"x-stageless-traffic"
"""Header the proxy adds for upstreams: ``tester``, ``synthetic`` or ``shadow``."""

VERSION_HEADER = b"x-stageless-version"
"""Header the proxy adds for upstreams: ``stable`` or ``candidate``."""

BAGGAGE_HEADER = b"baggage"
"""The W3C baggage header."""

BAGGAGE_PREFIX = b"stageless."
"""Baggage members whose key starts with this (case-insensitively) are removed."""

BAGGAGE_TRAFFIC_KEY = b"stageless.traffic"
"""Baggage key the proxy adds to tagged requests, with the traffic class as value."""

COOKIE_HEADER = b"cookie"
SET_COOKIE_HEADER = b"set-cookie"

DEFAULT_STICKY_COOKIE = b"stageless-key"
"""Default cookie holding a user's sticky key (22 URL-safe characters, set on a first visit)."""

STICKY_COOKIE_MAX_AGE_S = 31_536_000
"""Lifetime of the sticky-key cookie: one year."""

STICKY_KEY_ENTROPY_BYTES = 16
"""Random bytes behind a new sticky key (22 characters of URL-safe base64)."""

TOKEN_PREFIX = "st1"  # noqa: S105 (the format's name, not a secret)
"""First dot-separated part of a routing token: the format's name and version."""

__all__ = [
    "BAGGAGE_HEADER",
    "BAGGAGE_PREFIX",
    "BAGGAGE_TRAFFIC_KEY",
    "COOKIE_HEADER",
    "DEFAULT_STICKY_COOKIE",
    "HEADER_PREFIX",
    "ROUTE_COOKIE",
    "ROUTE_HEADER",
    "SET_COOKIE_HEADER",
    "STICKY_COOKIE_MAX_AGE_S",
    "STICKY_KEY_ENTROPY_BYTES",
    "TOKEN_PREFIX",
    "TRAFFIC_HEADER",
    "VERSION_HEADER",
]
