"""Timeouts and limits, upstream side (connect, read, total: 504) and client side (slow heads,
idle keep-alive, thousands of idle or slowloris connections, max_connections)."""

from __future__ import annotations

import asyncio
import socket
import statistics
import time
import tracemalloc
from typing import Any

import httpx

from tests.proxy.harness import Running, read_response, running_proxy
from tests.proxy.upstreams import unanswered_address

KIB = 1024


def timeouts(**overrides: float) -> dict[str, Any]:
    values = {
        "connect_s": 0.3,
        "read_s": 0.5,
        "total_s": 2.0,
        "client_header_s": 0.5,
        "client_idle_s": 0.5,
        "shutdown_grace_s": 1.0,
    }
    return {"timeouts": values | overrides}


async def get(port: int, target: str) -> tuple[float, bytes]:
    """One request on a new connection: (seconds, the whole answer up to the close)."""
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {target} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".encode())
    async with asyncio.timeout(5):
        raw = await reader.read()
    writer.close()
    return time.perf_counter() - started, raw


async def closed_within(sock: socket.socket, seconds: float) -> bytes:
    """Read from a raw client socket until the proxy closes it (FIN or reset: a close with
    unread request bytes is a reset); fail after ``seconds``."""
    loop = asyncio.get_running_loop()
    received = []
    async with asyncio.timeout(seconds):
        try:
            while data := await loop.sock_recv(sock, 4096):
                received.append(data)
        except ConnectionResetError:
            pass
    return b"".join(received)


async def raw_client(port: int, first_bytes: bytes = b"") -> socket.socket:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    if first_bytes:
        await loop.sock_sendall(sock, first_bytes)
    return sock


async def test_an_upstream_that_never_accepts_is_a_504_after_the_connect_timeout() -> None:
    async with (
        unanswered_address() as address,
        running_proxy(admin=False, stable_address=address, top=timeouts(connect_s=0.2)) as proxy,
    ):
        elapsed, raw = await get(proxy.app.port, "/echo")
        assert raw.startswith(b"HTTP/1.1 504 "), raw[:60]
        assert b"connect timeout" in raw
        # nothing reached the upstream, so the connect was retried: at most 3 tries
        assert 0.2 <= elapsed < 3 * 0.2 + 0.5


async def test_an_upstream_slower_than_read_s_is_a_504_and_others_go_on() -> None:
    async with running_proxy(admin=False, top=timeouts()) as proxy:
        slow = asyncio.ensure_future(get(proxy.app.port, "/slow?ms=3000"))
        await asyncio.sleep(0.05)
        fast_elapsed, fast = await get(proxy.app.port, "/echo")
        assert fast.startswith(b"HTTP/1.1 200 ")
        assert fast_elapsed < 0.3
        elapsed, raw = await slow
        assert raw.startswith(b"HTTP/1.1 504 "), raw[:60]
        assert 0.5 <= elapsed < 1.2
        assert proxy.stable.requests["/slow"] == 1  # a read timeout is never retried


async def test_total_s_ends_a_trickling_head_with_504_and_a_trickling_body_with_a_cut() -> None:
    # every piece resets the read timeout (0.4 s), but total_s (0.6 s) still ends the exchange
    async with running_proxy(admin=False, top=timeouts(read_s=0.4, total_s=0.6)) as proxy:

        async def trickling_body() -> tuple[float, int, bytes]:
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.app.port)
            started = time.perf_counter()
            writer.write(b"GET /trickle?ms=100&n=40 HTTP/1.1\r\nHost: a\r\n\r\n")
            head = await read_response(reader, no_body=True)
            async with asyncio.timeout(3):
                rest = await reader.read()  # up to the cut
            writer.close()
            return time.perf_counter() - started, head.status, rest

        (head_elapsed, raw), (body_elapsed, status, rest) = await asyncio.gather(
            get(proxy.app.port, "/trickle?head=1&ms=100&n=40"), trickling_body()
        )
        assert raw.startswith(b"HTTP/1.1 504 "), raw[:60]
        assert 0.6 <= head_elapsed < 1.3
        # the head was out: the only honest signal left is an incomplete body
        assert status == 200
        assert b"piece0;" in rest
        assert not rest.endswith(b"0\r\n\r\n")  # never the last chunk of a complete body
        assert 0.6 <= body_elapsed < 1.3


