"""``stageless proxy --config FILE`` as a real process: serving, SIGHUP reloads (good and bad
files), SIGTERM, two workers behind one port, and ``--check``."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.ports import free_port
from tests.proxy.harness import SECRET
from tests.proxy.upstreams import Upstream

STAGELESS = str(Path(sys.executable).parent / "stageless")
GRACE_S = 1.0


def write_config(path: Path, upstreams: tuple[Upstream, Upstream], **top: Any) -> None:
    stable, candidate = upstreams
    document = {
        "signing_keys": [{"id": "k1", "secret": SECRET}],
        "timeouts": {"connect_s": 1, "read_s": 2, "total_s": 5, "shutdown_grace_s": GRACE_S},
        "services": [
            {
                "name": "shop",
                "stable": {"addresses": [stable.address]},
                "candidate": {"addresses": [candidate.address]},
                "split": {"weight": 0, "sticky": {"header": "x-user"}},
            }
        ],
        **top,
    }
    path.write_text(yaml.safe_dump(document))


def set_weight(path: Path, weight: float) -> None:
    document = yaml.safe_load(path.read_text())
    document["services"][0]["split"]["weight"] = weight
    path.write_text(yaml.safe_dump(document))


@dataclass
class Process:
    process: asyncio.subprocess.Process
    port: int
    admin_port: int
    log: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    async def logged(self, text: str, timeout: float = 5.0) -> str:
        """Wait for a log line containing ``text`` and return it."""
        async with asyncio.timeout(timeout):
            while True:
                for line in self.log:
                    if text in line:
                        return line
                await asyncio.sleep(0.02)

    async def signal(self, sig: signal.Signals) -> None:
        self.process.send_signal(sig)


@contextlib.asynccontextmanager
async def proxy_process(config: Path, port: int, admin_port: int) -> AsyncIterator[Process]:
    process = await asyncio.create_subprocess_exec(
        STAGELESS,
        "proxy",
        "--config",
        str(config),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    running = Process(process, port, admin_port)

    async def read_log() -> None:
        assert process.stderr is not None
        async for line in process.stderr:
            running.log.append(line.decode(errors="replace").rstrip())

    reader = asyncio.ensure_future(read_log())
    try:
        async with asyncio.timeout(15), httpx.AsyncClient() as client:
            while True:  # the admin port answers, and the proxy port accepts
                with contextlib.suppress(httpx.TransportError, OSError):
                    if (await client.get(running.admin_url + "/healthz")).status_code == 200:
                        _, writer = await asyncio.open_connection("127.0.0.1", port)
                        writer.close()
                        break
                if process.returncode is not None:
                    raise AssertionError("the proxy exited:\n" + "\n".join(running.log))
                await asyncio.sleep(0.05)
        yield running
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await reader


@contextlib.asynccontextmanager
async def upstreams() -> AsyncIterator[tuple[Upstream, Upstream]]:
    stable = await Upstream("stable").start()
    candidate = await Upstream("candidate").start()
    try:
        yield stable, candidate
    finally:
        await stable.stop()
        await candidate.stop()


async def served_by(url: str, user: str) -> str:
    async with httpx.AsyncClient() as client:  # a new connection each time
        response = await client.get(url + "/echo", headers={"x-user": user})
        assert response.status_code == 200
        return response.headers["x-upstream"]


async def stop_with_sigterm(proxy: Process) -> None:
    started = time.perf_counter()
    await proxy.signal(signal.SIGTERM)
    async with asyncio.timeout(GRACE_S + 5):
        code = await proxy.process.wait()
    assert code == 0, "\n".join(proxy.log)
    assert time.perf_counter() - started < GRACE_S + 3


async def test_one_worker_serves_reloads_on_sighup_refuses_a_bad_file_and_stops(
    tmp_path: Path,
) -> None:
    config = tmp_path / "proxy.yaml"
    port, admin_port = free_port(), free_port()
    top = {"listen": f"127.0.0.1:{port}", "admin": f"127.0.0.1:{admin_port}", "workers": 1}
    async with upstreams() as pair, contextlib.AsyncExitStack() as stack:
        write_config(config, pair, **top)
        proxy = await stack.enter_async_context(proxy_process(config, port, admin_port))
        assert await served_by(proxy.url, "u1") == "stable"

        set_weight(config, 100)
        await proxy.signal(signal.SIGHUP)
        line = await proxy.logged("configuration reloaded")
        assert "weight: 0 -> 100" in line
        async with httpx.AsyncClient() as client:
            status = (await client.get(proxy.admin_url + "/status")).json()
        assert status["services"][0]["weight"] == 100
        assert await served_by(proxy.url, "u1") == "candidate"

        config.write_text(config.read_text().replace("weight: 100", "weight: 140"))
        await proxy.signal(signal.SIGHUP)
        refused = await proxy.logged("reload refused")
        assert "keeping the running configuration" in refused
        await proxy.logged("services[0].split.weight")  # the problem, by path
        async with httpx.AsyncClient() as client:
            status = (await client.get(proxy.admin_url + "/status")).json()
        assert status["services"][0]["weight"] == 100
        assert await served_by(proxy.url, "u1") == "candidate"

        await stop_with_sigterm(proxy)


async def test_two_workers_share_the_port_and_the_metrics_and_reload_together(
    tmp_path: Path,
) -> None:
    config = tmp_path / "proxy.yaml"
    port, admin_port = free_port(), free_port()
    top = {"listen": f"127.0.0.1:{port}", "admin": f"127.0.0.1:{admin_port}", "workers": 2}
    async with upstreams() as pair, contextlib.AsyncExitStack() as stack:
        stable, candidate = pair
        write_config(config, pair, **top)
        proxy = await stack.enter_async_context(proxy_process(config, port, admin_port))
        # New connections: the kernel spreads them over the workers listening (SO_REUSEPORT).
        # Each worker keeps one pooled upstream connection, so two upstream connections mean
        # that both workers served.
        sent = 0
        async with asyncio.timeout(10):
            while sent < 24 or stable.connections < 2:
                assert await served_by(proxy.url, f"u{sent}") == "stable"
                sent += 1
        assert stable.connections == 2

        async with asyncio.timeout(5), httpx.AsyncClient() as client:
            total = 0.0
            while total < sent:  # the workers report once a second
                await asyncio.sleep(0.2)
                text = (await client.get(proxy.admin_url + "/metrics")).text
                total = sum(
                    sample.value
                    for family in text_string_to_metric_families(text)
                    for sample in family.samples
                    if sample.name == "stageless_proxy_requests_total"
                    and sample.labels["version"] == "stable"
                    and sample.labels["traffic_class"] == "user"
                )
        assert total == sent

        set_weight(config, 100)
        await proxy.signal(signal.SIGHUP)
        await proxy.logged("configuration reloaded")
        async with asyncio.timeout(5):
            while candidate.connections < 2:  # both workers route to the candidate now
                await served_by(proxy.url, "u-late")
        assert {await served_by(proxy.url, f"u{n}") for n in range(8)} == {"candidate"}
        async with httpx.AsyncClient() as client:
            status = (await client.get(proxy.admin_url + "/status")).json()
        assert [w["alive"] for w in status["workers"]] == [True, True]
        assert status["services"][0]["weight"] == 100
        assert status["hot_path"].startswith(("compiled hot path", "interpreted hot path"))

        await stop_with_sigterm(proxy)


def test_check_validates_without_serving(tmp_path: Path) -> None:
    config = tmp_path / "proxy.yaml"
    stable, candidate = Upstream("stable"), Upstream("candidate")
    stable.port, candidate.port = 9001, 9002
    write_config(config, (stable, candidate))
    good = subprocess.run(  # noqa: S603 (our own CLI)
        [STAGELESS, "proxy", "--config", str(config), "--check"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert good.returncode == 0, good.stderr
    assert "valid (1 services)" in good.stdout
    set_weight(config, 140)
    bad = subprocess.run(  # noqa: S603
        [STAGELESS, "proxy", "--config", str(config), "--check"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert bad.returncode == 2
    assert "services[0].split.weight: 140 is not between 0 and 100" in bad.stderr
