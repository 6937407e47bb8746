"""One request's trip upstream and its response's trip back: the proxy's hot path.

An :class:`Exchange` is created when a request's head is complete. It takes a pooled upstream
connection (or opens one), writes the request head and streams the body, parses the response
with its own httptools parser and streams it to the client as it arrives, with the framing the
client needs. Backpressure runs both ways: a client that reads slowly pauses the upstream
socket, an upstream that reads slowly pauses the client socket, so a large body in either
direction passes with flat memory.

Failures before the first response byte are retried once when that is safe: a connection that
could not be opened (nothing was sent), or a stale pooled connection or a candidate that died
with an idempotent request whose body the exchange still holds. A failed candidate is retried on
stable. Otherwise the client gets 502 (connection failure) or 504 (timeout) while no response
head was sent, and a cut connection once one was.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import httptools

from stageless.analysis.batch import TrafficClass, Version
from stageless.proxy.heads import (
    HOP_BY_HOP,
    LAST_CHUNK,
    chunk,
    plain_head,
    simple_response,
)
from stageless.proxy.pool import Pool, UpstreamConnection

if TYPE_CHECKING:
    from stageless.proxy.connection import ClientConnection
    from stageless.proxy.runtime import Group, RouteRuntime, ServiceRuntime
    from stageless.proxy.shadow import ShadowJob
    from stageless.proxy.stats import Series

IDEMPOTENT: Final = frozenset({b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE", b"TRACE"})
#: Request bodies up to this size are kept for a retry; larger ones are streamed and not retried.
REPLAY_LIMIT: Final = 64 * 1024
#: Bytes buffered towards an upstream not yet connected before the client is paused.
PENDING_LIMIT: Final = 256 * 1024

# Enum members read per request (here and in the router), as module constants: in Python 3.11
# reading one off its class goes through EnumType.__getattr__'s hook (about 80 ns; a global,
# 7 ns).
CANDIDATE: Final = Version.CANDIDATE
STABLE: Final = Version.STABLE
USER: Final = TrafficClass.USER
SHADOW: Final = TrafficClass.SHADOW
_CANDIDATE_TAG: Final = b"\r\nX-Stageless-Version: candidate\r\n"
_STABLE_TAG: Final = b"\r\nX-Stageless-Version: stable\r\n"
# How an answer the parser saw whole leaves its upstream connection.
_REUSE: Final = 1
_CLOSE_UPSTREAM: Final = 2

_PLAIN_CONNECTION: Final = frozenset({b"keep-alive", b"close"})

# Response framing towards the client.
_LENGTH: Final = 0
_CHUNKED: Final = 1
_CLOSE: Final = 2
_NONE: Final = 3


class Exchange:
    """A request in flight; the response parser's protocol (httptools calls ``on_*``)."""

    __slots__ = (
        "body_done",
        "capture",
        "client",
        "close_after",
        "complete",
        "expect_continue",
        "group",
        "head",
        "head_only",
        "idempotent",
        "last_activity",
        "method",
        "out",
        "parser",
        "pending",
        "pending_size",
        "reason",
        "remaining",
        "replay",
        "replay_size",
        "resp_close",
        "resp_framing",
        "resp_headers",
        "resp_length",
        "responded",
        "retries",
        "reused",
        "route",
        "series",
        "service",
        "set_cookie",
        "started",
        "status",
        "tclass",
        "upstream",
        "upstream_chunked",
        "upstream_eof_ends",
        "user",
        "version",
    )

    def __init__(  # noqa: PLR0913 (the request's facts, set once by the connection)
        self,
        client: ClientConnection,
        service: ServiceRuntime,
        route: RouteRuntime,
        version: Version,
        tclass: TrafficClass,
        series: Series,
        method: bytes,
        head: bytes,
    ) -> None:
        self.client = client
        self.service = service
        self.route = route
        self.version = version
        self.tclass = tclass
        self.series = series
        self.method = method
        self.head = head
        self.group: Group = service.candidate if version is CANDIDATE else service.stable
        self.user: int | None = None
        self.set_cookie = b""
        self.capture: ShadowJob | None = None
        self.idempotent = method in IDEMPOTENT
        self.head_only = method == b"HEAD"
        self.upstream: UpstreamConnection | None = None
        self.parser: httptools.HttpResponseParser | None = None
        self.pending: list[bytes] = [head]
        self.pending_size = 0
        self.replay: list[bytes] | None = [] if self.idempotent else None
        self.replay_size = 0
        self.body_done = False
        self.reused = False
        self.retries = 0
        self.started = client.loop.time()
        self.last_activity = self.started
        self.status = 0
        self.reason = b""
        self.resp_headers: list[tuple[bytes, bytes]] = []
        self.resp_length = -1
        self.upstream_chunked = False
        self.upstream_eof_ends = False
        self.resp_close = False
        self.resp_framing = _NONE
        self.responded = False
        self.close_after = False
        self.expect_continue = False
        self.out: list[bytes] = []
        self.remaining = -1  # body bytes still to come on the fast path (-1: not on it)
        self.complete = 0  # the parser saw the whole answer: _REUSE or _CLOSE_UPSTREAM after

    # -- sending the request -------------------------------------------------------------

    def start(self) -> None:
        if self.expect_continue:
            self.expect_continue = False  # answered when the request is really on its way
            self.client.expect_continue()
        address = self.group.pick()
        conn = address.pool.take()
        if conn is not None:
            self.reused = True
            self._attach(conn)
        else:
            self.reused = False
            self.client.worker.spawn(self._connect(address.pool), "upstream connect")

    async def _connect(self, pool: Pool) -> None:
        try:
            conn = await pool.connect(self.client.worker.timeouts.connect_s)
        except TimeoutError:
            # Another try at the same single address would most likely time out again.
            if len(self.group.addresses) > 1 or self.version is CANDIDATE:
                self._failed_before_sending(504, "upstream connect timeout")
            else:
                self._fail(504, "upstream connect timeout")
            return
        except OSError as exc:
            self._failed_before_sending(502, f"upstream connect failed: {exc.strerror or exc}")
            return
        if self.client.closed or self.responded:
            pool.release(conn, self.client.loop.time())
            return
        self._attach(conn)

    def _attach(self, conn: UpstreamConnection) -> None:
        self.upstream = conn
        conn.owner = self
        self.parser = None  # made on the first bytes if the fast path does not apply
        self.remaining = -1
        self.complete = 0
        self.last_activity = self.client.loop.time()
        pending = self.pending
        conn.write(pending[0] if len(pending) == 1 else b"".join(pending))
        self.pending = []
        self.pending_size = 0
        self.client.resume_for_upstream()

    def request_body(self, data: bytes, chunked: bool) -> None:
        """A piece of the request body from the client."""
        out = chunk(data) if chunked else data
        replay = self.replay
        if replay is not None:
            replay.append(out)
            self.replay_size += len(out)
            if self.replay_size > REPLAY_LIMIT:
                self.replay = None
        if self.upstream is not None:
            self.upstream.write(out)
        else:
            self.pending.append(out)
            self.pending_size += len(out)
            if self.pending_size > PENDING_LIMIT:
                self.client.pause_for_upstream()
        if self.capture is not None:
            self.capture.request_body(data)

    def request_done(self, chunked: bool) -> None:
        self.body_done = True
        if chunked:
            self.request_body_end()
        if self.capture is not None:
            self.capture.request_complete()

    def request_body_end(self) -> None:
        if self.replay is not None:
            self.replay.append(LAST_CHUNK)
        if self.upstream is not None:
            self.upstream.write(LAST_CHUNK)
        else:
            self.pending.append(LAST_CHUNK)

    # -- the upstream's events (pool.Owner) ----------------------------------------------

    def upstream_data(self, data: bytes) -> None:
        self.last_activity = self.client.loop.time()
        if self.remaining >= 0:
            self._pass_body(data)
            return
        parser = self.parser
        if parser is None:
            if not self.status and self._pass_head(data):
                return
            parser = self.parser = httptools.HttpResponseParser(self)
        try:
            parser.feed_data(data)
        except httptools.HttpParserError:
            self._flush()
            conn = self.upstream
            if conn is not None:
                self.upstream = None
                conn.owner = None
                conn.abort()
            if self.complete:  # a whole answer, then bytes that are none: never reuse
                self._finish(reuse=False)
            else:
                self._upstream_failed(502, "upstream sent an invalid response")
            return
        # The answer ends here only once the parser has seen every byte of this read, so a
        # connection is never pooled with bytes after the answer on it (they raise above).
        if self.complete:
            self._finish(reuse=self.complete == _REUSE)
        elif self.out:
            self._flush()

    def _pass_head(self, data: bytes) -> bool:
        """The fast path: forward a plain response as it came, without parsing it header by
        header. True when it applied; False leaves ``data`` to the parser (nothing consumed).

        Plain means: HTTP/1.1, a final status with a body, one ``Content-Length``, no
        ``Transfer-Encoding`` or other hop-by-hop header but ``Connection: keep-alive``, the
        whole head in ``data``, nothing after the body, a keep-alive HTTP/1.1 client (a first
        visit's sticky cookie is spliced in). Most answers are; the parser handles the rest.
        For a shadowed request the answer is also handed to its copy's comparison, its head as
        it came (``shadow.Answer.take_head``).
        Hand-written because it is the hot path: :func:`~stageless.proxy.heads.plain_head`
        reads the head, and the answer is written on as one piece.
        """
        client = self.client
        if self.head_only or not client.http11 or not client.keep_alive or client.worker.draining:
            return False
        plain = plain_head(data, 0)
        if plain is None:
            return False
        status, body_start, length = plain
        end = body_start - 4  # where the blank line ending the head begins
        available = len(data) - body_start
        if available > length:
            return False  # bytes after the body: let the parser judge them
        self.status = status
        self.responded = True
        self.resp_framing = _LENGTH
        capture = self.capture
        if capture is not None:  # a shadowed request: its copy is compared with this answer
            capture.primary_plain_head(status, data[:end])
            if available:
                capture.primary_body_part(data[end + 4 :])
        if self.set_cookie:  # a first visit: the new sticky key goes in before the blank line
            data = b"".join((data[: end + 2], self.set_cookie, data[end + 2 :]))
        client.write(data)
        self.remaining = length - available
        if self.remaining == 0:
            self.remaining = -1
            self._finish(reuse=True)
        return True

    def _pass_body(self, data: bytes) -> None:
        """The rest of a fast-path body, forwarded as it comes."""
        remaining = self.remaining - len(data)
        capture = self.capture
        if capture is not None:
            capture.primary_body_part(data[: len(data) + remaining] if remaining < 0 else data)
        if remaining > 0:
            self.remaining = remaining
            self.client.write(data)
            return
        self.remaining = -1
        if remaining < 0:  # more than the body: the upstream broke the protocol
            self.client.write(data[: len(data) + remaining])
            conn = self.upstream
            if conn is not None:
                self.upstream = None
                conn.owner = None
                conn.abort()
            self._finish(reuse=False)
            return
        self.client.write(data)
        self._finish(reuse=True)

    def _flush(self) -> None:
        """Write what the parser produced in one call: one send(2) instead of one per piece."""
        out = self.out
        if out:
            self.client.write(out[0] if len(out) == 1 else b"".join(out))
            out.clear()

    def upstream_lost(self, exc: Exception | None) -> None:
        self.upstream = None
        if self.status and self.upstream_eof_ends and not self.client.closed:
            # a close-delimited body ends with the connection
            if self.resp_framing == _CHUNKED:
                self.out.append(LAST_CHUNK)
            self._finish(reuse=False)
            return
        self._upstream_failed(502, "upstream closed the connection")

    def upstream_pause_writing(self) -> None:
        self.client.pause_for_upstream()

    def upstream_resume_writing(self) -> None:
        self.client.resume_for_upstream()

    # -- httptools response callbacks ----------------------------------------------------

    def on_status(self, reason: bytes) -> None:
        self.reason = reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self.resp_headers.append((name, value))

    def on_headers_complete(self) -> None:
        parser = self.parser
        assert parser is not None  # noqa: S101
        status = parser.get_status_code()
        if status < 200:
            self.resp_headers = []  # 1xx interim answers are not forwarded (Expect is not sent)
            return
        self.status = status
        client = self.client
        if client.closed:
            return
        head, self.resp_framing = self._response_head(status, parser)
        self.responded = True
        self.out.append(head)
        if self.capture is not None:
            self.capture.primary_head(status, self.resp_headers)
        if self.head_only or status in (204, 304):
            reuse = parser.should_keep_alive() and not self.upstream_chunked
            self.complete = _REUSE if reuse else _CLOSE_UPSTREAM

    def on_body(self, body: bytes) -> None:
        if self.head_only:
            return
        self.out.append(chunk(body) if self.resp_framing == _CHUNKED else body)
        if self.capture is not None:
            self.capture.primary_body_part(body)

    def on_message_complete(self) -> None:
        if self.status == 0:
            return  # the end of a 1xx interim answer
        if self.responded and (self.head_only or self.status in (204, 304)):
            return  # finished at the head
        parser = self.parser
        assert parser is not None  # noqa: S101
        if self.resp_framing == _CHUNKED:
            self.out.append(LAST_CHUNK)
        self.complete = _REUSE if parser.should_keep_alive() else _CLOSE_UPSTREAM

    # -- helpers -------------------------------------------------------------------------

    def _response_head(
        self, status: int, parser: httptools.HttpResponseParser
    ) -> tuple[bytes, int]:
        client = self.client
        kept = [b"HTTP/1.1 %d %s" % (status, self.reason)]
        named: set[bytes] | None = None
        length = -1
        hop = HOP_BY_HOP
        for header in self.resp_headers:
            lname = header[0].lower()
            if lname == b"content-length":
                value = header[1]
                length = int(value) if value.isdigit() else -1
            elif lname not in hop:
                kept.append(b": ".join(header))
            elif lname == b"transfer-encoding":
                self.upstream_chunked = True
            elif lname == b"connection":
                value = header[1].lower()
                if value not in _PLAIN_CONNECTION:
                    tokens = {t.strip() for t in value.split(b",")} - _PLAIN_CONNECTION
                    named = tokens if named is None else named | tokens
        if named:
            kept = kept[:1] + [
                b": ".join(h)
                for h in self.resp_headers
                if (n := h[0].lower()) not in hop and n not in named and n != b"content-length"
            ]
        kept.append(b"")
        parts = [b"\r\n".join(kept)]
        no_body = self.head_only or status in (204, 304)
        if length >= 0 and not self.upstream_chunked:
            parts += (b"Content-Length: ", str(length).encode(), b"\r\n")
            framing = _NONE if no_body else _LENGTH
        elif no_body:
            framing = _NONE
        elif client.http11:
            parts.append(b"Transfer-Encoding: chunked\r\n")
            framing = _CHUNKED
        else:
            framing = _CLOSE
            client.keep_alive = False
        self.upstream_eof_ends = length < 0 and not self.upstream_chunked and not no_body
        if self.set_cookie:
            parts.append(self.set_cookie)
        if not client.keep_alive or client.worker.draining:
            parts.append(b"Connection: close\r\n")
            self.close_after = True
        elif not client.http11:
            parts.append(b"Connection: keep-alive\r\n")
        parts.append(b"\r\n")
        self.resp_length = length
        return b"".join(parts), framing

    def _finish(self, *, reuse: bool) -> None:
        self._flush()
        # The response parser holds bound methods of this exchange: a reference cycle. Left
        # to the cyclic collector, every parsed answer (each one compared with a shadow copy)
        # made garbage that its collections walked while the loop waited; dropped here, the
        # exchange is freed when its last reference goes. (The caller's frame still holds
        # the parser if it is feeding it.)
        self.parser = None
        conn = self.upstream
        self.upstream = None
        loop = self.client.loop
        now = loop.time()
        if conn is not None:
            if reuse and self.body_done:
                conn.pool.release(conn, now)
            else:
                conn.owner = None
                conn.close()
        # Likewise the client may still be paused for this exchange's upstream (a request body
        # the upstream stopped reading before it answered): the next request must be read.
        self.client.resume_for_upstream()
        self.series.observe(self.status, now - self.started, self.user)
        capture, self.capture = self.capture, None
        if capture is not None:
            capture.primary_done()
        self.client.exchange_done(self)

    def _failed_before_sending(self, status: int, detail: str) -> None:
        """The connect failed: nothing reached the upstream, so any request may be retried."""
        if not self.client.closed and self._retry(always=True):
            return
        self._fail(status, detail)

    def _upstream_failed(self, status: int, detail: str) -> None:
        if self.client.closed:
            self._fail(status, detail)
            return
        if not self.responded and self.status == 0 and self._retry(always=False):
            return
        self._fail(status, detail)

    def _retry(self, *, always: bool) -> bool:
        if self.retries >= 2:
            return False
        if not always:
            if not self.idempotent or self.replay is None or not self.body_done:
                return False
            if not (self.reused or self.version is CANDIDATE):
                return False
        self.retries += 1
        if self.version is CANDIDATE and self.tclass is USER:
            # The candidate failed: that counts against it, and the user is served by stable.
            self.series.observe(0, self.client.loop.time() - self.started, self.user)
            self.version = STABLE
            self.group = self.service.stable
            self.series = self.route.series[STABLE, USER]
            self.head = self.head.replace(_CANDIDATE_TAG, _STABLE_TAG, 1)
            if always:
                self.pending[0] = self.head
        if not always:
            assert self.replay is not None  # noqa: S101
            self.pending = [self.head, *self.replay]
        self.resp_headers = []
        self.client.worker.retries += 1
        if always:
            self.start()
        else:
            # The request went out on a connection that failed: retry on a new one, since a
            # stale pooled connection rarely comes alone (an upstream restart leaves them all).
            self.reused = False
            self.client.worker.spawn(self._connect(self.group.pick().pool), "upstream connect")
        return True

    def _fail(self, status: int, detail: str) -> None:
        self._flush()
        self.parser = None  # the cycle, as in _finish
        conn = self.upstream
        self.upstream = None
        if conn is not None:
            conn.owner = None
            conn.abort()
        client = self.client
        now = client.loop.time()
        self.series.observe(0, now - self.started, self.user)
        capture, self.capture = self.capture, None
        if capture is not None:
            capture.primary_failed()
        if client.closed:
            client.exchange_done(self)
            return
        if self.responded:
            client.abort()  # the head is out: a cut connection is the only honest signal
            return
        self.responded = True
        self.close_after = True
        client.write(simple_response(status, detail, close=True))
        client.exchange_done(self)

    def client_gone(self) -> None:
        """The client's connection closed before this exchange finished."""
        self.parser = None  # the cycle, as in _finish
        conn = self.upstream
        if conn is not None:
            self.upstream = None
            conn.owner = None
            conn.abort()  # the response has nowhere to go; never reuse a half-read connection
        capture, self.capture = self.capture, None
        if capture is not None:
            capture.primary_failed()

    def timed_out(self) -> None:
        self._fail(504, "upstream timeout")


__all__ = ["IDEMPOTENT", "Exchange"]
