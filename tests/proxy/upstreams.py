"""Real loopback HTTP upstreams for the proxy's tests, written on asyncio streams.

``Upstream`` answers by path:

- ``/echo...``: 200 with a JSON body describing the request it got (method, target, headers,
  body length and SHA-256), so a test sees exactly what the proxy forwarded;
- ``/chunked``: a chunked response of ``?n=`` chunks;
- ``/big?mb=N``: N MiB streamed with Content-Length (flat-memory downloads);
- ``/upload``: reads the whole body, answers its length and SHA-256 (any path does; with
  ``?read_ms=N&read_mb=M`` the first M MiB are read slowly, N ms per 64 KiB);
- ``/slow?ms=N``: answers after N ms;
- ``/trickle?ms=N&n=K``: a chunked body of K pieces N ms apart (``&head=1``: the head's header
  lines trickle instead), then closes;
- ``/status/N``: answers status N;
- ``/reset-mid``: sends a head and part of the body, then resets the connection;
- ``/reset``: resets the connection before answering;
- ``/close``: answers with a close-delimited body (no length, no chunking);
- ``/json``: a JSON object with a fresh random ``request_id`` (noise for the diff) and the
  upstream's ``fields`` (so two versions can answer different values);
- ``/healthz``: 200 (or ``healthy = False`` -> 503).

``/status/204`` and ``/status/304`` answer without a body, as HTTP requires.

Behaviours for every path (constructor options): ``delay_s`` answers late; ``reset_all``
resets every connection as soon as a request arrived (a shadow target that resets);
``stale_after=N`` serves N requests on a connection and then, on the next one, reads it and
closes the connection without a word (a keep-alive connection the upstream dropped just as the
proxy reused it); ``keep_alive=False`` answers every request with ``Connection: close`` and
closes the connection after it, unread pipelined requests and all. :meth:`Upstream.kill`
closes the listener and resets every open connection.

Every response carries ``X-Upstream: <name>``; ``requests`` counts what arrived per path.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import secrets
import select
import socket
import struct
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit


class Upstream:
    def __init__(
        self,
        name: str,
        *,
        delay_s: float = 0.0,
        fields: dict[str, Any] | None = None,
        reset_all: bool = False,
        stale_after: int | None = None,
        keep_alive: bool = True,
    ) -> None:
        self.name = name
        self.keep_alive = keep_alive
        self.delay_s = delay_s
        self.fields = fields or {}
        self.reset_all = reset_all
        self.stale_after = stale_after
        self.dropped = 0  # requests read and then dropped (``stale_after``)
        self.writers: set[asyncio.StreamWriter] = set()
        self.server: asyncio.Server | None = None
        self.port = 0
        self.requests: Counter[str] = Counter()
        self.connections = 0
        self.healthy = True
        self.seen: list[dict[str, object]] = []

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self, port: int = 0) -> Upstream:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", port)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            if hasattr(self.server, "close_clients"):
                self.server.close_clients()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2)
            self.server = None

    async def kill(self) -> None:
        """Die like a crashed process: stop listening and reset every open connection."""
        if self.server is not None:
            self.server.close()
            self.server = None
        for writer in list(self.writers):
            _reset(writer)
        self.writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.add(writer)
        served = 0
        try:
            while await self._one(reader, writer, served) and self.keep_alive:
                served += 1
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            self.writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()

    async def _one(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, served: int
    ) -> bool:
        line = await reader.readline()
        if not line:
            return False
        method, target, _ = line.decode("latin-1").split(" ", 2)
        headers: list[tuple[str, str]] = []
        while True:
            raw = await reader.readline()
            if raw in (b"\r\n", b"\n", b""):
                break
            name, _, value = raw.decode("latin-1").partition(":")
            headers.append((name.strip(), value.strip()))
        lower = {n.lower(): v for n, v in headers}
        url = urlsplit(target)
        path = url.path
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        # ?read_ms=N&read_mb=M: read the first M MiB of a body slowly (N ms per 64 KiB)
        slow_until = int(query.get("read_mb", "0")) * 1024 * 1024
        read_pause = int(query.get("read_ms", "0")) / 1000
        digest = hashlib.sha256()
        size = 0
        if "content-length" in lower:
            remaining = int(lower["content-length"])
            while remaining:
                part = await reader.read(min(remaining, 65536))
                if not part:
                    raise ConnectionError
                digest.update(part)
                size += len(part)
                remaining -= len(part)
                if size < slow_until:
                    await asyncio.sleep(read_pause)
        elif lower.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size_line = await reader.readline()
                n = int(size_line.split(b";")[0], 16)
                if n == 0:
                    while (await reader.readline()) not in (b"\r\n", b""):
                        pass
                    break
                part = await reader.readexactly(n)
                digest.update(part)
                size += n
                await reader.readexactly(2)
        if self.stale_after is not None and served >= self.stale_after:
            self.dropped += 1
            writer.close()  # a silent close: no response, no Connection: close
            return False
        self.requests[path] += 1
        self.seen.append(
            {
                "method": method,
                "target": target,
                "headers": headers,
                "body_sha256": digest.hexdigest(),
            }
        )
        if self.reset_all and path != "/healthz":
            _reset(writer)
            return False
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        common = f"X-Upstream: {self.name}\r\n"
        if not self.keep_alive:
            common += "Connection: close\r\n"
        if path.startswith("/slow"):
            await asyncio.sleep(int(query.get("ms", "300")) / 1000)
        if path == "/reset":
            _reset(writer)
            return False
        if path == "/reset-mid":
            writer.write(f"HTTP/1.1 200 OK\r\n{common}Content-Length: 100000\r\n\r\n".encode())
            writer.write(b"x" * 1000)
            await writer.drain()
            await asyncio.sleep(0.05)
            _reset(writer)
            return False
        if path == "/close":
            writer.write(f"HTTP/1.1 200 OK\r\n{common}Connection: close\r\n\r\n".encode())
            writer.write(b"close-delimited body")
            await writer.drain()
            return False
        if path == "/trickle":
            await _trickle(writer, common, query)
            return False
        if path == "/chunked":
            writer.write(f"HTTP/1.1 200 OK\r\n{common}Transfer-Encoding: chunked\r\n\r\n".encode())
            for i in range(int(query.get("n", "3"))):
                data = f"part{i};".encode()
                writer.write(b"%x\r\n%s\r\n" % (len(data), data))
            writer.write(b"0\r\n\r\n")
            await writer.drain()
            return True
        if path == "/big":
            total = int(query.get("mb", "1")) * 1024 * 1024
            writer.write(f"HTTP/1.1 200 OK\r\n{common}Content-Length: {total}\r\n\r\n".encode())
            block = b"b" * 65536
            sent = 0
            while sent < total:
                writer.write(block)
                sent += len(block)
                await writer.drain()
            return True
        if path == "/json":
            document = {"request_id": secrets.token_hex(8), **self.fields}
            data = json.dumps(document).encode()
            writer.write(
                f"HTTP/1.1 200 OK\r\n{common}Content-Type: application/json\r\n"
                f"Content-Length: {len(data)}\r\n\r\n".encode()
                + data
            )
            await writer.drain()
            return True
        status = 200
        if path.startswith("/status/"):
            status = int(path.rsplit("/", 1)[1])
        if path == "/healthz" and not self.healthy:
            status = 503
        if status in (204, 304):
            length = "" if status == 204 else "Content-Length: 1234\r\n"  # 304: no body anyway
            writer.write(f'HTTP/1.1 {status} X\r\n{common}{length}ETag: "v1"\r\n\r\n'.encode())
            await writer.drain()
            return True
        body = json.dumps(
            {
                "upstream": self.name,
                "method": method,
                "target": target,
                "headers": headers,
                "body_length": size,
                "body_sha256": digest.hexdigest(),
            }
        ).encode()
        if method == "HEAD":
            writer.write(
                f"HTTP/1.1 {status} X\r\n{common}Content-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n".encode()
            )
        else:
            writer.write(
                f"HTTP/1.1 {status} X\r\n{common}Content-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
        await writer.drain()
        return lower.get("connection", "").lower() != "close"


async def _trickle(writer: asyncio.StreamWriter, common: str, query: dict[str, str]) -> None:
    """``n`` pieces ``ms`` apart: header lines (``head=1``) or chunks of the body."""
    pause = int(query.get("ms", "100")) / 1000
    count = int(query.get("n", "30"))
    if query.get("head") == "1":
        writer.write(f"HTTP/1.1 200 OK\r\n{common}".encode())
        for i in range(count):
            writer.write(b"X-Trickle-%d: 1\r\n" % i)
            await writer.drain()
            await asyncio.sleep(pause)
        writer.write(b"Content-Length: 0\r\n\r\n")
    else:
        writer.write(f"HTTP/1.1 200 OK\r\n{common}Transfer-Encoding: chunked\r\n\r\n".encode())
        for i in range(count):
            writer.write(b"%x\r\n%s\r\n" % (len(b"piece%d;" % i), b"piece%d;" % i))
            await writer.drain()
            await asyncio.sleep(pause)
        writer.write(b"0\r\n\r\n")
    await writer.drain()


@asynccontextmanager
async def unanswered_address() -> AsyncIterator[str]:
    """A ``127.0.0.1:port`` whose accept queue is full, so new connections hang (SYNs dropped).

    The listener has a backlog of 0 and never accepts; it is filled with connections until one
    does not complete, after which the kernel drops every further SYN: a connect to it times out.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    address = listener.getsockname()
    fillers: list[socket.socket] = []
    try:
        for _ in range(64):
            filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            filler.setblocking(False)
            fillers.append(filler)
            filler.connect_ex(address)
            _, writable, _ = await asyncio.get_running_loop().run_in_executor(
                None, _select_writable, filler
            )
            if not writable:
                break
        else:
            raise RuntimeError("the accept queue never filled")
        yield f"127.0.0.1:{address[1]}"
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


def _select_writable(sock: socket.socket) -> tuple[list[Any], list[Any], list[Any]]:
    return select.select([], [sock], [], 0.2)


def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


__all__ = ["Upstream", "unanswered_address"]
