"""The upstream keep-alive pool (``stageless.proxy.pool``) on real loopback connections."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
import uvloop

from stageless.proxy.pool import Pool


async def released_after_a_pause() -> tuple[bool, bool, bool]:
    """Connect to a server that answers, pause reading (a slow client's backpressure), give
    the connection back, then see whether it reads what the server sends next."""
    answers: list[asyncio.StreamWriter] = []

    async def serve(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        answers.append(writer)

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    host, port = server.sockets[0].getsockname()[:2]
    pool = Pool(asyncio.get_running_loop(), (host, port), max_idle=4, idle_timeout=30)
    conn = await pool.connect(5)
    assert conn.transport is not None
    conn.transport.pause_reading()

    pool.release(conn, 0.0)
    reading = conn.transport.is_reading()
    taken = pool.take() is conn
    # An idle connection that reads notices bytes (or a close) from the upstream at once.
    while not answers:
        await asyncio.sleep(0.01)
    answers[0].write(b"unexpected")
    for _ in range(200):
        if conn.closed:
            break
        await asyncio.sleep(0.01)
    pool.close()
    conn.close()
    answers[0].close()
    server.close()
    await server.wait_closed()
    return reading, taken, conn.closed


@pytest.mark.parametrize("loop_factory", [asyncio.new_event_loop, uvloop.new_event_loop])
def test_a_connection_paused_by_a_slow_client_reads_again_once_idle(
    loop_factory: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        reading, taken, closed = runner.run(released_after_a_pause())

    assert reading  # before the fix: still paused, the next answer was never read (504)
    assert taken
    assert closed  # bytes on an idle connection: seen, and the connection dropped
