"""The proxy is never the reason a request fails: upstream deaths, stale pooled connections,
resets, a broken shadow target and shutdown, all against real loopback sockets."""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from typing import Any

import httpx
import pytest

from tests.proxy.harness import Running, echoed, read_response, running_proxy
from tests.proxy.upstreams import Upstream

STICKY_HEADER: dict[str, Any] = {"split": {"weight": 50, "sticky": {"header": "x-user"}}}


async def load(
    proxy: Running, requests: int, concurrency: int, *, on_progress: Any = None
) -> list[httpx.Response | Exception]:
    """``requests`` GETs from ``concurrency`` keep-alive clients, one user id per request."""
    users = itertools.count()
    results: list[httpx.Response | Exception] = []

    async def client() -> None:
        async with httpx.AsyncClient(timeout=5) as http:
            while len(results) < requests:
                try:
                    response = await http.get(
                        proxy.url + "/echo", headers={"x-user": f"user-{next(users)}"}
                    )
                    results.append(response)
                except httpx.HTTPError as exc:
                    results.append(exc)
                if on_progress is not None:
                    await on_progress(len(results))

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return results


def failures(results: list[httpx.Response | Exception]) -> list[str]:
    return [
        repr(r) if isinstance(r, Exception) else f"{r.status_code} {r.text[:60]}"
        for r in results
        if isinstance(r, Exception) or r.status_code != 200
    ]


async def test_a_candidate_killed_under_load_costs_no_get() -> None:
    async with running_proxy(admin=False, **STICKY_HEADER) as proxy:
        killed = asyncio.Event()

        async def kill_midway(done: int) -> None:
            if done >= 150 and not killed.is_set():
                killed.set()
                await proxy.candidate.kill()

        results = await load(proxy, 400, 10, on_progress=kill_midway)
        assert killed.is_set()
        assert failures(results) == []
        served_by = [r.headers["x-upstream"] for r in results if isinstance(r, httpx.Response)]
        assert "candidate" in served_by[:150]  # the split did send users to the candidate
        assert set(served_by[200:]) == {"stable"}  # and stable took them all after the kill
        assert proxy.app.worker.retries > 0


async def test_a_stale_pooled_connection_is_retried_for_get() -> None:
    stable = Upstream("stable", stale_after=1)  # every reused connection was dropped upstream
    async with running_proxy(admin=False, stable_upstream=stable) as proxy:
        async with httpx.AsyncClient() as client:
            for n in range(5):
                response = await client.get(proxy.url + f"/echo?{n}")
                assert response.status_code == 200
        assert stable.dropped >= 4  # the GETs that met a stale connection...
        assert proxy.app.worker.retries == stable.dropped  # ...were each retried once
        assert stable.requests["/echo"] == 5


async def test_several_stale_pooled_connections_at_once_still_cost_no_get() -> None:
    # An upstream restart leaves every pooled connection stale at once; a retry that takes the
    # next stale one from the pool must not use up the retries.
    stable = Upstream("stable", stale_after=1)
    async with (
        running_proxy(admin=False, stable_upstream=stable) as proxy,
        httpx.AsyncClient() as client,
    ):
        first = await asyncio.gather(*(client.get(proxy.url + "/slow?ms=50") for _ in range(6)))
        assert [r.status_code for r in first] == [200] * 6
        pool = next(iter(proxy.app.worker.pools.values()))
        assert len(pool.idle) == 6
        for n in range(6):
            response = await client.get(proxy.url + f"/echo?{n}")
            assert response.status_code == 200, response.text
        assert proxy.app.worker.retries == stable.dropped == 6


