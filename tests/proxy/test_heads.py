"""Which response heads the fast path forwards as they came (:func:`plain_head`).

The end-to-end behaviour (the client gets what the parser path would give it) is in
test_fastpath.py; this pins the head check itself, against a reference reading of the headers.
"""

from __future__ import annotations

import httptools
import pytest
from hypothesis import given
from hypothesis import strategies as st

from stageless.proxy.heads import (
    digits,
    header_fields,
    plain_answer,
    plain_head,
    read_request_head,
)

STATUS = b"HTTP/1.1 200 OK\r\n"
ANOTHER = b"HTTP/1.1 204 No Content\r\n\r\n"


def check(headers: bytes, status: bytes = STATUS) -> int:
    """The length ``plain_head`` finds in a head given as its header lines (each with its
    CRLF), else -1; the same at the start of the data and behind another answer (pipelined
    answers are read at an offset), which must agree."""
    head = status + headers + b"\r\n"
    found = plain_head(head, 0)
    behind = plain_head(ANOTHER + head, len(ANOTHER))
    if found is None:
        assert behind is None
        return -1
    assert behind == (found[0], found[1] + len(ANOTHER), found[2])
    assert found[:2] == (200, len(head))
    return found[2]


@pytest.mark.parametrize(
    ("headers", "length"),
    [
        (b"Content-Length: 5\r\n", 5),
        (b"content-length:5\r\n", 5),
        (b"CONTENT-LENGTH:  12 \r\n", 12),
        (b"Content-Type: text/plain\r\nContent-Length: 0\r\nDate: today\r\n", 0),
        (b"Connection: keep-alive\r\nContent-Length: 2\r\n", 2),
        (b"Content-Length: 2\r\nCONNECTION: Keep-Alive\r\n", 2),
        (b"Teapot: 1\r\nTrailers-Sent: no\r\nProxyish: 1\r\nContent-Length: 2\r\n", 2),
        (b"Upgraded: 1\r\nKeep-Alive-Hint: 1\r\nContent-Length: 2\r\n", 2),
    ],
)
def test_plain_heads_give_their_length(headers: bytes, length: int) -> None:
    assert check(headers) == length


@pytest.mark.parametrize(
    "headers",
    [
        b"",  # no Content-Length: close-delimited or chunked, the parser frames it
        b"Content-Length: 5\r\nContent-Length: 5\r\n",
        b"Content-Length: five\r\n",
        b"Content-Length: -5\r\n",
        b"Content-Length: 1234567890123456789\r\n",
        b"Content-Length : 5\r\n",
        b"Content-Length: 5\r\nConnection: close\r\n",
        b"Content-Length: 5\r\nConnection: keep-alive, X-Private\r\n",
        b"Content-Length: 5\r\nConnection: keep-alive\r\nConnection: keep-alive\r\n",
        b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
        b"Content-Length: 5\r\nkeep-alive: timeout=5\r\n",
        b"Content-Length: 5\r\nProxy-Authenticate: Basic\r\n",
        b"Content-Length: 5\r\nTE: trailers\r\n",
        b"Content-Length: 5\r\nTrailer: X-Sum\r\n",
        b"Content-Length: 5\r\nUpgrade: h2c\r\n",
        b"X-One: 1\nContent-Length: 5\r\n",  # a bare LF
        b"X-One: 1\r\n Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",  # folded
        b"X-One: 1\r\n\tmore\r\nContent-Length: 5\r\n",
        b"X-One: 1\r\n\r\nContent-Length: 5\r\n",  # an empty line inside
        b"Content-Length: 5\r\nConnection:abc:\r\n",  # its colon where Content-Length has its
        b"Content-Length: 5\r\nX-One: 1\n\r\n",  # a bare LF ending the last header
    ],
)
def test_heads_the_parser_must_read(headers: bytes) -> None:
    assert check(headers) == -1


def test_a_status_line_ending_in_a_bare_lf_goes_to_the_parser() -> None:
    assert check(b"Content-Length: 5\r\n", status=b"HTTP/1.1 200 OK\n") == -1


@pytest.mark.parametrize(
    "status",
    [
        b"HTTP/1.0 200 OK\r\n",
        b"http/1.1 200 OK\r\n",
        b"HTTP\x0f1.1 200 OK\r\n",  # a byte that differs from / only in the case bit
        b"HTTP/1.1 100 Continue\r\n",
        b"HTTP/1.1 204 No Content\r\n",
        b"HTTP/1.1 304 Not Modified\r\n",
        b"HTTP/1.1 20 OK\r\n",
        b"HTTP/1.1 2x0 OK\r\n",
    ],
)
def test_other_status_lines_go_to_the_parser(status: bytes) -> None:
    assert check(b"Content-Length: 5\r\n", status=status) == -1


