"""What the proxy builds per request and per connection is freed by reference counting.

A reference cycle (a parser holding bound methods of its owner, a job and its copies) leaves
its objects to the cyclic collector, whose collections walk them while the event loop waits:
with every request copied to a slow candidate they added milliseconds to the users' p99. Here
the collector keeps whatever it finds unreachable (``DEBUG_SAVEALL``) while real traffic
passes a running proxy, and no object of Stageless may be among it: every path that ends an
exchange, a copy or a connection (answered, failed, timed out, client gone) breaks its cycles.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from tests.proxy.harness import Running, raw_exchange, running_proxy
from tests.proxy.upstreams import unanswered_address

SHADOW: dict[str, Any] = {
    "shadow": {"share": 100, "timeout_s": 0.3},
    "routes": [{"name": "api", "prefix": "/api/", "shadow_methods": ["GET", "POST"]}],
}


@contextmanager
def unreachable_kept() -> Iterator[list[str]]:
    """Collect first, then keep what later collections find; yields the Stageless types kept
    by the collection made when the block ends."""
    found: list[str] = []
    gc.collect()
    flags = gc.get_debug()
    gc.set_debug(flags | gc.DEBUG_SAVEALL)
    try:
        yield found
        gc.collect()
        found.extend(
            type(o).__qualname__ for o in gc.garbage if type(o).__module__.startswith("stageless.")
        )
    finally:
        gc.set_debug(flags)
        gc.garbage.clear()


async def quiet(proxy: Running) -> None:
    """Until every client connection is gone and no copy is in flight."""
    async with asyncio.timeout(5):
        while proxy.app.worker.connections or proxy.app.worker.shadow.inflight:
            await asyncio.sleep(0.02)
    await asyncio.sleep(0.05)


async def test_answered_failed_and_copied_requests_leave_no_cyclic_garbage() -> None:
    async with running_proxy(admin=False, **SHADOW) as proxy:
        with unreachable_kept() as kept:
            async with httpx.AsyncClient(base_url=proxy.url) as client:
                for n in range(20):  # keep-alive, copied, compared (answers parsed)
                    assert (await client.get(f"/json?n={n}")).status_code == 200
                assert (await client.get("/chunked")).status_code == 200
                assert (await client.post("/api/orders", content=b"order=1")).status_code == 200
                assert (await client.head("/echo")).status_code == 200
                assert (await client.get("/status/503")).status_code == 503
                with pytest.raises(httpx.RemoteProtocolError):  # cut after its head: cut too
                    await client.get("/reset-mid")
            # HTTP/1.0, one connection each: the parsed path on the user's side too
            answer = await raw_exchange(proxy.app.port, b"GET /echo HTTP/1.0\r\nHost: a\r\n\r\n")
            assert answer.startswith(b"HTTP/1.1 200")
            # a client that leaves before its answer
            _, writer = await asyncio.open_connection("127.0.0.1", proxy.app.port)
            writer.write(b"GET /slow?ms=300 HTTP/1.1\r\nHost: a\r\n\r\n")
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.close()
            await writer.wait_closed()
            await quiet(proxy)
        assert proxy.candidate.requests.total() >= 20  # the copies did run
    assert kept == []


async def test_copies_to_an_unanswered_candidate_leave_no_cyclic_garbage() -> None:
    async with (
        unanswered_address() as nowhere,
        running_proxy(admin=False, candidate_address=nowhere, **SHADOW) as proxy,
    ):
        with unreachable_kept() as kept:
            async with httpx.AsyncClient(base_url=proxy.url) as client:
                for n in range(10):  # each copy times out (0.3 s): dropped, never compared
                    assert (await client.get(f"/json?n={n}")).status_code == 200
            await quiet(proxy)
        counters = proxy.app.worker.stats.shadow("shop", "default")
        assert counters.dropped_timeout == 10
    assert kept == []


async def test_pipelined_copies_leave_no_cyclic_garbage() -> None:
    shadow: dict[str, Any] = {"shadow": {"share": 100, "timeout_s": 0.3, "pipeline": 8}}
    async with running_proxy(admin=False, **shadow) as proxy:

        async def get(path: str) -> None:
            async with httpx.AsyncClient(base_url=proxy.url) as client:
                assert (await client.get(path)).status_code == 200

        with unreachable_kept() as kept:
            # answered: copies (and second stable samples) pipelined, read by one parser each
            await asyncio.gather(*(get(f"/json?n={n}") for n in range(16)))
            # failed: the candidate answers after 0.5 s, each pipelined copy times out at 0.3 s
            await asyncio.gather(*(get(f"/slow?ms=500&n={n}") for n in range(8)))
            await quiet(proxy)
        proxy.app.merge()
        counts = dict(proxy.app.hub.aggregate.shadow_totals())[("shop", "default")]
        assert counts["sent"] == 16, counts
        assert counts["dropped_timeout"] == 8, counts
        assert proxy.candidate.connections < 24  # pipelined: fewer connections than copies
    assert kept == []
