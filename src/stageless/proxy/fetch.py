"""A whole-response HTTP/1.1 exchange over a pooled connection, for shadow copies.

The user's request path streams (:mod:`stageless.proxy.exchange`); a shadow copy instead needs
the candidate's whole answer in memory to compare it, up to a size limit, and must never hold
anything up. :func:`fetch` sends a request head and body on a connection from the given pool
and returns the status, headers and body once the response is complete.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httptools

from stageless.proxy.pool import Pool, UpstreamConnection


class TooLargeError(Exception):
    """The response body exceeded the limit."""


@dataclass(frozen=True, slots=True)
class Captured:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


class _Reader:
    """The pool.Owner that parses one response into a future."""

    __slots__ = ("body", "done", "head_only", "headers", "limit", "parser", "size", "status")

    def __init__(self, done: asyncio.Future[Captured], limit: int, head_only: bool) -> None:
        self.done = done
        self.limit = limit
        self.head_only = head_only
        self.parser = httptools.HttpResponseParser(self)
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.size = 0
        self.status = 0

    def upstream_data(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionError(f"invalid response: {exc}"))

    def upstream_lost(self, exc: Exception | None) -> None:
        self._fail(exc or ConnectionError("connection closed before the response ended"))

    def upstream_pause_writing(self) -> None:
        pass

    def upstream_resume_writing(self) -> None:
        pass

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status < 200:
            self.headers = []
            return
        self.status = status
        if self.head_only or status in (204, 304):
            self._complete()

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.size > self.limit:
            self._fail(TooLargeError())
            return
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.status:
            self._complete()

    def _complete(self) -> None:
        if not self.done.done():
            self.done.set_result(Captured(self.status, self.headers, b"".join(self.body)))

    def _fail(self, exc: BaseException) -> None:
        if not self.done.done():
            self.done.set_exception(exc)


async def fetch(
    pool: Pool, request: bytes, *, timeout: float, limit: int, head_only: bool = False
) -> Captured:
    """Send ``request`` (head and body) and read the whole response.

    Raises TimeoutError, OSError/ConnectionError, or :class:`TooLargeError`.
    """
    loop = pool.loop
    async with asyncio.timeout(timeout):
        conn = pool.take()
        if conn is None:
            conn = await pool.connect(timeout)
        done: asyncio.Future[Captured] = loop.create_future()
        reader = _Reader(done, limit, head_only)
        conn.owner = reader
        try:
            conn.write(request)
            captured = await done
        except BaseException:
            _discard(conn)
            raise
    if reader.parser.should_keep_alive() and not conn.closed:
        pool.release(conn, loop.time())
    else:
        _discard(conn)
    return captured


def _discard(conn: UpstreamConnection) -> None:
    conn.owner = None
    conn.abort()


__all__ = ["Captured", "TooLargeError", "fetch"]