async def test_a_slowloris_client_is_closed_after_client_header_s_while_others_are_served() -> None:
    async with running_proxy(admin=False, top=timeouts()) as proxy:
        port = proxy.app.port
        stalled = await raw_client(port, b"GET /echo HTTP/1.1\r\nHost: a\r\n")
        silent = await raw_client(port)
        trickling = await raw_client(port, b"GET /echo HTTP/1.1\r\n")
        started = time.perf_counter()

        async def trickle() -> None:  # a header line every 100 ms, the head never ends
            loop = asyncio.get_running_loop()
            for i in range(30):
                await asyncio.sleep(0.1)
                try:
                    await loop.sock_sendall(trickling, b"X-%d: 1\r\n" % i)
                except OSError:
                    return

        task = asyncio.ensure_future(trickle())
        for _ in range(5):  # meanwhile, a normal client is served
            elapsed, raw = await get(port, "/echo")
            assert raw.startswith(b"HTTP/1.1 200 ")
            assert elapsed < 0.3
        answers = await asyncio.gather(
            closed_within(stalled, 2), closed_within(silent, 2), closed_within(trickling, 2)
        )
        elapsed = time.perf_counter() - started
        await task
        for sock in (stalled, silent, trickling):
            sock.close()
        assert answers[0].startswith(b"HTTP/1.1 408 ")
        assert answers[2].startswith(b"HTTP/1.1 408 ")
        assert 0.4 <= elapsed < 1.2
        assert not proxy.stable.requests["/echo"] > 5


async def test_an_idle_keep_alive_connection_is_closed_after_client_idle_s() -> None:
    async with running_proxy(admin=False, top=timeouts(client_idle_s=0.4)) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.app.port)
        for _ in range(3):  # a busy connection stays open past the idle timeout
            writer.write(b"GET /echo HTTP/1.1\r\nHost: a\r\n\r\n")
            assert (await read_response(reader)).status == 200
            await asyncio.sleep(0.2)
        started = time.perf_counter()
        async with asyncio.timeout(2):
            assert await reader.read() == b""  # closed without a word
        assert 0.15 <= time.perf_counter() - started < 0.8
        writer.close()


async def latencies(proxy: Running, count: int) -> list[float]:
    result = []
    async with httpx.AsyncClient() as client:
        for _ in range(count):
            started = time.perf_counter()
            response = await client.get(proxy.url + "/echo")
            result.append(time.perf_counter() - started)
            assert response.status_code == 200
    return result


async def test_a_thousand_idle_and_slowloris_connections_cost_little_and_are_closed() -> None:
    count = 1200
    async with running_proxy(admin=False, top=timeouts(client_header_s=1.5)) as proxy:
        port = proxy.app.port
        before = statistics.median(await latencies(proxy, 20))
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            clients = []
            for index in range(count):  # half send nothing, half start a head and stall
                first = b"GET /echo HTTP/1.1\r\nHost: a\r\nX-Slow: " if index % 2 else b""
                clients.append(await raw_client(port, first))
            opened = time.perf_counter()
            async with asyncio.timeout(3):
                while len(proxy.app.worker.connections) < count:
                    await asyncio.sleep(0.01)
            growth = tracemalloc.get_traced_memory()[0] - base
        finally:
            tracemalloc.stop()
        during = statistics.median(await latencies(proxy, 20))
        assert time.perf_counter() - opened < 1.4, "the check ran after the timeout"
        answers = await asyncio.gather(*(closed_within(sock, 3) for sock in clients))
        for sock in clients:
            sock.close()
        assert all(a == b"" or a.startswith(b"HTTP/1.1 408 ") for a in answers)
        assert sum(a.startswith(b"HTTP/1.1 408 ") for a in answers) == count // 2
        # After an error answer the proxy drains the client's input until the client closes
        # (a lingering close), so its side goes as soon as the clients above have closed.
        async with asyncio.timeout(1):
            while len(proxy.app.worker.connections) > 1:
                await asyncio.sleep(0.01)
    per_connection = growth / count
    # the client's sockets are in the figure too; a proxy connection costs a few KiB
    assert per_connection < 8 * KIB, f"{per_connection / KIB:.1f} KiB per connection"
    assert during < before * 3 + 0.01, f"median {during * 1000:.1f} ms vs {before * 1000:.1f}"


async def test_max_connections_is_enforced_with_a_503_and_a_close() -> None:
    async with running_proxy(admin=False, top={"limits": {"max_connections": 5}}) as proxy:
        port = proxy.app.port
        held = [await raw_client(port) for _ in range(5)]
        async with asyncio.timeout(2):
            while len(proxy.app.worker.connections) < 5:
                await asyncio.sleep(0.01)
        extra = await raw_client(port, b"GET /echo HTTP/1.1\r\nHost: a\r\n\r\n")
        answer = await closed_within(extra, 2)
        extra.close()
        assert answer.startswith(b"HTTP/1.1 503 ")
        assert b"Connection: close" in answer
        assert proxy.app.worker.refused == 1
        assert not proxy.stable.requests
        held.pop().close()  # a slot frees up: the next connection is served
        async with asyncio.timeout(2):
            while len(proxy.app.worker.connections) >= 5:
                await asyncio.sleep(0.01)
        _, raw = await get(port, "/echo")
        assert raw.startswith(b"HTTP/1.1 200 ")
        for sock in held:
            sock.close()
