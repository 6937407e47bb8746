"""HTTP/1.1 message heads: reading a request's headers once and writing the heads the proxy sends.

The proxy keeps headers as ``(name, value)`` byte pairs exactly as httptools hands them over
(the original case of the name), looks at each one once (:class:`RequestHead`), and writes the
upstream request head and the client response head as one ``bytes`` each. Hop-by-hop headers
(RFC 9110 section 7.6.1) never cross the proxy, nor do headers a ``Connection`` header names.
Written by hand because it is the hot path: one pass over the headers, no intermediate objects.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
_STAGELESS_PREFIX: Final = b"x-stageless-"


def _size_masks() -> tuple[int, ...]:
    masks = [0] * 128
    for name in (*_SPECIAL, *(_STAGELESS_PREFIX + b"?" * n for n in range(52))):
        masks[name[0]] |= 1 << len(name)
    return tuple(masks)


#: For each lower-case first letter (by its code), a bit per name length (up to 63) that a
#: header the proxy acts on can have: a header that matches no bit is forwarded without
#: lowering its name or looking it up (most are: Accept, User-Agent, Referer...).
_SPECIAL_SIZES: Final = _size_masks()


def _by_first() -> tuple[tuple[tuple[bytes, int], ...], ...]:
    table: list[list[tuple[bytes, int]]] = [[] for _ in range(256)]
    for name, kind in _SPECIAL.items():
        table[name[0]].append((name, kind))
    return tuple(tuple(entries) for entries in table)


#: ``_SPECIAL``'s names and kinds by the code of their first letter (0 to 255): a name is
#: matched against the few that share its first letter and its length, byte by byte in any
#: case, where ``lower()`` and a dictionary lookup cost about 550 instructions a header
#: (compiled: two calls into CPython and a hash of a new bytes object).
_SPECIAL_BY_FIRST: Final = _by_first()
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
    for header in headers:
        name, value = header
        size = len(name)
        first = name[0] | 0x20 if size else 0x80
        if size < 64 and first < 0x80 and not _SPECIAL_SIZES[first] >> size & 1:
            forward.append(header)
            continue
        kind = -1
        for candidate, candidate_kind in _SPECIAL_BY_FIRST[first]:
            if len(candidate) == size and _named(name, 0, candidate):
                kind = candidate_kind
                break
        if kind < 0:
            lname = name.lower()
            if lname.startswith(_STAGELESS_PREFIX):
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


#: Lower-case header-name starts that keep a response off the fast path (besides a second
#: ``Content-Length`` or a ``Connection`` other than ``keep-alive``), by their first letter.
_NOT_PLAIN: Final = {
    0x6B: (b"keep-alive:",),
    0x70: (b"proxy-",),
    0x74: (b"transfer-encoding:", b"te:", b"trailer:"),
    0x75: (b"upgrade:",),
}
_CR: Final = 0x0D
_COLON: Final = 0x3A
_SPACE: Final = 0x20
_TAB: Final = 0x09
_HYPHEN: Final = 0x2D
_ZERO: Final = 0x30
_NINE: Final = 0x39
_C: Final = 0x63


def plain_length(lines: list[bytes]) -> int:
    """The ``Content-Length`` of a response head that may pass as it came, else -1.

    ``lines`` is the head up to and including its last header's CRLF, split at LF (the status
    line first, an empty string last). It may pass when every line ends with CR, no line is
    folded, exactly one ``Content-Length`` holds a number, any ``Connection`` (one at most)
    says ``keep-alive``, and no other hop-by-hop header is there. The parser handles every
    other head.

    Part of :func:`read_plain_head`, the definition that ``_headscan.c`` follows line by line
    (the compiled hot path runs the C scan; the sources run this). Only the first byte of most
    lines is read.
    """
    status = lines[0]
    if not status or status[len(status) - 1] != _CR:
        return -1
    length = -1
    connection = False
    for index in range(1, len(lines) - 1):
        line = lines[index]
        size = len(line)
        if size < 2 or line[size - 1] != _CR:
            return -1  # a bare LF, or an empty line before the end
        first = line[0] | _SPACE
        if first == _C:
            # the usual spellings first: startswith and == of bytes are native, compiled
            if line.startswith(b"Content-Length:") or (
                size > 15 and line[14] == _COLON and _named(line, 0, b"content-length")
            ):
                if length >= 0:
                    return -1
                length = digits(line, 15, size - 1)
                if length < 0:
                    return -1
            elif line == b"Connection: keep-alive\r":
                if connection:
                    return -1
                connection = True
            elif size > 11 and line[10] == _COLON and _named(line, 0, b"connection"):
                if connection or not _is_value(line, 11, size - 1, b"keep-alive"):
                    return -1
                connection = True
        elif first == _SPACE or line[0] == _TAB:
            return -1  # obsolete line folding: the parser decides
        else:
            marks = _NOT_PLAIN.get(first)
            if marks is not None:
                for mark in marks:
                    if size > len(mark) and _named(line, 0, mark):
                        return -1
    return length


PlainHead = Callable[[bytes, int], tuple[int, int, int] | None]


def _scanner() -> PlainHead | None:
    """The C scan of ``_headscan.c``, built with the compiled hot path (:mod:`.native`); None
    when the sources run as they are."""
    try:
        from stageless.proxy._headscan import plain_head as scan
    except ImportError:
        return None
    return scan


_SCAN: Final = _scanner()


def plain_head(data: bytes, start: int) -> tuple[int, int, int] | None:
    """The head of the answer that begins at ``data[start]`` (``start`` >= 0), when it is plain
    and whole in ``data``: its status, where its body starts and the body's length; else None
    (the parser reads it).

    Plain: HTTP/1.1, a final status with a body (not 1xx, 204 or 304), and a head that
    :func:`plain_length` lets pass (one ``Content-Length``, the connection left open). The
    user's answers that are plain pass as they came (``Exchange._pass_head``), and a shadow
    copy's answer that is plain and whole is read without a parser (:func:`plain_answer`).

    With the compiled hot path this is the C scan of ``_headscan.c`` (about 6,300 instructions
    fewer per answer); without it, :func:`read_plain_head`, which defines the answer.
    """
    scan = _SCAN
    if scan is not None:
        return scan(data, start)
    return read_plain_head(data, start)


def read_plain_head(data: bytes, start: int) -> tuple[int, int, int] | None:
    """:func:`plain_head` written in Python: the reference the C scan is tested against."""
    if not data.startswith(b"HTTP/1.1 ", start):
        return None
    end = data.find(b"\r\n\r\n", start)
    if end < 0:
        return None
    status = digits(data, start + 9, start + 12)  # fewer than three digits give less than 100
    if status < 200 or status == 204 or status == 304:  # 1xx, no body
        return None
    length = plain_length(data[start : end + 2].split(b"\n"))
    if length < 0:
        return None
    return status, end + 4, length


def plain_answer(data: bytes, start: int) -> tuple[int, int, int] | None:
    """The answer that begins at ``data[start]``, when it is plain (:func:`plain_head`) and
    whole there, body and all: its status and where its body starts and ends (the head is
    ``data[start : body_start - 4]``, :func:`header_fields` reads it); else None.

    A shadow copy's answer is read so without a parser: copies are answered by one upstream
    (often back to back, pipelined) and only compared.
    """
    head = plain_head(data, start)
    if head is None:
        return None
    status, body_start, length = head
    if body_start + length > len(data):
        return None
    return status, body_start, body_start + length


def header_fields(lines: list[bytes]) -> list[tuple[bytes, bytes]]:
    """The header fields of a head that :func:`plain_length` let pass (``lines`` as it takes
    them), as httptools reports them: each name as sent, each value without the spaces and
    tabs before it (those after it stay). What ``shadow.Answer.fields`` makes of a head kept
    as it came (an answer read without the parser)."""
    fields: list[tuple[bytes, bytes]] = []
    for index in range(1, len(lines) - 1):
        line = lines[index]
        end = len(line) - 1  # the CR
        colon = line.find(b":", 0, end)
        if colon < 0:
            fields.append((line[:end], b""))
            continue
        start = colon + 1
        while start < end and (line[start] == _SPACE or line[start] == _TAB):
            start += 1
        fields.append((line[:colon], line[start:end]))
    return fields


def digits(data: bytes, start: int, end: int) -> int:
    """The decimal number in ``data[start:end]`` between optional spaces and tabs, else -1.

    At most 18 digits (any ``Content-Length`` fits); signs, other characters or no digits at
    all give -1.
    """
    start, end = _trimmed(data, start, end)
    if start == end or end - start > 18:
        return -1
    number = 0
    for index in range(start, end):
        byte = data[index]
        if byte < _ZERO or byte > _NINE:
            return -1
        number = number * 10 + (byte - _ZERO)
    return number


def _named(line: bytes, start: int, name: bytes) -> bool:
    """Whether ``line[start:]`` starts with ``name`` (lower-case letters, ``-``, ``:``), in any
    case. The caller has checked that ``line`` is long enough."""
    for index in range(len(name)):
        byte = line[start + index]
        want = name[index]
        if byte != want and (byte | _SPACE != want or want in (_HYPHEN, _COLON)):
            return False
    return True


def _is_value(line: bytes, start: int, end: int, word: bytes) -> bool:
    """Whether ``line[start:end]`` is ``word`` in any case, between optional spaces and tabs."""
    start, end = _trimmed(line, start, end)
    return end - start == len(word) and _named(line, start, word)


def _trimmed(data: bytes, start: int, end: int) -> tuple[int, int]:
    """``start`` and ``end`` moved past the spaces and tabs at either end of ``data[start:end]``."""
    while start < end and (data[start] == _SPACE or data[start] == _TAB):
        start += 1
    while end > start and (data[end - 1] == _SPACE or data[end - 1] == _TAB):
        end -= 1
    return start, end


def request_head(method: bytes, target: bytes, head: RequestHead, extra: list[bytes]) -> bytes:
    """The head sent upstream: always HTTP/1.1 and keep-alive, with the body framed as it came,
    and the header lines in the pieces of ``extra`` (joined with the rest, in one go)."""
    parts = _front_parts(method, target, head)
    parts.extend(extra)
    parts.append(b"\r\n")
    return b"".join(parts)


def request_front(method: bytes, target: bytes, head: RequestHead) -> bytes:
    """:func:`request_head` up to its ``extra`` lines: heads that differ only in those share
    it (a shadowed request's three)."""
    return b"".join(_front_parts(method, target, head))


def _front_parts(method: bytes, target: bytes, head: RequestHead) -> list[bytes]:
    # A line a piece, each made by %: compiled, ``b"..." % (x, y)`` of bytes is one native
    # concatenation (mypyc's CPyBytes_Build), cheaper than four pieces for the final join,
    # which takes each piece's buffer in CPython (about 100 instructions a piece).
    parts = [b"%s %s HTTP/1.1\r\n" % (method, target)]
    for name, value in head.forward:
        parts.append(b"%s: %s\r\n" % (name, value))
    if head.chunked:
        parts.append(b"Transfer-Encoding: chunked\r\n")
    elif head.content_length >= 0:
        parts += (b"Content-Length: ", str(head.content_length).encode(), b"\r\n")
    return parts


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
    "digits",
    "plain_head",
    "plain_length",
    "read_plain_head",
    "read_request_head",
    "request_front",
    "request_head",
    "simple_response",
    "status_line",
]
