"""A minimal forwarding HTTP/1.1 proxy on stdlib asyncio: the floor for bench/proxy.py.

This is a reference, not a product. It exists so that the benchmark can show what plain asyncio
costs on this machine: Stageless, with all its features on, should be at least as fast. It has
no features on purpose: no routing, no header rewriting (the request head is forwarded
verbatim), no X-Forwarded-*, no chunked bodies (requests and responses must carry a
Content-Length, or have no body), no retry of a request that hits a pooled connection the
upstream just closed, no timeouts, no backpressure, no metrics. Do not deploy it.

What it does do is the part every proxy pays for: asyncio Protocols (no streams), one
keep-alive connection per client request in flight, taken from a LIFO pool of idle keep-alive
connections to the upstream and returned after the response, and SO_REUSEPORT worker
processes (``--workers``).

Usage: python bench/proxy/minimal.py --listen 127.0.0.1:8081 --upstream 127.0.0.1:9001
       [--workers 1]   (stop it by signalling its process group: workers are forked)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
from typing import cast

HEAD_END = b"\r\n\r\n"
MAX_HEAD = 65536
MAX_BODY = 1 << 20
BAD_GATEWAY = b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
NO_BODY_STATUS = (b"1", b"204", b"304")


def header_value(lowered_head: bytes, name: bytes) -> bytes | None:
    """The value of a header in a lowercased head (``name`` like b"\\r\\ncontent-length:")."""
    start = lowered_head.find(name)
    if start < 0:
        return None
    start += len(name)
    end = lowered_head.find(b"\r\n", start)
    return lowered_head[start : end if end >= 0 else len(lowered_head)].strip()


class Pool:
    """Idle keep-alive connections to one upstream address, most recently used first."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.idle: list[UpstreamConnection] = []
        self.tasks: set[asyncio.Task[None]] = set()

    def send(self, client: ClientConnection, request: bytes, head_only: bool) -> None:
        while self.idle:
            upstream = self.idle.pop()
            if not upstream.closed:
                upstream.send(client, request, head_only)
                return
        task = asyncio.get_running_loop().create_task(self.connect(client, request, head_only))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def connect(self, client: ClientConnection, request: bytes, head_only: bool) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, upstream = await loop.create_connection(
                lambda: UpstreamConnection(self), self.host, self.port
            )
        except OSError:
            client.fail()
            return
        upstream.send(client, request, head_only)


class UpstreamConnection(asyncio.Protocol):
    """One keep-alive connection to the upstream; forwards one response at a time."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.client: ClientConnection | None = None
        self.buffer = bytearray()
        self.remaining = -1  # body bytes still to forward; -1 while reading the head
        self.head_only = False
        self.keep_alive = True
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def send(self, client: ClientConnection, request: bytes, head_only: bool) -> None:
        if self.transport is None:  # not connected: cannot happen after create_connection
            client.fail()
            return
        self.client = client
        self.head_only = head_only
        self.remaining = -1
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        client = self.client
        if client is None:  # nothing asked: the upstream is out of step
            self.close()
            return
        if self.remaining >= 0:
            client.write(data)
            self.remaining -= len(data)
            if self.remaining <= 0:
                self.finish(client)
            return
        self.buffer += data
        end = self.buffer.find(HEAD_END)
        if end < 0:
            if len(self.buffer) > MAX_HEAD:
                self.close()
            return
        head = bytes(self.buffer[: end + 4]).lower()
        status = head[9:12]
        if self.head_only or status.startswith(NO_BODY_STATUS):
            length = 0
        else:
            value = header_value(head, b"\r\ncontent-length:")
            if value is None or not value.isdigit():  # chunked or close-delimited: unsupported
                self.close()
                return
            length = int(value)
        connection = header_value(head, b"\r\nconnection:")
        if head.startswith(b"http/1.0"):
            self.keep_alive = connection == b"keep-alive"
        else:
            self.keep_alive = connection != b"close"
        available = len(self.buffer)
        client.write(bytes(self.buffer))
        self.buffer.clear()
        self.remaining = end + 4 + length - available
        if self.remaining <= 0:
            self.finish(client)

    def finish(self, client: ClientConnection) -> None:
        self.client = None
        self.remaining = -1
        if self.keep_alive and not self.closed:
            self.pool.idle.append(self)
        else:
            self.close()
        client.response_done()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        self.closed = True

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        client, self.client = self.client, None
        if client is not None:
            client.fail()


class ClientConnection(asyncio.Protocol):
    """One client connection: requests are forwarded one at a time, in order."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.busy = False
        self.started = False  # some of the current response was written
        self.close_after = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.busy:
            self.next_request()

    def next_request(self) -> None:
        end = self.buffer.find(HEAD_END)
        if end < 0:
            if len(self.buffer) > MAX_HEAD:
                self.reject()
            return
        head = bytes(self.buffer[: end + 4]).lower()
        if b"\r\ntransfer-encoding:" in head:
            self.reject()
            return
        value = header_value(head, b"\r\ncontent-length:")
        length = int(value) if value is not None and value.isdigit() else 0
        if (value is not None and not value.isdigit()) or length > MAX_BODY:
            self.reject()
            return
        total = end + 4 + length
        if len(self.buffer) < total:
            return
        request = bytes(self.buffer[:total])
        del self.buffer[:total]
        self.close_after = header_value(head, b"\r\nconnection:") == b"close"
        self.busy = True
        self.started = False
        self.pool.send(self, request, head.startswith(b"head "))

    def write(self, data: bytes) -> None:
        self.started = True
        if self.transport is not None:
            self.transport.write(data)

    def response_done(self) -> None:
        self.busy = False
        if self.close_after:
            self.close()
        elif self.buffer:
            self.next_request()

    def fail(self) -> None:
        """The upstream failed mid-request: answer 502 if nothing was sent yet, then close."""
        if not self.started and self.transport is not None:
            self.transport.write(BAD_GATEWAY)
        self.close()

    def reject(self) -> None:
        self.write(BAD_REQUEST)
        self.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def serve(listen: tuple[str, int], upstream: tuple[str, int]) -> None:
    loop = asyncio.get_running_loop()
    pool = Pool(*upstream)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(listen)
    server = await loop.create_server(lambda: ClientConnection(pool), sock=sock, backlog=4096)
    async with server:
        await server.serve_forever()


def address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--listen", type=address, required=True, help="host:port")
    parser.add_argument("--upstream", type=address, required=True, help="host:port")
    parser.add_argument("--workers", type=int, default=1, help="processes (SO_REUSEPORT)")
    args = parser.parse_args()
    for _ in range(args.workers - 1):
        if os.fork() == 0:
            break  # a child serves too; the parent forks the rest and serves last
    asyncio.run(serve(args.listen, args.upstream))


if __name__ == "__main__":
    main()
