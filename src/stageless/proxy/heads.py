"""HTTP/1.1 message heads: reading a request's headers once and writing the heads the proxy sends.

The proxy keeps headers as ``(name, value)`` byte pairs exactly as httptools hands them over
(the original case of the name), looks at each one once (:class:`RequestHead`), and writes the
upstream request head and the client response head as one ``bytes`` each. Hop-by-hop headers
(RFC 9110 section 7.6.1) never cross the proxy, nor do headers a ``Connection`` header names.
Written by hand because it is the hot path: one pass over the headers, no intermediate objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

Header = tuple[bytes, bytes]

#: Headers that belong to one connection, never forwarded (lower case).
HOP_BY_HOP: Final = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)

STATUS_REASONS: Final[dict[int, bytes]] = {
    100: b"Continue",
    200: b"OK",
    400: b"Bad Request",
    404: b"Not Found",
    408: b"Request Timeout",
    413: b"Content Too Large",
    417: b"Expectation Failed",
    431: b"Request Header Fields Too Large",
    501: b"Not Implemented",
    502: b"Bad Gateway",
    503: b"Service Unavailable",
    504: b"Gateway Timeout",
}

#: Headers the proxy itself sets on requests it forwards; incoming copies are dropped.
_FORWARDED: Final = frozenset({b"x-forwarded-proto", b"x-forwarded-host"})


class BadRequestError(Exception):
    """A request the proxy refuses to forward; ``status`` is the answer (400, 431, 501)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


_HOST: Final = 0
_LENGTH: Final = 1
_TE: Final = 2
_CONNECTION: Final = 3
_HOP: Final = 4
_COOKIE: Final = 5
_BAGGAGE: Final = 6
_XFF: Final = 7
_DROP: Final = 8
_EXPECT: Final = 9
#: Request headers the proxy acts on, by lower-case name; every other header is forwarded as is
#: (one dict lookup per header on the hot path).
_SPECIAL: Final = {
    b"host": _HOST,
    b"content-length": _LENGTH,
    b"transfer-encoding": _TE,
    b"connection": _CONNECTION,
    **dict.fromkeys(HOP_BY_HOP - {b"connection", b"transfer-encoding"}, _HOP),
    b"cookie": _COOKIE,
    b"baggage": _BAGGAGE,
    b"x-forwarded-for": _XFF,
    b"x-forwarded-proto": _DROP,
    b"x-forwarded-host": _DROP,
    b"expect": _EXPECT,
}
_NO_VALUES: Final[tuple[bytes, ...]] = ()
_NO_HEADERS: Final[tuple[Header, ...]] = ()


class RequestHead:
    """What the proxy needs from a request's headers, found in one pass.

    ``forward`` holds the end-to-end headers that go upstream as they came; the ``Cookie`` and
    ``baggage`` values (``cookies``, ``baggage``) and incoming ``x-stageless-*`` headers
    (``stageless``, lower-case names) are kept apart for the caller to clean and re-add.
    """

    __slots__ = (
        "baggage",
        "chunked",
        "close",
        "content_length",
        "cookies",
        "expect_continue",
        "forward",
        "forwarded_for",
        "host",
        "keep_alive",
        "stageless",
    )

    def __init__(self) -> None:
        self.host = b""
        self.content_length = -1
        self.chunked = False
        self.close = False
        self.keep_alive = False
        self.expect_continue = False
        self.forwarded_for = b""
        self.cookies: Sequence[bytes] = _NO_VALUES
        self.baggage: Sequence[bytes] = _NO_VALUES
        self.stageless: Sequence[Header] = _NO_HEADERS
        self.forward: list[Header] = []


