"""One client connection: parse requests with httptools, route each one, hand it to an Exchange.

Requests on one connection are answered in order. A request that arrives while the previous one
is still in flight (HTTP/1.1 pipelining) is parsed as it comes, but its exchange starts only when
the previous one has finished; the connection stops reading while it waits, so a pipelining
client cannot make the proxy buffer without bound.

Timeouts are deadlines checked by the worker's ticker (one timer for all connections, instead of
a timer handle per request): the client must send a complete request head within
``client_header_s`` and may stay idle between requests for ``client_idle_s``; an exchange gets
``read_s`` between upstream bytes and ``total_s`` in all.
"""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from typing import TYPE_CHECKING, Final, cast

import httptools

from stageless.proxy.exchange import Exchange
from stageless.proxy.heads import BadRequestError, simple_response
from stageless.proxy.router import route_request

if TYPE_CHECKING:
    from stageless.proxy.worker import Worker

_CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"
#: How long a connection closed after an error answer keeps draining the client's input.
LINGER_S: Final = 2.0


class ClientConnection(asyncio.Protocol):
    """httptools calls the ``on_*`` methods while :meth:`data_received` feeds it."""

    __slots__ = (
        "body_chunked",
        "closed",
        "deadline",
        "exchange",
        "head_bytes",
        "headers",
        "http11",
        "keep_alive",
        "lingering",
        "loop",
        "parser",
        "paused_by",
        "peer",
        "queued",
        "queued_modes",
        "reading_head",
        "transport",
        "url",
        "worker",
        "write_paused",
    )

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.loop = worker.loop
        self.transport: asyncio.Transport | None = None
        # The parser holds bound methods of this connection, a reference cycle that only the
        # cyclic collector would free: connection_lost breaks it (see Exchange._finish).
        self.parser: httptools.HttpRequestParser | None = httptools.HttpRequestParser(self)
        self.peer = b""
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_bytes = 0
        self.reading_head = False
        self.exchange: Exchange | None = None
        self.queued: deque[Exchange] = deque()
        self.queued_modes: deque[tuple[bool, bool]] = deque()  # (http11, keep_alive) each
        self.body_chunked = False
        self.keep_alive = True
        self.http11 = True
        self.closed = False
        self.lingering = False
        self.deadline = 0.0
        self.paused_by = 0  # bit 1: upstream backpressure, bit 2: waiting exchanges
        self.write_paused = False

    # -- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # TCP only; uvloop's transports implement asyncio.Transport without subclassing it
        self.transport = cast(asyncio.Transport, transport)
        transport = self.transport
        worker = self.worker
        if len(worker.connections) >= worker.limits.max_connections:
            worker.refused += 1
            transport.write(simple_response(503, "too many connections", close=True))
            transport.close()
            self.closed = True
            return
        worker.connections.add(self)
        peer = transport.get_extra_info("peername")
        self.peer = peer[0].encode() if peer else b""
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport.set_write_buffer_limits(high=256 * 1024)
        self.deadline = self.loop.time() + worker.timeouts.client_header_s

    def data_received(self, data: bytes) -> None:
        parser = self.parser
        if self.closed or parser is None:
            return
        # Bytes received while a head is read count towards max_header_bytes, but a body that
        # arrives in the same read as its head is not head: a head is refused when it is still
        # incomplete past the limit (after parsing), or complete and itself over the limit
        # (on_headers_complete).
        counting = self.reading_head or self.exchange is None
        if counting:
            self.head_bytes += len(data)
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._reject(501, "protocol upgrades and CONNECT are not supported")
        except BadRequestError as refused:
            self._reject(refused.status, refused.detail)
        except httptools.HttpParserCallbackError as failed:
            cause = failed.__context__
            if isinstance(cause, BadRequestError):
                self._reject(cause.status, cause.detail)
            else:
                raise
        except httptools.HttpParserError as malformed:
            # One name per handler: compiled by mypyc, a name bound by several handlers keeps
            # the first handler's type and refuses the others' exceptions (stageless.native).
            self._reject(400, f"malformed request: {malformed}")
        else:
            limit = self.worker.limits.max_header_bytes
            if counting and self.reading_head and self.head_bytes > limit:
                self._reject(431, "request head too large")

    def eof_received(self) -> bool | None:
        # A half-closed client may still read the response in flight; close once it is sent.
        self.keep_alive = False
        return self.exchange is not None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.parser = None  # the cycle through the parser's callbacks (see __init__)
        self.worker.connections.discard(self)
        exchange, self.exchange = self.exchange, None  # it refers back to this connection
        if exchange is not None:
            exchange.client_gone()
        for queued in self.queued:
            queued.client_gone()
        self.queued.clear()
        self.queued_modes.clear()

    def pause_writing(self) -> None:
        self.write_paused = True
        exchange = self.exchange
        if exchange is not None and exchange.upstream is not None:
            transport = exchange.upstream.transport
            if transport is not None:
                transport.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        exchange = self.exchange
        if exchange is not None and exchange.upstream is not None:
            transport = exchange.upstream.transport
            if transport is not None:
                transport.resume_reading()

    # -- httptools request callbacks -----------------------------------------------------

    def on_message_begin(self) -> None:
        self.reading_head = True
        self.url = b""
        self.headers = []
        if self.exchange is None and not self.queued:
            self.deadline = self.loop.time() + self.worker.timeouts.client_header_s

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        headers = self.headers
        headers.append((name, value))
        if len(headers) > self.worker.limits.max_headers:
            raise BadRequestError(431, "too many request headers")

    def on_headers_complete(self) -> None:
        self.reading_head = False
        limit = self.worker.limits.max_header_bytes
        if self.head_bytes > limit and _head_size(self.url, self.headers) > limit:
            raise BadRequestError(431, "request head too large")
        self.head_bytes = 0
        parser = self.parser
        assert parser is not None  # noqa: S101 (called by the parser itself)
        method = parser.get_method()
        # Each call into the parser costs hundreds of instructions (get_http_version formats a
        # string), so the parser is asked only what the headers leave open. llhttp upgrades a
        # CONNECT or a request with an Upgrade header (and the token in Connection); and of the
        # versions it accepts (0.9, 1.0, 1.1, 2.0), only HTTP/1.1 keeps a request alive when
        # neither Connection nor Proxy-Connection says anything.
        named = _connection_headers(self.headers)
        if (method == b"CONNECT" or named & _UPGRADE) and parser.should_upgrade():
            return  # answered 501 when the parser raises HttpParserUpgrade
        keep_alive = parser.should_keep_alive()
        http11 = (keep_alive and not named & _CONNECTION) or parser.get_http_version() == "1.1"
        exchange = route_request(self, method, http11)
        if self.exchange is None:
            self.http11 = http11
            self.keep_alive = keep_alive
            self.exchange = exchange
            self.deadline = 0.0
            exchange.start()
        else:
            # pipelined: its version and keep-alive apply when it starts, not to the one in flight
            self.queued.append(exchange)
            self.queued_modes.append((http11, keep_alive))
            self.pause_for_queue()

    def on_body(self, body: bytes) -> None:
        exchange = self.queued[-1] if self.queued else self.exchange
        if exchange is not None:
            exchange.request_body(body, self.body_chunked)

    def on_message_complete(self) -> None:
        exchange = self.queued[-1] if self.queued else self.exchange
        if exchange is not None:
            exchange.request_done(self.body_chunked)

    # -- called by the exchange ----------------------------------------------------------

    def write(self, data: bytes) -> None:
        transport = self.transport
        if transport is not None and not self.closed:
            transport.write(data)

    def expect_continue(self) -> None:
        self.write(_CONTINUE)

    def exchange_done(self, exchange: Exchange) -> None:
        if self.exchange is exchange:
            self.exchange = None
        if self.closed:
            return
        if exchange.close_after or not self.keep_alive or self.worker.draining:
            self.close()
            return
        if self.queued:
            nxt = self.queued.popleft()
            self.http11, self.keep_alive = self.queued_modes.popleft()
            self.exchange = nxt
            if not self.queued:
                self.resume_for_queue()
            nxt.start()
            return
        self.deadline = self.loop.time() + self.worker.timeouts.client_idle_s

    def pause_for_upstream(self) -> None:
        self._pause(1)

    def resume_for_upstream(self) -> None:
        self._resume(1)

    def pause_for_queue(self) -> None:
        self._pause(2)

    def resume_for_queue(self) -> None:
        self._resume(2)

    def _pause(self, bit: int) -> None:
        if not self.paused_by and self.transport is not None:
            self.transport.pause_reading()
        self.paused_by |= bit

    def _resume(self, bit: int) -> None:
        if not self.paused_by & bit:
            return
        self.paused_by &= ~bit
        if not self.paused_by and self.transport is not None and not self.closed:
            self.transport.resume_reading()

    # -- closing -------------------------------------------------------------------------

    def _reject(self, status: int, detail: str) -> None:
        self.worker.rejected += 1
        exchange = self.exchange
        if exchange is not None and exchange.responded:
            self.abort()  # mid-response: a cut connection is the only honest signal
            return
        if exchange is not None:
            self.exchange = None
            exchange.client_gone()
        self.write(simple_response(status, detail, close=True))
        self._linger()

    def _linger(self) -> None:
        """Close after an error answer without destroying it (a "lingering close").

        Closing a socket with unread input sends a reset, and a reset can make the client drop
        the answer it has not read yet. So: stop sending (half-close) and read and discard what
        the client still sends, until it closes or :data:`LINGER_S` passes.
        """
        transport = self.transport
        self.closed = True
        self.lingering = True
        self.queued.clear()
        if transport is None:
            return
        if self.paused_by:
            self.paused_by = 0
            transport.resume_reading()
        if transport.can_write_eof():
            transport.write_eof()
        self.deadline = self.loop.time() + LINGER_S

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()
        self.closed = True
        self.worker.connections.discard(self)

    def abort(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.abort()
        self.closed = True
        self.worker.connections.discard(self)

    def check_deadline(self, now: float) -> None:
        """Called by the worker's ticker: enforce the head, idle and exchange timeouts."""
        if self.lingering:
            if now > self.deadline and self.transport is not None:
                self.transport.close()
                self.worker.connections.discard(self)
            return
        exchange = self.exchange
        if exchange is None:
            if self.deadline and now > self.deadline:
                if self.reading_head:
                    self._reject(408, "request head not received in time")
                else:
                    self.close()  # idle keep-alive connection
            return
        timeouts = self.worker.timeouts
        if now - exchange.started > timeouts.total_s or (
            exchange.upstream is not None and now - exchange.last_activity > timeouts.read_s
        ):
            exchange.timed_out()


_UPGRADE: Final = 1
_CONNECTION: Final = 2


def _connection_headers(headers: list[tuple[bytes, bytes]]) -> int:
    """Which of Upgrade (:data:`_UPGRADE`) and Connection or Proxy-Connection
    (:data:`_CONNECTION`) are among ``headers`` (in any case), as bits."""
    found = 0
    for name, _ in headers:
        size = len(name)
        if not size:
            continue
        first = name[0] | 0x20
        if (
            (size == 7 and first == 0x75)  # u
            or (size == 10 and first == 0x63)  # c
            or (size == 16 and first == 0x70)  # p
        ):
            lowered = name.lower()
            if lowered == b"upgrade":
                found |= _UPGRADE
            elif lowered in (b"connection", b"proxy-connection"):
                found |= _CONNECTION
    return found


def _head_size(url: bytes, headers: list[tuple[bytes, bytes]]) -> int:
    """The size of a parsed request head: request line, ``name: value`` lines, blank line."""
    return len(url) + 20 + sum(len(name) + len(value) + 4 for name, value in headers)


__all__ = ["ClientConnection"]
