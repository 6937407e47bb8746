"""From a parsed request head to an :class:`Exchange`: which service, route, version and class.

The decisions themselves are the pure core's (:mod:`stageless.routing`): the sticky split, the
signed routing token, the header hygiene. This module applies them to the bytes of one request
and writes the head that goes upstream: the end-to-end headers as they came, minus everything
that claims to be Stageless's (``x-stageless-*`` headers, the routing cookie, ``stageless.*``
baggage members), plus the proxy's own tags and the ``X-Forwarded-*`` headers.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from stageless.analysis.batch import TrafficClass, Version
from stageless.flags.bucketing import murmur3_32
from stageless.proxy.exchange import CANDIDATE, SHADOW, STABLE, USER, Exchange
from stageless.proxy.heads import (
    BadRequestError,
    read_request_head,
    request_front,
    request_head,
)
from stageless.proxy.runtime import STICKY_ADDRESS, STICKY_COOKIE
from stageless.routing import names
from stageless.routing.headers import cookie_value, sanitize_baggage, strip_cookie, tagged_baggage
from stageless.routing.tokens import verify_token

if TYPE_CHECKING:
    from stageless.proxy.connection import ClientConnection

_VERSION_HEADERS: Final = {
    Version.STABLE: b"X-Stageless-Version: stable\r\n",
    Version.CANDIDATE: b"X-Stageless-Version: candidate\r\n",
}
_SHADOW_CANDIDATE: Final = _VERSION_HEADERS[Version.CANDIDATE]
_SHADOW_STABLE: Final = _VERSION_HEADERS[Version.STABLE]
_TRAFFIC_HEADERS: Final = {
    c: b"X-Stageless-Traffic: %s\r\n" % c.value.encode() for c in TrafficClass
}
# A copy's tag lines when the request had no baggage (the usual case): one constant instead of
# a call into the interpreted routing package on every copied request.
_SHADOW_TAG_START: Final = _TRAFFIC_HEADERS[SHADOW] + b"Baggage: "
_SHADOW_TAGS: Final = _SHADOW_TAG_START + tagged_baggage(None, SHADOW) + b"\r\n"
# Read natively: an attribute of the (interpreted) names module is a dict lookup per read.
_ROUTE_HEADER: Final = names.ROUTE_HEADER
_ROUTE_COOKIE: Final = names.ROUTE_COOKIE
_COOKIE_ATTRIBUTES: Final = b"; Path=/; Max-Age=%d; HttpOnly; SameSite=Lax\r\n" % (
    names.STICKY_COOKIE_MAX_AGE_S
)


def route_request(conn: ClientConnection, method: bytes, http11: bool) -> Exchange:
    """Decide where the request whose head ``conn`` just parsed goes; raise BadRequestError."""
    worker = conn.worker
    runtime = worker.runtime
    head = read_request_head(conn.headers, http10=not http11)
    conn.body_chunked = head.chunked  # how on_body frames this request's body upstream
    service = runtime.service_for(head.host)
    if service is None:
        raise BadRequestError(404, "no service for this host")
    target = conn.url
    if not target.startswith(b"/"):
        target = _origin_form(target)
    path = path_of(target)
    route = service.route_for(path)

    token = None
    if head.stageless:
        for lname, value in head.stageless:
            if lname == _ROUTE_HEADER:
                token = value
    cookies = head.cookies
    route_cookie = False  # whether any Cookie header mentions the routing cookie
    for value in cookies:
        # partition before the call, not in (see stageless.routing.headers) nor find (see
        # cookie_key); most requests have no routing cookie: this spares them a Python call
        if value.partition(_ROUTE_COOKIE)[1]:
            route_cookie = True
            if token is None:
                token = cookie_value(value, _ROUTE_COOKIE)
    claims = None
    if token is not None and service.testers:
        claims = verify_token(token, runtime.keys, service=service.name, now=time.time())

    user: int | None = None
    set_cookie = b""
    if claims is not None:
        version = CANDIDATE
        tclass = claims.traffic_class
    else:
        tclass = USER
        key = _sticky_key(conn, service.sticky_kind, service.sticky_name, head.forward, cookies)
        if key is None:
            key = worker.new_key()
            set_cookie = b"Set-Cookie: %s=%s%s" % (service.sticky_name, key, _COOKIE_ATTRIBUTES)
        user = murmur3_32(service.hash_prefix + key)  # routing.split.sticky_hash's value
        version = CANDIDATE if user < service.threshold else STABLE
        if version is CANDIDATE and not service.candidate.available():
            version = STABLE

    # A line a piece, made by % (natively, compiled: see heads._front_parts)
    forwarded_for = head.forwarded_for + b", " + conn.peer if head.forwarded_for else conn.peer
    common = [b"X-Forwarded-For: %s\r\nX-Forwarded-Proto: http\r\n" % forwarded_for]
    if head.host:
        common.append(b"X-Forwarded-Host: %s\r\n" % head.host)
    for value in cookies:
        kept: bytes | None = value
        if route_cookie and value.partition(_ROUTE_COOKIE)[1]:
            kept = strip_cookie(value, _ROUTE_COOKIE)
        if kept:
            common.append(b"Cookie: %s\r\n" % kept)
    baggage = None
    if head.baggage:
        baggage = b", ".join(v for v in map(sanitize_baggage, head.baggage) if v) or None
    extra = [_VERSION_HEADERS[version], *common]
    if tclass is not USER:
        extra += (_TRAFFIC_HEADERS[tclass], b"Baggage: ", tagged_baggage(baggage, tclass), b"\r\n")
    elif baggage:
        extra += (b"Baggage: ", baggage, b"\r\n")
    shadowed = False
    if (
        service.shadow_share
        and version is STABLE
        and tclass is USER
        and method in route.shadow_methods
        and worker.draw() < service.shadow_share
    ):
        shadowed = True
    front = tail = b""
    if not shadowed:
        head_bytes = request_head(method, target, head, extra)
    else:
        # The three heads (the user's, the copy's, the second stable sample's) differ only in
        # their extra lines: their common front is built once.
        front = request_front(method, target, head)
        head_bytes = b"".join([front, *extra, b"\r\n"])
        if baggage is None:
            tags = [_SHADOW_TAGS, *common, b"\r\n"]
        else:
            tags = [_SHADOW_TAG_START, tagged_baggage(baggage, SHADOW), b"\r\n", *common, b"\r\n"]
        tail = b"".join(tags)

    series = route.series[version, tclass]
    exchange = Exchange(conn, service, route, version, tclass, series, method, head_bytes)
    exchange.user = user
    exchange.set_cookie = set_cookie
    exchange.expect_continue = head.expect_continue
    if shadowed:
        copy = b"".join((front, _SHADOW_CANDIDATE, tail))
        noise = b"".join((front, _SHADOW_STABLE, tail))
        worker.shadow.offer(exchange, route, path, method + b" " + target, copy, noise)
    return exchange


def _sticky_key(
    conn: ClientConnection,
    kind: int,
    name: bytes,
    forward: list[tuple[bytes, bytes]],
    cookies: Sequence[bytes],
) -> bytes | None:
    if kind == STICKY_COOKIE:
        for value in cookies:
            key = cookie_key(value, name)
            if key:
                return key
        return None
    if kind == STICKY_ADDRESS:
        return conn.peer
    for header, value in forward:
        if header.lower() == name:
            return value
    return conn.peer  # the header is missing: fall back to the client's address


_SEMICOLON: Final = 0x3B
_EQUALS: Final = 0x3D
_SPACE: Final = 0x20
_TAB: Final = 0x09
_QUOTE: Final = 0x22


def cookie_key(header: bytes, name: bytes) -> bytes | None:
    """:func:`stageless.routing.headers.cookie_value` for a ``name`` that is a token (as the
    configuration's cookie names are), read natively in the plain case.

    The plain case: the first mention of ``name`` starts a pair (the header's start, or after
    ``;`` or ``; ``), ``=`` follows it, and the value has no space, tab or quote at its ends.
    Then that value is the answer (no earlier pair can be called ``name``, and nothing is to be
    stripped or unquoted), found with two ``partition`` calls where the general reading makes
    about ten calls into CPython. ``partition`` and not ``find``: ``bytes.find`` takes its
    arguments as a tuple parsed by format (``PyArg_ParseTuple``), several hundred instructions
    more a call from compiled code, ``partition`` one argument directly (the two partitions
    and the routing cookie's saved about 850 instructions per request, callgrind). Any other
    header is read by ``cookie_value`` itself. tests/proxy/test_router.py checks that both
    give the same answer.
    """
    before, found, after = header.partition(name)
    if not found:
        return None
    at = len(before)
    if (
        after
        and after[0] == _EQUALS
        and (
            at == 0
            or before[at - 1] == _SEMICOLON
            or (at > 1 and before[at - 1] == _SPACE and before[at - 2] == _SEMICOLON)
        )
    ):
        value = after[1:].partition(b";")[0]
        if not value:
            return value
        first = value[0]
        last = value[len(value) - 1]
        if (
            first != _SPACE
            and first != _TAB
            and first != _QUOTE
            and last != _SPACE
            and last != _TAB
            and last != _QUOTE
        ):
            return value
    return cookie_value(header, name)


_QUESTION: Final = 0x3F


def path_of(target: bytes) -> bytes:
    """``target`` up to its first ``?``: a native scan for a target of up to 256 bytes, ``split``
    beyond (compiled, the scan of the bench's ``/api/items?page=1`` saved about 600 of the
    instructions ``split`` costs a request, callgrind; a long path costs the scan more)."""
    size = len(target)
    if size > 256:
        return target.split(b"?", 1)[0]
    index = 0
    while index < size and target[index] != _QUESTION:
        index += 1
    return target if index == size else target[:index]


def _origin_form(target: bytes) -> bytes:
    """``http://host/path?q`` -> ``/path?q`` (absolute-form, RFC 9112 section 3.2.2)."""
    if target == b"*":
        return target
    scheme_end = target.find(b"://")
    if scheme_end < 0:
        raise BadRequestError(400, "request target is neither a path nor an absolute URL")
    slash = target.find(b"/", scheme_end + 3)
    return target[slash:] if slash >= 0 else b"/"


__all__ = ["cookie_key", "route_request"]