async def test_a_post_whose_body_went_out_on_a_stale_connection_is_a_502_not_a_retry() -> None:
    # POST is not idempotent and its body already reached the upstream (which may have acted on
    # it), so the proxy does not replay it: the client gets 502 and decides. The proxy's next
    # requests are served on a fresh connection.
    stable = Upstream("stable", stale_after=1)
    async with running_proxy(admin=False, stable_upstream=stable) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.app.port)
        writer.write(b"GET /echo HTTP/1.1\r\nHost: a\r\n\r\n")  # leaves a pooled connection
        assert (await read_response(reader)).status == 200
        writer.write(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello")
        response = await read_response(reader)
        writer.close()
        assert response.status == 502
        assert stable.dropped == 1  # it did arrive, body and all, on the stale connection
        assert stable.requests["/echo"] == 1  # and was not sent again
        assert proxy.app.worker.retries == 0
        async with httpx.AsyncClient() as client:
            assert (await client.post(proxy.url + "/echo", content=b"x")).status_code == 200


async def test_an_upstream_reset_before_the_response_is_a_502_and_the_next_are_served() -> None:
    async with running_proxy(admin=False) as proxy, httpx.AsyncClient() as client:
        response = await client.get(proxy.url + "/reset")
        assert response.status_code == 502
        for _ in range(3):
            assert (await client.get(proxy.url + "/echo")).status_code == 200


async def test_a_reset_mid_response_cuts_that_client_only() -> None:
    async with running_proxy(admin=False) as proxy:

        async def cut() -> tuple[int, Exception | None]:
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.app.port)
            writer.write(b"GET /reset-mid HTTP/1.1\r\nHost: a\r\n\r\n")
            head = await read_response(reader, no_body=True)
            try:
                await reader.readexactly(int(head.header("content-length") or 0))
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                return head.status, exc
            finally:
                writer.close()
            return head.status, None

        async def others() -> list[int]:
            async with httpx.AsyncClient() as client:
                statuses = []
                for _ in range(20):
                    statuses.append((await client.get(proxy.url + "/echo")).status_code)
                    await asyncio.sleep(0.005)
                return statuses

        (status, error), statuses = await asyncio.gather(cut(), others())
        assert status == 200  # the head had gone out before the reset...
        assert error is not None  # ...so the body is visibly incomplete, not a fake success
        if isinstance(error, asyncio.IncompleteReadError):
            assert 0 < len(error.partial) < 100_000
        assert statuses == [200] * 20


# -- a broken shadow target ---------------------------------------------------------------------


async def user_latencies(proxy: Running, count: int) -> list[float]:
    """Latencies of ``count`` sequential GETs on one keep-alive connection; all must be 200."""
    result = []
    async with httpx.AsyncClient() as client:
        for n in range(count):
            started = time.perf_counter()
            response = await client.get(proxy.url + f"/echo?{n}")
            result.append(time.perf_counter() - started)
            assert response.status_code == 200, response.text
            assert response.headers["x-upstream"] == "stable"
    return result


def shadow_counts(proxy: Running) -> dict[str, int]:
    proxy.app.merge()
    return dict(proxy.app.hub.aggregate.shadow_totals())[("shop", "default")]


@pytest.mark.parametrize("failure", ["down", "slow", "resetting"])
async def test_a_broken_shadow_target_costs_users_nothing(failure: str) -> None:
    candidate = Upstream(
        "candidate", delay_s=0.3 if failure == "slow" else 0.0, reset_all=failure == "resetting"
    )
    async with running_proxy(admin=False, candidate_upstream=candidate) as proxy:
        if failure == "down":
            await candidate.kill()
        without = await user_latencies(proxy, 30)
        assert proxy.app.reload(proxy.config(shadow={"share": 100, "timeout_s": 0.1}))
        with_shadow = await user_latencies(proxy, 30)
        await asyncio.sleep(0.2)  # the last copies time out
        counts = shadow_counts(proxy)
    median_without = statistics.median(without)
    median_with = statistics.median(with_shadow)
    assert median_with < median_without * 3 + 0.005, (median_with, median_without)
    dropped = counts["dropped_error"] + counts["dropped_timeout"] + counts["dropped_queue_full"]
    assert dropped == 30, counts
    assert counts["sent"] == 0
    assert counts["compared"] == 0


# -- shutdown -----------------------------------------------------------------------------------


async def test_a_graceful_stop_finishes_requests_in_flight_and_refuses_new_ones() -> None:
    async with running_proxy(admin=False) as proxy, httpx.AsyncClient(timeout=5) as client:
        port = proxy.app.port
        in_flight = [
            asyncio.ensure_future(client.get(proxy.url + f"/slow?ms=500&n={n}")) for n in range(5)
        ]
        async with asyncio.timeout(2):
            while proxy.stable.requests["/slow"] < 5:  # they reached the upstream
                await asyncio.sleep(0.01)
        stopping = asyncio.ensure_future(proxy.app.stop())
        await asyncio.sleep(0.05)
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", port)
        responses = await asyncio.gather(*in_flight)
        assert [r.status_code for r in responses] == [200] * 5
        assert all(echoed(r.content)["target"].startswith("/slow") for r in responses)
        assert all(r.headers.get("connection") == "close" for r in responses)
        await stopping
