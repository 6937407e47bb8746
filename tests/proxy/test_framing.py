"""Request framing: ambiguous or malformed requests are refused before any upstream sees them
(no request smuggling), and every valid way to frame a message passes intact."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.proxy.harness import (
    Running,
    echoed,
    header_values,
    read_response,
    running_proxy,
    until_closed,
)

HEAD = b"POST /echo HTTP/1.1\r\nHost: shop.example\r\n"

REFUSED = {
    "content-length and transfer-encoding": (
        HEAD + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    "transfer-encoding and content-length": (
        HEAD + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
        400,
    ),
    "duplicate content-length": (
        HEAD + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
        400,
    ),
    "conflicting content-length": (
        HEAD + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        400,
    ),
    "content-length list": (HEAD + b"Content-Length: 5, 6\r\n\r\nhello!", 400),
    "signed content-length": (HEAD + b"Content-Length: +5\r\n\r\nhello", 400),
    "chunk size not hexadecimal": (
        HEAD + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        400,
    ),
    "chunk longer than its size": (
        HEAD + b"Transfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n",
        400,
    ),
    "chunk without its CRLF": (
        HEAD + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
        400,
    ),
    "gzip then chunked": (
        HEAD + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        501,
    ),
    "chunked twice": (
        HEAD + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    "gzip only": (HEAD + b"Transfer-Encoding: gzip\r\n\r\n", 501),
    "http/1.1 without host": (b"GET /echo HTTP/1.1\r\nAccept: */*\r\n\r\n", 400),
    "two host headers": (b"GET /echo HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    "obs-fold": (b"GET /echo HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n  folded\r\n\r\n", 400),
    "whitespace before the colon": (b"GET /echo HTTP/1.1\r\nHost : a\r\n\r\n", 400),
    "space in the header name": (b"GET /echo HTTP/1.1\r\nHost: a\r\nX A: 1\r\n\r\n", 400),
    "bare LF line ends": (b"GET /echo HTTP/1.1\nHost: a\n\n", 400),
    "connect": (b"CONNECT shop.example:443 HTTP/1.1\r\nHost: shop.example:443\r\n\r\n", 501),
    "websocket upgrade": (
        b"GET /echo HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        501,
    ),
    "h2c upgrade": (
        b"GET /echo HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\n"
        b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n",
        501,
    ),
    "expect something else": (b"GET /echo HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n", 417),
    "not http at all": (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40, 400),
}


@pytest.fixture
async def proxy() -> AsyncIterator[Running]:
    limits = {"max_header_bytes": 4096, "max_headers": 20}
    async with running_proxy(admin=False, top={"limits": limits}) as p:
        yield p


def assert_untouched(proxy: Running) -> None:
    assert not proxy.stable.requests
    assert not proxy.candidate.requests


@pytest.mark.parametrize("case", sorted(REFUSED))
async def test_an_ambiguous_or_malformed_request_is_refused_and_the_connection_closed(
    proxy: Running, case: str
) -> None:
    request, status = REFUSED[case]
    # a valid request follows on the same connection: it must not be read as a second request
    smuggled = b"GET /smuggled HTTP/1.1\r\nHost: shop.example\r\n\r\n"
    raw = await until_closed(proxy.app.port, request + smuggled)
    assert raw.startswith(b"HTTP/1.1 %d " % status), raw[:80]
    assert b"\r\nConnection: close\r\n" in raw.partition(b"\r\n\r\n")[0] + b"\r\n"
    head, _, body = raw.partition(b"\r\n\r\n")
    assert len(body) == int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])  # one answer
    await asyncio.sleep(0.05)
    assert_untouched(proxy)


async def test_a_head_over_max_header_bytes_is_answered_431(proxy: Running) -> None:
    request = b"GET /echo HTTP/1.1\r\nHost: a\r\nX-Big: " + b"x" * 5000 + b"\r\n\r\n"
    raw = await until_closed(proxy.app.port, request)
    assert raw.startswith(b"HTTP/1.1 431 ")
    assert_untouched(proxy)


async def test_a_head_trickling_in_past_max_header_bytes_is_answered_431(proxy: Running) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.app.port)
    writer.write(b"GET /echo HTTP/1.1\r\nHost: a\r\n")
    for _ in range(10):  # 4,200 bytes of headers in 10 pieces, never finished
        writer.write(b"X-Filler: " + b"f" * 408 + b"\r\n")
        await writer.drain()
        await asyncio.sleep(0.002)
    async with asyncio.timeout(3):
        raw = await reader.read()
    writer.close()
    assert raw.startswith(b"HTTP/1.1 431 ")
    assert_untouched(proxy)


async def test_more_than_max_headers_is_answered_431(proxy: Running) -> None:
    headers = b"".join(b"X-H%d: 1\r\n" % i for i in range(25))
    raw = await until_closed(
        proxy.app.port, b"GET /echo HTTP/1.1\r\nHost: a\r\n" + headers + b"\r\n"
    )
    assert raw.startswith(b"HTTP/1.1 431 ")
    assert_untouched(proxy)


async def test_max_headers_exactly_is_served(proxy: Running) -> None:
    headers = b"".join(b"X-H%d: 1\r\n" % i for i in range(19))  # + Host = 20
    raw = await until_closed(
        proxy.app.port, b"GET /echo HTTP/1.0\r\nHost: a\r\n" + headers + b"\r\n"
    )
    assert raw.startswith(b"HTTP/1.1 200 ")


# -- valid framing ---------------------------------------------------------------------------


async def test_a_content_length_upload_arrives_intact(proxy: Running) -> None:
    body = os.urandom(3 * 1024 * 1024 + 17)
    async with httpx.AsyncClient() as client:
        response = await client.post(proxy.url + "/upload", content=body)
    echo = echoed(response.content)
    assert response.status_code == 200
    assert echo["body_length"] == len(body)
    assert echo["body_sha256"] == hashlib.sha256(body).hexdigest()
    assert header_values(echo, "content-length") == [str(len(body))]


async def test_a_body_in_the_same_packet_as_the_head_does_not_count_as_head(
    proxy: Running,
) -> None:
    body = os.urandom(100_000)  # far more than max_header_bytes (4096), in one write
    request = HEAD + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body
    raw = await until_closed(proxy.app.port, request)
    assert raw.startswith(b"HTTP/1.1 200 "), raw[:80]
    echo = echoed(raw.partition(b"\r\n\r\n")[2])
    assert echo["body_sha256"] == hashlib.sha256(body).hexdigest()


async def test_a_chunked_upload_arrives_intact_and_chunked(proxy: Running) -> None:
    parts = [os.urandom(size) for size in (1, 70_000, 5, 300_000, 4096)]

    async def stream() -> AsyncIterator[bytes]:
        for part in parts:
            yield part
            await asyncio.sleep(0.01)

    async with httpx.AsyncClient() as client:
        response = await client.post(proxy.url + "/upload", content=stream())
    echo = echoed(response.content)
    whole = b"".join(parts)
    assert echo["body_length"] == len(whole)
    assert echo["body_sha256"] == hashlib.sha256(whole).hexdigest()
    assert header_values(echo, "transfer-encoding") == ["chunked"]
    assert header_values(echo, "content-length") == []


async def test_a_raw_chunked_upload_with_extensions_and_trailers(proxy: Running) -> None:
    request = (
        HEAD + b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    raw = await until_closed(proxy.app.port, request)
    assert raw.startswith(b"HTTP/1.1 200 ")
    echo = echoed(raw.partition(b"\r\n\r\n")[2])
    assert echo["body_sha256"] == hashlib.sha256(b"hello world").hexdigest()


async def test_a_chunked_response_is_delivered_chunked(proxy: Running) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.app.port)
    writer.write(b"GET /chunked?n=4 HTTP/1.1\r\nHost: a\r\n\r\n")
    response = await read_response(reader)
    assert response.status == 200
    assert response.chunked
    assert response.body == b"part0;part1;part2;part3;"
    # the connection is still usable
    writer.write(b"GET /echo HTTP/1.1\r\nHost: a\r\n\r\n")
    assert (await read_response(reader)).status == 200
    writer.close()


async def test_a_close_delimited_response_becomes_chunked_for_http11(proxy: Running) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.app.port)
    writer.write(b"GET /close HTTP/1.1\r\nHost: a\r\n\r\n")
    response = await read_response(reader)
    assert response.chunked
    assert response.body == b"close-delimited body"
    writer.write(b"GET /echo HTTP/1.1\r\nHost: a\r\n\r\n")  # keep-alive towards the client
    assert (await read_response(reader)).status == 200
    writer.close()


async def test_a_close_delimited_response_to_http10_is_close_delimited(proxy: Running) -> None:
    raw = await until_closed(proxy.app.port, b"GET /close HTTP/1.0\r\n\r\n")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"chunked" not in head.lower()
    assert body == b"close-delimited body"


async def test_head_204_and_304_have_no_body_and_keep_the_connection(proxy: Running) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.app.port)
    writer.write(b"HEAD /echo HTTP/1.1\r\nHost: a\r\n\r\n")
    head = await read_response(reader, no_body=True)
    assert head.status == 200
    assert int(head.header("content-length") or 0) > 0
    for status in (204, 304):
        writer.write(b"GET /status/%d HTTP/1.1\r\nHost: a\r\n\r\n" % status)
        response = await read_response(reader)
        assert response.status == status
        assert response.header("transfer-encoding") is None
    writer.write(b"GET /echo?last HTTP/1.1\r\nHost: a\r\n\r\n")
    last = await read_response(reader)
    assert echoed(last.body)["target"] == "/echo?last"  # no stray body bytes in between
    writer.close()
    assert proxy.stable.requests["/echo"] == 2


async def test_http10_clients_get_close_or_keep_alive_as_they_ask(proxy: Running) -> None:
    raw = await until_closed(proxy.app.port, b"GET /echo HTTP/1.0\r\n\r\n")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert echoed(body)["method"] == "GET"

    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.app.port)
    for n in range(2):
        writer.write(b"GET /echo?%d HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" % n)
        response = await read_response(reader)
        assert response.status == 200
        assert (response.header("connection") or "").lower() == "keep-alive"
        assert not response.chunked
    writer.close()


async def test_an_http10_client_kept_alive_by_proxy_connection_never_gets_chunks(
    proxy: Running,
) -> None:
    # llhttp keeps an HTTP/1.0 request alive for Proxy-Connection: keep-alive too, so keep-alive
    # alone does not make a request HTTP/1.1 (the proxy asks the parser's version then)
    raw = await until_closed(
        proxy.app.port, b"GET /chunked?n=3 HTTP/1.0\r\nProxy-Connection: keep-alive\r\n\r\n"
    )
    head, _, _ = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"chunked" not in head.lower()


async def test_pipelined_requests_are_answered_in_order(proxy: Running) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.app.port)
    writer.write(
        b"GET /slow?ms=150 HTTP/1.1\r\nHost: a\r\n\r\n"
        b"POST /echo?2 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
        b"GET /chunked?n=2 HTTP/1.1\r\nHost: a\r\n\r\n"
        b"GET /echo?4 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    )
    first = await read_response(reader)
    second = await read_response(reader)
    third = await read_response(reader)
    fourth = await read_response(reader)
    async with asyncio.timeout(2):
        assert await reader.read() == b""
    writer.close()
    assert echoed(first.body)["target"] == "/slow?ms=150"
    assert echoed(second.body)["target"] == "/echo?2"
    assert echoed(second.body)["body_sha256"] == hashlib.sha256(b"abc").hexdigest()
    assert third.body == b"part0;part1;"
    assert echoed(fourth.body)["target"] == "/echo?4"


async def test_expect_100_continue_gets_an_interim_answer_before_the_body(proxy: Running) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.app.port)
    writer.write(HEAD + b"Content-Length: 5\r\nExpect: 100-continue\r\n\r\n")
    async with asyncio.timeout(2):
        interim = await read_response(reader)
    assert interim.status == 100
    writer.write(b"hello")
    final = await read_response(reader)
    writer.close()
    echo = echoed(final.body)
    assert final.status == 200
    assert echo["body_sha256"] == hashlib.sha256(b"hello").hexdigest()
    assert header_values(echo, "expect") == []


async def test_an_absolute_form_target_is_sent_upstream_in_origin_form(proxy: Running) -> None:
    raw = await until_closed(
        proxy.app.port,
        b"GET http://shop.example/echo?q=1 HTTP/1.1\r\nHost: shop.example\r\n"
        b"Connection: close\r\n\r\n",
    )
    echo = echoed(raw.partition(b"\r\n\r\n")[2])
    assert echo["target"] == "/echo?q=1"
    raw = await until_closed(
        proxy.app.port,
        b"GET http://shop.example HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\n\r\n",
    )
    assert echoed(raw.partition(b"\r\n\r\n")[2])["target"] == "/"