def read_request_head(headers: Sequence[Header], *, http10: bool) -> RequestHead:
    """Sort a request's headers into what the proxy acts on and what it forwards.

    Raises :class:`BadRequestError` for framing that could be read two ways. httptools (llhttp,
    strict mode) already rejects ``Content-Length`` beside ``Transfer-Encoding`` and duplicate
    ``Content-Length`` headers; this adds the transfer codings the proxy cannot frame.
    """
    head = RequestHead()
    connection_tokens: list[bytes] = []
    forward = head.forward
    special = _SPECIAL
    for header in headers:
        name, value = header
        lname = name.lower()
        kind = special.get(lname)
        if kind is None:
            if lname.startswith(b"x-stageless-"):
                if not head.stageless:
                    head.stageless = []
                head.stageless.append((lname, value))  # type: ignore[attr-defined]
            else:
                forward.append(header)
        elif kind == _HOST:
            if head.host:
                raise BadRequestError(400, "more than one Host header")
            head.host = value
            forward.append(header)
        elif kind == _LENGTH:
            if not value.isdigit() or len(value) > 18:
                raise BadRequestError(400, "Content-Length is not a number")
            head.content_length = int(value)
        elif kind == _TE:
            if http10:
                raise BadRequestError(400, "Transfer-Encoding in an HTTP/1.0 request")
            if value.strip().lower() != b"chunked" or head.chunked:
                raise BadRequestError(501, "only Transfer-Encoding: chunked is supported")
            head.chunked = True
        elif kind == _CONNECTION:
            connection_tokens.extend(t.strip().lower() for t in value.split(b","))
        elif kind == _COOKIE:
            if not head.cookies:
                head.cookies = []
            head.cookies.append(value)  # type: ignore[attr-defined]
        elif kind == _BAGGAGE:
            if not head.baggage:
                head.baggage = []
            head.baggage.append(value)  # type: ignore[attr-defined]
        elif kind == _XFF:
            head.forwarded_for = (
                value if not head.forwarded_for else head.forwarded_for + b", " + value
            )
        elif kind == _EXPECT:
            if value.strip().lower() == b"100-continue":
                head.expect_continue = True
            else:
                raise BadRequestError(417, "only Expect: 100-continue is supported")
        # _HOP and _DROP: never forwarded
    if connection_tokens:
        head.close = b"close" in connection_tokens
        head.keep_alive = b"keep-alive" in connection_tokens
        named = {t for t in connection_tokens if t not in (b"close", b"keep-alive")}
        if named:
            head.forward[:] = [(n, v) for n, v in head.forward if n.lower() not in named]
    if not head.host and not http10:
        raise BadRequestError(400, "HTTP/1.1 request without a Host header")
    return head


def request_head(method: bytes, target: bytes, head: RequestHead, extra: bytes) -> bytes:
    """The head sent upstream: always HTTP/1.1 and keep-alive, with the body framed as it came."""
    parts = [method, b" ", target, b" HTTP/1.1\r\n"]
    for name, value in head.forward:
        parts += (name, b": ", value, b"\r\n")
    if head.chunked:
        parts.append(b"Transfer-Encoding: chunked\r\n")
    elif head.content_length >= 0:
        parts += (b"Content-Length: ", str(head.content_length).encode(), b"\r\n")
    parts += (extra, b"\r\n")
    return b"".join(parts)


def status_line(status: int) -> bytes:
    return b"HTTP/1.1 %d %s\r\n" % (status, STATUS_REASONS.get(status, b"Unknown"))


def simple_response(status: int, detail: str, *, close: bool) -> bytes:
    """A short plain-text answer the proxy gives itself (400, 502, 504...)."""
    body = detail.encode() + b"\n"
    return b"".join(
        (
            status_line(status),
            b"Content-Type: text/plain; charset=utf-8\r\n",
            b"Content-Length: %d\r\n" % len(body),
            b"Connection: close\r\n" if close else b"",
            b"\r\n",
            body,
        )
    )


def chunk(data: bytes) -> bytes:
    """``data`` as one chunk of a chunked body."""
    return b"%x\r\n%s\r\n" % (len(data), data)


LAST_CHUNK: Final = b"0\r\n\r\n"


__all__ = [
    "HOP_BY_HOP",
    "LAST_CHUNK",
    "BadRequestError",
    "Header",
    "RequestHead",
    "chunk",
    "read_request_head",
    "request_head",
    "simple_response",
    "status_line",
]