@pytest.mark.parametrize("cut", range(len(STATUS) + 21))
def test_a_head_not_yet_whole_goes_to_the_parser(cut: int) -> None:
    head = STATUS + b"Content-Length: 5\r\n\r\n"
    assert plain_head(head, 0) == (200, len(head), 5)
    assert plain_head(head[:cut], 0) is None
    assert plain_head(ANOTHER + head[:cut], len(ANOTHER)) is None


NAMES = [
    b"content-length",
    b"connection",
    b"content-type",
    b"transfer-encoding",
    b"keep-alive",
    b"proxy-connection",
    b"te",
    b"trailer",
    b"upgrade",
    b"teapot",
    b"date",
    b"x-trace",
]
VALUES = [b"5", b"0", b"17", b"keep-alive", b"close", b"chunked", b"x", b"", b"keep-alive, x"]
NOT_PLAIN = {b"transfer-encoding", b"keep-alive", b"te", b"trailer", b"upgrade"}


def recased(name: bytes, flips: list[bool]) -> bytes:
    return bytes(
        c ^ 0x20 if flip and chr(c).isalpha() else c for c, flip in zip(name, flips, strict=False)
    )


def reference(headers: list[tuple[bytes, bytes]]) -> int:
    """The rule, read header by header: one numeric length, keep-alive at most, no other hop."""
    lengths = [v for n, v in headers if n.lower() == b"content-length"]
    connections = [v for n, v in headers if n.lower() == b"connection"]
    if len(lengths) != 1 or not lengths[0].isdigit() or len(connections) > 1:
        return -1
    if connections and connections[0].lower() != b"keep-alive":
        return -1
    if any(n.lower() in NOT_PLAIN or n.lower().startswith(b"proxy-") for n, _ in headers):
        return -1
    return int(lengths[0])


header = st.tuples(st.sampled_from(NAMES), st.lists(st.booleans(), min_size=20, max_size=20)).map(
    lambda pair: recased(*pair)
)


@given(st.lists(st.tuples(header, st.sampled_from(VALUES)), max_size=8))
def test_the_check_agrees_with_reading_header_by_header(
    headers: list[tuple[bytes, bytes]],
) -> None:
    raw = b"".join(name + b": " + value + b"\r\n" for name, value in headers)
    assert check(raw) == reference(headers)


class _Fields:
    def __init__(self) -> None:
        self.fields: list[tuple[bytes, bytes]] = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self.fields.append((name, value))


FIELD_NAMES = st.sampled_from([b"Date", b"content-type", b"X-Trace", b"ETag", b"Server", b"a"])
FIELD_VALUES = st.lists(st.sampled_from([b"a", b"b c", b" ", b"\t", b"1", b"/", b":"]), max_size=5)


@given(st.lists(st.tuples(FIELD_NAMES, FIELD_VALUES.map(b"".join)), max_size=6))
def test_header_fields_are_what_httptools_reports(headers: list[tuple[bytes, bytes]]) -> None:
    head = b"HTTP/1.1 200 OK\r\n" + b"".join(n + b":" + v + b"\r\n" for n, v in headers)
    head += b"Content-Length: 0\r\n"
    lines = head.split(b"\n")
    assert plain_head(head + b"\r\n", 0) == (200, len(head) + 2, 0)
    parsed = _Fields()
    httptools.HttpResponseParser(parsed).feed_data(head + b"\r\n")
    assert header_fields(lines) == parsed.fields


@given(
    st.integers(0, 10**18 - 1),
    st.sampled_from([b"", b" ", b"\t", b"  \t"]),
    st.sampled_from([b"", b" ", b"\t "]),
)
def test_digits_reads_a_number_between_spaces(number: int, before: bytes, after: bytes) -> None:
    data = b"x:" + before + str(number).encode() + after + b"\r"
    assert digits(data, 2, len(data) - 1) == number


@pytest.mark.parametrize(
    "text", [b"", b"  ", b"+5", b"-5", b"5 5", b"0x5", b"5.0", b"1" * 19, b"\xd9\xa3", b"5\x0b"]
)
def test_digits_refuses_anything_but_a_plain_number(text: bytes) -> None:
    assert digits(text, 0, len(text)) == -1


