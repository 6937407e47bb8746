"""The C scan of plain answer heads (``_headscan.c``) answers exactly what the Python reference
``heads.read_plain_head`` answers: on heads built from the pieces that decide it (framing
headers in every case and spacing, near-miss names, bare LFs, folding, odd statuses) and on
arbitrary bytes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stageless.proxy import heads

# Only with the compiled hot path (scripts/setup builds it; test_native checks it is active).
from stageless.proxy._headscan import plain_head as scan

STARTS = st.sampled_from([b"HTTP/1.1 ", b"HTTP/1.0 ", b"HTTP/1.1", b"http/1.1 ", b"HTTP/1.1  "])
STATUSES = st.sampled_from(
    [
        b"200",
        b"204",
        b"304",
        b"101",
        b"199",
        b"404",
        b"503",
        b" 20",
        b"20 ",
        b"2 0",
        b"\t20",
        b"2x0",
    ]
)
REASONS = st.sampled_from([b" OK", b"", b" Not Found", b"OK"])
ENDINGS = st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b"\n", b"\r\r\n"])
NAMES = st.sampled_from(
    [
        b"Content-Length",
        b"content-length",
        b"CONTENT-LENGTH",
        b"Content-Length ",
        b"Content_Length",
        b"Content-Lengthx",
        b"Content-Type",
        b"Connection",
        b"connection",
        b"CONNECTION",
        b"Connectionx",
        b"Keep-Alive",
        b"Transfer-Encoding",
        b"TE",
        b"Te",
        b"Trailer",
        b"Upgrade",
        b"Proxy-Connection",
        b"Proxy",
        b"Server",
        b"Cache-Control",
        b" Server",
        b"\tServer",
        b"\x00Server",
        b"",
    ]
)
SEPARATORS = st.sampled_from([b": ", b":", b" : ", b":\t"])
VALUES = st.sampled_from(
    [
        b"5",
        b"0",
        b" 12 ",
        b"\t7\t",
        b"",
        b"-1",
        b"+5",
        b"5, 5",
        b"123456789012345678",
        b"1234567890123456789",
        b"keep-alive",
        b" Keep-Alive ",
        b"KEEP-ALIVE",
        b"keep-alivex",
        b"close",
        b"chunked",
        b"nginx",
    ]
)
LINES = st.tuples(NAMES, SEPARATORS, VALUES, ENDINGS).map(b"".join)


# The pieces of a plain head, drawn about as often as all the others together, so that about
# a third of the heads drawn are plain and the rest miss by one piece or a few.
BENIGN = st.sampled_from(
    [
        b"Server: nginx\r\n",
        b"Content-Type: application/json\r\n",
        b"Date: Sat, 28 Nov 2026 04:00:00 GMT\r\n",
        b"Connection: keep-alive\r\n",
        b"connection:\tKeep-Alive \r\n",
    ]
)
LENGTH = st.tuples(
    st.sampled_from([b"Content-Length", b"content-length", b"CONTENT-LENGTH"]),
    st.sampled_from([b": ", b":", b":\t"]),
    st.sampled_from([b"5", b"0", b" 12 ", b"123456789012345678", b"1234567890123456789", b"1 2"]),
).map(lambda parts: b"".join(parts) + b"\r\n")
CRLF = st.just(b"\r\n")


@st.composite
def heads_and_starts(draw: st.DrawFn) -> tuple[bytes, int]:
    def either(good: st.SearchStrategy[bytes], other: st.SearchStrategy[bytes]) -> bytes:
        return draw(good if draw(st.integers(0, 3)) else other)  # the good piece 3 times in 4

    before = draw(st.sampled_from([b"", b"", b"xyz", b"HTTP/1.1 200 OK\r\n\r\n"]))
    lines = [either(BENIGN, LINES) for _ in range(draw(st.integers(0, 4)))]
    if draw(st.integers(0, 3)):  # most heads have a Content-Length somewhere
        lines.insert(draw(st.integers(0, len(lines))), draw(LENGTH))
    head = b"".join(
        [
            either(st.just(b"HTTP/1.1 "), STARTS),
            either(st.sampled_from([b"200", b"404", b"503"]), STATUSES),
            draw(REASONS),
            either(CRLF, ENDINGS),
            *lines,
            either(CRLF, st.sampled_from([b"\n", b""])),
            draw(st.binary(max_size=12)),
        ]
    )
    return before + head, len(before)


@settings(max_examples=3000)
@given(heads_and_starts())
def test_the_scan_answers_what_the_reference_answers(case: tuple[bytes, int]) -> None:
    data, start = case
    assert scan(data, start) == heads.read_plain_head(data, start)


@settings(max_examples=1000)
@given(st.binary(max_size=80), st.integers(0, 90))
def test_the_same_on_arbitrary_bytes(data: bytes, start: int) -> None:
    assert scan(data, start) == heads.read_plain_head(data, start)
    prefixed = b"HTTP/1.1 200 OK\r\n" + data
    assert scan(prefixed, 0) == heads.read_plain_head(prefixed, 0)


def test_a_plain_answer_head() -> None:
    data = b"HTTP/1.1 200 OK\r\nServer: nginx\r\ncontent-length: 3\r\n\r\nabc"
    assert scan(data, 0) == (200, len(data) - 3, 3)
    assert scan(b"junk" + data, 4) == (200, len(data) + 1, 3)
    assert scan(data, len(data) + 1) is None  # past the end, as bytes.startswith says


def test_bad_arguments_are_errors_not_answers() -> None:
    with pytest.raises(TypeError):
        scan(bytearray(b"HTTP/1.1 200 OK\r\n\r\n"), 0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="start must be >= 0"):
        scan(b"HTTP/1.1 200 OK\r\n\r\n", -1)
    with pytest.raises(TypeError):
        scan(b"", "0")  # type: ignore[arg-type]
