"""The response fast path (a plain answer forwarded as it came) and its limits: whatever the
upstream sends, the client gets what the parser path would give it.

An upstream here answers each path with fixed raw bytes, written in pieces when asked, so the
tests choose exactly which responses are plain (fast path) and which are not (the parser).
"""

from __future__ import annotations

import asyncio
import contextlib

import httpx
import pytest

from tests.proxy.harness import running_proxy

COOKIE = {"Cookie": "stageless-key=fixed-user"}  # a returning user: no Set-Cookie to add

ANSWERS: dict[str, list[bytes]] = {
    "/plain": [b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"],
    "/keepalive": [
        b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
    ],
    "/pieces": [
        b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nhel",
        b"lo ",
        b"world!",
    ],
    "/split-head": [b"HTTP/1.1 200 OK\r\nContent-Le", b"ngth: 3\r\n\r\nabc"],
    "/hop": [
        b"HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5\r\nX-Kept: 1\r\nContent-Length: 2\r\n\r\nok",
    ],
    "/named": [
        b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Private\r\nX-Private: secret\r\n"
        b"Content-Length: 2\r\n\r\nok",
    ],
    "/redirect": [b"HTTP/1.1 302 Found\r\nLocation: /plain\r\nContent-Length: 0\r\n\r\n"],
    "/extra": [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokGARBAGE"],
    "/extra-later": [b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab", b"cdGARBAGE"],
}


class RawUpstream:
    """Answers GET <path> with ANSWERS[path], piece by piece; counts connections."""

    def __init__(self) -> None:
        self.server: asyncio.Server | None = None
        self.connections = 0
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        for writer in self.writers:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ", 2)[1].decode()
                for piece in ANSWERS[path]:
                    writer.write(piece)
                    await writer.drain()
                    await asyncio.sleep(0.02)
        writer.close()


@pytest.fixture
async def raw() -> RawUpstream:
    return RawUpstream()


async def fetch(url: str, path: str) -> httpx.Response:
    async with httpx.AsyncClient(follow_redirects=False) as client:
        return await client.get(url + path, headers=COOKIE)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/plain", b"hello"),
        ("/keepalive", b"ok"),
        ("/pieces", b"hello world!"),
        ("/split-head", b"abc"),
    ],
)
async def test_plain_answers_arrive_whole(raw: RawUpstream, path: str, body: bytes) -> None:
    address = await raw.start()
    async with running_proxy(stable_address=address, admin=False) as proxy:
        for _ in range(3):  # and the pooled connection serves the next ones
            response = await fetch(proxy.url, path)
            assert (response.status_code, response.content) == (200, body)
        assert raw.connections == 1
    await raw.stop()


async def test_hop_by_hop_headers_still_never_cross(raw: RawUpstream) -> None:
    address = await raw.start()
    async with running_proxy(stable_address=address, admin=False) as proxy:
        response = await fetch(proxy.url, "/hop")
        assert response.content == b"ok"
        assert "keep-alive" not in response.headers
        assert response.headers["x-kept"] == "1"
        response = await fetch(proxy.url, "/named")
        assert response.content == b"ok"
        assert "x-private" not in response.headers  # named by Connection: not forwarded
    await raw.stop()


async def test_a_redirect_passes(raw: RawUpstream) -> None:
    address = await raw.start()
    async with running_proxy(stable_address=address, admin=False) as proxy:
        response = await fetch(proxy.url, "/redirect")
        assert (response.status_code, response.headers["location"]) == (302, "/plain")
    await raw.stop()


@pytest.mark.parametrize("path", ["/extra", "/extra-later"])
async def test_bytes_after_the_body_never_reach_the_client_nor_a_reused_connection(
    raw: RawUpstream, path: str
) -> None:
    address = await raw.start()
    async with running_proxy(stable_address=address, admin=False) as proxy:
        response = await fetch(proxy.url, path)
        assert response.content in (b"ok", b"abcd")
        assert b"GARBAGE" not in response.content
        response = await fetch(proxy.url, "/plain")  # a new upstream connection serves this
        assert response.content == b"hello"
        assert raw.connections == 2
    await raw.stop()


async def test_a_first_visit_gets_its_sticky_cookie_on_the_fast_path(raw: RawUpstream) -> None:
    address = await raw.start()
    async with running_proxy(stable_address=address, admin=False) as proxy:
        async with httpx.AsyncClient() as client:
            response = await client.get(proxy.url + "/pieces")  # no cookie yet
        assert response.content == b"hello world!"
        assert response.headers["set-cookie"].startswith("stageless-key=")
        assert response.cookies["stageless-key"]
    await raw.stop()