def test_digits_reads_only_its_window() -> None:
    assert digits(b"HTTP/1.1 200 OK", 9, 12) == 200
    assert digits(b"HTTP/1.1 20 OK", 9, 12) == 20  # the caller refuses a status under 100


# -- reading a request's headers -------------------------------------------------------------

#: Names the proxy acts on (never forwarded as they came, but Host) and names it forwards,
#: among them some with the first letter and length of one it acts on.
ACTED_ON = {
    b"content-length": b"5",
    b"connection": b"keep-alive",
    b"keep-alive": b"timeout=5",
    b"proxy-connection": b"x",
    b"proxy-authorization": b"x",
    b"te": b"trailers",
    b"trailer": b"x",
    b"upgrade": b"h2c",
    b"cookie": b"a=1",
    b"baggage": b"k=v",
    b"x-forwarded-for": b"10.0.0.1",
    b"x-forwarded-proto": b"https",
    b"x-forwarded-host": b"example.org",
    b"expect": b"100-continue",
    b"x-stageless-": b"x",
    b"x-stageless-route": b"x",
    b"x-stageless-anything-at-all": b"x",
}
FORWARDED = [
    b"accept",
    b"user-agent",
    b"uploads",
    b"baggagE-x",
    b"trailers",
    b"coolie",
    b"x-stageles",
    b"x-forwarded-fo",
    b"content-type",
    b"te-",
    b"@",
    b"a" * 70,
]


@given(
    st.lists(
        st.tuples(
            st.sampled_from([*ACTED_ON, *FORWARDED]),
            st.lists(st.booleans(), min_size=80, max_size=80),
        ),
        max_size=10,
    )
)
def test_request_headers_are_sorted_as_by_their_lower_case_names(
    picks: list[tuple[bytes, list[bool]]],
) -> None:
    headers = [(b"Host", b"example.com")]
    for name, flips in picks:
        headers.append((recased(name, flips), ACTED_ON.get(name, b"value")))
    head = read_request_head(headers, http10=False)
    lower = [(name.lower(), name, value) for name, value in headers]
    assert head.forward == [
        (name, value)
        for low, name, value in lower
        if low == b"host" or (low not in ACTED_ON and not low.startswith(b"x-stageless-"))
    ]
    assert list(head.stageless) == [
        (low, value) for low, _, value in lower if low.startswith(b"x-stageless-")
    ]
    assert list(head.cookies) == [value for low, _, value in lower if low == b"cookie"]


def plain(body: bytes, status: int = 200, extra: bytes = b"") -> bytes:
    head = b"HTTP/1.1 %d X\r\nContent-Type: text/plain\r\n%s" % (status, extra)
    return head + b"Content-Length: %d\r\n\r\n" % len(body) + body


def test_plain_answer_finds_whole_answers_back_to_back() -> None:
    first, second = plain(b"one"), plain(b"", extra=b"ETag: x\r\n")
    data = first + second
    found = plain_answer(data, 0)
    assert found is not None
    status, body_start, body_end = found
    assert (status, data[body_start:body_end], body_end) == (200, b"one", len(first))
    lines = (data[: body_start - 4] + b"\r\n").split(b"\n")
    assert header_fields(lines) == [(b"Content-Type", b"text/plain"), (b"Content-Length", b"3")]
    found = plain_answer(data, body_end)
    assert found is not None
    assert (found[1], found[2]) == (len(data), len(data))  # an empty body, ending the data
    assert plain_answer(data, len(data)) is None


@pytest.mark.parametrize(
    "answer",
    [
        plain(b"cut short")[:-3],  # the body is not all there
        plain(b"x")[:20],  # nor the head
        plain(b"", status=204),
        plain(b"", status=304),
        plain(b"", status=100),
        plain(b"x", extra=b"Connection: close\r\n"),  # not kept open
        b"HTTP/1.1 200 X\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n",
        b"HTTP/1.0 200 X\r\nContent-Length: 1\r\n\r\nx",
        b"HTTP/1.1 200 X\r\n\r\nx",  # no length: read to the close
    ],
)
def test_answers_the_parser_must_read_are_not_plain(answer: bytes) -> None:
    assert plain_answer(answer, 0) is None
    assert plain_answer(plain(b"before") + answer, len(plain(b"before"))) is None
