"""Large bodies stream through the proxy with flat memory, with backpressure both ways.

The proxy, the upstream and the client all run in the test's process, so tracemalloc's peak
over a transfer bounds what the proxy buffered: 64 MiB pass while the peak grows by less than
8 MiB, although a slow reader (the client for a download, the upstream for an upload) would let
an unbounded proxy pile up most of the body in memory.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager

from tests.proxy.harness import echoed, read_response, running_proxy

MIB = 1024 * 1024
TOTAL_MIB = 64
SLOW_MIB = 8  # read slowly at first: 4 ms per 64 KiB, about half a second
GROWTH_LIMIT = 8 * MIB


@contextmanager
def traced() -> Iterator[list[int]]:
    """Yields a list that holds the peak growth of traced memory once the block ends."""
    result: list[int] = []
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        yield result
        result.append(tracemalloc.get_traced_memory()[1] - base)
    finally:
        tracemalloc.stop()


async def test_a_64_mib_download_to_a_slow_reader_keeps_memory_flat() -> None:
    async with running_proxy(admin=False) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.app.port)
        with traced() as growth:
            writer.write(b"GET /big?mb=%d HTTP/1.1\r\nHost: a\r\n\r\n" % TOTAL_MIB)
            head = await read_response(reader, no_body=True)
            assert head.header("content-length") == str(TOTAL_MIB * MIB)
            received = 0
            while received < SLOW_MIB * MIB:
                received += len(await reader.read(65536))
                await asyncio.sleep(0.004)
            while received < TOTAL_MIB * MIB:
                data = await reader.read(MIB)
                assert data, f"the body ended after {received} bytes"
                received += len(data)
        # the connection is fine afterwards: the next request on it is answered
        writer.write(b"GET /echo HTTP/1.1\r\nHost: a\r\n\r\n")
        assert (await read_response(reader)).status == 200
        writer.close()
    assert received == TOTAL_MIB * MIB
    assert growth[0] < GROWTH_LIMIT, f"peak memory grew by {growth[0] / MIB:.1f} MiB"


async def test_a_64_mib_upload_to_a_slow_upstream_keeps_memory_flat() -> None:
    block = os.urandom(65536)
    digest = hashlib.sha256()
    async with running_proxy(admin=False) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.app.port)
        with traced() as growth:
            writer.write(
                b"POST /upload?read_ms=4&read_mb=%d HTTP/1.1\r\nHost: a\r\n"
                b"Content-Length: %d\r\n\r\n" % (SLOW_MIB, TOTAL_MIB * MIB)
            )
            for _ in range(TOTAL_MIB * MIB // len(block)):
                writer.write(block)
                digest.update(block)
                await writer.drain()
            response = await read_response(reader)
        writer.close()
    echo = echoed(response.body)
    assert echo["body_length"] == TOTAL_MIB * MIB
    assert echo["body_sha256"] == digest.hexdigest()
    assert growth[0] < GROWTH_LIMIT, f"peak memory grew by {growth[0] / MIB:.1f} MiB"


async def test_a_64_mib_chunked_upload_keeps_memory_flat() -> None:
    block = os.urandom(65536)
    digest = hashlib.sha256()
    async with running_proxy(admin=False) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.app.port)
        with traced() as growth:
            writer.write(b"PUT /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
            framed = b"%x\r\n%s\r\n" % (len(block), block)
            for _ in range(TOTAL_MIB * MIB // len(block)):
                writer.write(framed)
                digest.update(block)
                await writer.drain()
            writer.write(b"0\r\n\r\n")
            response = await read_response(reader)
        writer.close()
    echo = echoed(response.body)
    assert echo["body_length"] == TOTAL_MIB * MIB
    assert echo["body_sha256"] == digest.hexdigest()
    assert growth[0] < GROWTH_LIMIT, f"peak memory grew by {growth[0] / MIB:.1f} MiB"
