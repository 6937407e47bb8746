"""Active health checks against real loopback servers: probes, thresholds, reloads, stop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import yaml

from stageless.proxy.config import HealthCheck, ProxyConfig, parse_config
from stageless.proxy.health import AddressHealth, HealthChecker, ProbeResult, probe
from tests.ports import free_port

FAST = {"interval_s": 0.02, "timeout_s": 0.5, "healthy_threshold": 2, "unhealthy_threshold": 3}


class Upstream:
    """A loopback HTTP server answering every request with ``status`` (or ``raw`` bytes)."""

    def __init__(self) -> None:
        self.status = 200
        self.raw: bytes | None = None
        self.silent = False
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self, port: int = 0) -> Upstream:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", port)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        assert self.server is not None
        if self.server.is_serving():
            self.server.close()
            await self.server.wait_closed()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            self.requests.append(head)
            if self.silent:
                await reader.read()  # until the prober gives up and closes
            answer = (
                self.raw
                if self.raw is not None
                else (
                    f"HTTP/1.1 {self.status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                ).encode()
            )
            writer.write(answer)
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    server = await Upstream().start()
    yield server
    await server.stop()


def config(*addresses: str, check: dict[str, Any] | None = None) -> ProxyConfig:
    """A one-service configuration whose stable version is ``addresses``."""
    service: dict[str, Any] = {
        "name": "shop",
        "stable": {"addresses": list(addresses)},
        "candidate": {"addresses": [f"127.0.0.1:{free_port()}"]},
    }
    if check is not None:
        service["health_check"] = check
    document = {"admin": None, "services": [service]}
    return parse_config(yaml.safe_dump(document), source="test")


def endpoint(address: str) -> tuple[str, int]:
    host, port = address.rsplit(":", 1)
    return host, int(port)


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)


def health_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("stageless-health-")]


# -- one probe ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "ok"), [(200, True), (204, True), (301, True), (404, False), (500, False)]
)
async def test_a_probe_passes_on_2xx_and_3xx(upstream: Upstream, status: int, ok: bool) -> None:
    upstream.status = status
    result = await probe(endpoint(upstream.address), HealthCheck())
    assert result == ProbeResult(ok, f"status {status}")


async def test_a_probe_sends_a_get_with_the_path_and_host(upstream: Upstream) -> None:
    await probe(endpoint(upstream.address), HealthCheck(path="/ready?deep=1"))
    await probe(endpoint(upstream.address), HealthCheck(host="shop.internal"))
    first, second = upstream.requests
    assert first.startswith(b"GET /ready?deep=1 HTTP/1.1\r\n")
    assert f"\r\nHost: {upstream.address}\r\n".encode() in first
    assert b"\r\nConnection: close\r\n" in first
    assert second.startswith(b"GET /healthz HTTP/1.1\r\n")
    assert b"\r\nHost: shop.internal\r\n" in second


async def test_a_probe_fails_on_a_closed_port() -> None:
    result = await probe(("127.0.0.1", free_port()), HealthCheck())
    assert result == ProbeResult(False, "connection refused")


async def test_a_probe_fails_when_no_answer_comes_in_time(upstream: Upstream) -> None:
    upstream.silent = True
    result = await probe(endpoint(upstream.address), HealthCheck(timeout_s=0.1))
    assert result == ProbeResult(False, "no answer within 0.1 s")


@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        (b"", "connection closed before a status line"),
        (b"HTTP/1.1 200", "connection closed before a status line"),
        (b"SSH-2.0-OpenSSH\r\n", "malformed status line b'SSH-2.0-OpenSSH\\r\\n'"),
        (b"HTTP/1.1 abc OK\r\n", "malformed status line b'HTTP/1.1 abc OK\\r\\n'"),
    ],
)
async def test_a_probe_fails_on_a_malformed_answer(
    upstream: Upstream, raw: bytes, detail: str
) -> None:
    upstream.raw = raw
    assert await probe(endpoint(upstream.address), HealthCheck()) == ProbeResult(False, detail)


# -- thresholds (no sockets) -------------------------------------------------------------------


def test_thresholds_count_results_in_a_row() -> None:
    check = HealthCheck(healthy_threshold=2, unhealthy_threshold=3)
    health = AddressHealth(("127.0.0.1", 1))
    passed, failed = ProbeResult(True, "status 200"), ProbeResult(False, "status 500")
    assert health.healthy
    flips = [health.record(result, check) for result in [failed, failed, passed, failed, failed]]
    assert flips == [False] * 5 and health.healthy  # a pass in between resets the failures
    assert health.record(failed, check) and not health.healthy
    assert health.failures == 3
    assert not health.record(failed, check)
    assert not health.record(passed, check) and not health.healthy
    assert health.record(passed, check) and health.healthy
    assert (health.successes, health.failures, health.checks) == (2, 0, 9)
    assert health.detail == "status 200"


# -- the checker against real servers ----------------------------------------------------------


async def test_an_address_turns_unhealthy_and_back_after_the_thresholds(
    upstream: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="stageless.proxy")
    checker = HealthChecker(config(upstream.address, check=FAST))
    health = checker.address(endpoint(upstream.address))
    assert health is not None and health.healthy
    checker.start()
    try:
        await until(lambda: health.checks >= 3)
        assert health.healthy and health.detail == "status 200"

        upstream.status = 500
        await until(lambda: not health.healthy)
        assert health.detail == "status 500"
        name = upstream.address
        assert f"upstream {name} is unhealthy (3 checks failed in a row: status 500)" in (
            caplog.messages
        )

        upstream.status = 200
        await until(lambda: health.healthy)
        assert f"upstream {name} is healthy again (2 checks passed in a row: status 200)" in (
            caplog.messages
        )

        await upstream.stop()  # the port closes: refused
        await until(lambda: not health.healthy)
        assert health.detail == "connection refused"
        assert health.failures >= 3
    finally:
        await checker.stop()


async def test_without_a_health_check_every_address_is_healthy_and_unchecked(
    upstream: Upstream,
) -> None:
    checker = HealthChecker(config(upstream.address))
    checker.start()
    await asyncio.sleep(0.05)
    assert checker.address(endpoint(upstream.address)) is None
    assert dict(checker.states) == {}
    assert health_tasks() == []
    assert upstream.requests == []
    await checker.stop()


async def test_stop_cancels_and_awaits_every_task(upstream: Upstream) -> None:
    other = await Upstream().start()
    checker = HealthChecker(config(upstream.address, other.address, check=FAST))
    checker.start()
    tasks = health_tasks()
    assert len(tasks) == 3  # both stable addresses and the candidate's
    await checker.stop()
    assert all(task.done() for task in tasks)
    assert health_tasks() == []
    await other.stop()


async def test_update_keeps_the_state_of_kept_addresses(upstream: Upstream) -> None:
    other = await Upstream().start()
    first = config(upstream.address, check=FAST)
    checker = HealthChecker(first)
    checker.start()
    try:
        kept = checker.address(endpoint(upstream.address))
        assert kept is not None
        upstream.status = 503
        await until(lambda: not kept.healthy)
        dropped = [e for e in checker.states if e != endpoint(upstream.address)]

        # a new address joins, the old candidate leaves, the kept one keeps its state
        checker.update(config(upstream.address, other.address, check=FAST))
        assert checker.address(endpoint(upstream.address)) is kept
        assert not kept.healthy
        added = checker.address(endpoint(other.address))
        assert added is not None and added.healthy
        for gone in dropped:
            assert checker.address(gone) is None
        await until(lambda: added.checks >= 1)
        await until(lambda: len(health_tasks()) == 3)  # the dropped candidate's task ended

        # a changed check restarts the task with the new path, state kept
        checker.update(config(upstream.address, other.address, check={**FAST, "path": "/v2"}))
        assert checker.address(endpoint(upstream.address)) is kept and not kept.healthy
        await until(lambda: upstream.requests[-1].startswith(b"GET /v2 "))
        upstream.status = 200
        await until(lambda: kept.healthy)

        # no health check any more: unchecked, hence healthy
        checker.update(config(upstream.address, other.address))
        assert checker.address(endpoint(upstream.address)) is None
        await until(lambda: health_tasks() == [])
    finally:
        await checker.stop()
        await other.stop()


async def test_update_before_start_spawns_nothing(upstream: Upstream) -> None:
    checker = HealthChecker(config(upstream.address))
    checker.update(config(upstream.address, check=FAST))
    assert checker.address(endpoint(upstream.address)) is not None
    assert health_tasks() == []
    checker.start()
    await until(lambda: len(upstream.requests) >= 1)
    await checker.stop()
