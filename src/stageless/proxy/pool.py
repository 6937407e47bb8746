"""Keep-alive connections to one upstream address, reused last-in first-out.

An :class:`UpstreamConnection` is an asyncio Protocol (not a stream: no per-read task or buffer
copy) that hands every byte it receives to the parser of the exchange that currently owns it.
A :class:`Pool` keeps at most ``max_idle`` idle connections per address; the most recently used
one is reused first (it is the least likely to have been closed by the upstream), and idle ones
older than ``idle_timeout`` are closed by :meth:`Pool.expire` (keep it below the upstreams'
keep-alive timeout, so the proxy closes first). A connection the upstream closed while idle is
dropped from the pool when the close arrives.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Protocol, cast


class Owner(Protocol):
    """The exchange using a connection: it parses what arrives and hears of the close."""

    def upstream_data(self, data: bytes) -> None: ...

    def upstream_lost(self, exc: Exception | None) -> None: ...

    def upstream_pause_writing(self) -> None: ...

    def upstream_resume_writing(self) -> None: ...


class UpstreamConnection(asyncio.Protocol):
    __slots__ = ("closed", "idle_since", "owner", "pool", "transport", "uses")

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.owner: Owner | None = None
        self.closed = False
        self.idle_since = 0.0
        self.uses = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # TCP only; uvloop's transports implement asyncio.Transport without subclassing it
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        owner = self.owner
        if owner is None:
            # Bytes on an idle connection: the upstream broke the protocol; never reuse it.
            self.close()
            return
        owner.upstream_data(data)

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        owner = self.owner
        self.owner = None
        self.pool.forget(self)
        if owner is not None:
            owner.upstream_lost(exc)

    def pause_writing(self) -> None:
        if self.owner is not None:
            self.owner.upstream_pause_writing()

    def resume_writing(self) -> None:
        if self.owner is not None:
            self.owner.upstream_resume_writing()

    def write(self, data: bytes) -> None:
        assert self.transport is not None  # noqa: S101
        self.transport.write(data)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class Pool:
    """Idle keep-alive connections to one ``host:port``."""

    __slots__ = ("address", "idle", "idle_timeout", "loop", "max_idle", "open")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        address: tuple[str, int],
        *,
        max_idle: int,
        idle_timeout: float,
    ) -> None:
        self.loop = loop
        self.address = address
        self.max_idle = max_idle
        self.idle_timeout = idle_timeout
        self.idle: list[UpstreamConnection] = []
        self.open = 0

    def take(self) -> UpstreamConnection | None:
        """The most recently released idle connection that is still open, or None."""
        idle = self.idle
        while idle:
            conn = idle.pop()
            if not conn.closed:
                return conn
        return None

    async def connect(self, timeout: float) -> UpstreamConnection:
        """A new connection; raises OSError or TimeoutError."""
        host, port = self.address
        async with asyncio.timeout(timeout):
            _, conn = await self.loop.create_connection(
                lambda: UpstreamConnection(self), host, port
            )
        self.open += 1
        return conn

    def release(self, conn: UpstreamConnection, now: float) -> None:
        """Give a connection back after a complete exchange (keep-alive)."""
        conn.owner = None
        conn.uses += 1
        if conn.closed:
            return
        if len(self.idle) >= self.max_idle:
            conn.close()
            return
        # A slow client pauses reading from the upstream (backpressure); the exchange can end
        # while it is paused (its last bytes came in the read that filled the client's
        # buffer). An idle connection must read: the next exchange's answer, or the upstream
        # closing it.
        transport = conn.transport
        if transport is not None and not transport.is_reading():
            transport.resume_reading()
        conn.idle_since = now
        self.idle.append(conn)

    def forget(self, conn: UpstreamConnection) -> None:
        """A connection closed; called from its ``connection_lost``."""
        self.open -= 1
        if conn in self.idle:
            self.idle.remove(conn)

    def expire(self, now: float) -> None:
        """Close idle connections unused for longer than ``idle_timeout``."""
        limit = now - self.idle_timeout
        if self.idle and self.idle[0].idle_since < limit:
            stale = [c for c in self.idle if c.idle_since < limit]
            self.idle = [c for c in self.idle if c.idle_since >= limit]
            for conn in stale:
                conn.close()

    def close(self) -> None:
        idle, self.idle = self.idle, []
        for conn in idle:
            conn.close()


__all__ = ["Owner", "Pool", "UpstreamConnection"]
