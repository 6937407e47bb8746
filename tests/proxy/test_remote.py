"""A real proxy (ProxyApp) driven by a real control plane (`stageless serve` in a child process).

Pushed weights change routing within a second; the proxy keeps serving its last configuration
when the control plane dies, starts from its cache file when the control plane is down, refuses
a pushed version that does not validate on its machine, and is refused with a wrong token.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from click.testing import CliRunner

from stageless.cli import main
from stageless.errors import ValidationError
from stageless.proxy.app import ProxyApp
from stageless.proxy.config import ProxyConfig, parse_config
from stageless.proxy.remote import (
    ControlPlaneUnavailableError,
    RemoteConfig,
    RemoteOptions,
    backoff_delay,
    read_cache,
)
from stageless.proxy.supervisor import Supervisor
from stageless.service import open_service
from stageless.store import TokenScope, sqlite_url
from tests.live_server import LiveServer
from tests.ports import free_port
from tests.proxy.harness import config_text
from tests.proxy.upstreams import Upstream

FAST = RemoteOptions(
    heartbeat_s=0.5,
    backoff_initial_s=0.05,
    backoff_max_s=0.2,
    connect_timeout_s=1.0,
    initial_wait_s=3.0,
)


@dataclass
class ControlPlane:
    server: LiveServer
    admin: str

    def token(self, name: str, proxy_config: str) -> str:
        service = open_service(sqlite_url(self.server.data_dir))
        try:
            return service.tokens.create(
                name, TokenScope.PROXY, proxy_config=proxy_config, actor="test"
            ).plaintext
        finally:
            service.close()

    def push(self, name: str, document: str) -> int:
        response = httpx.put(
            f"{self.server.url}/api/v1/proxy-configs/{name}",
            content=document,
            headers={"Authorization": f"Bearer {self.admin}", "Content-Type": "application/yaml"},
        )
        assert response.status_code in (200, 201), response.text
        version: int = response.json()["version"]
        return version


@pytest.fixture(scope="module")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    live = LiveServer(tmp_path_factory.mktemp("control-plane"), heartbeat_s=0.5)
    admin = live.create_token("admin", "admin")
    with live:
        yield ControlPlane(live, admin)


@pytest.fixture
async def upstreams() -> AsyncIterator[tuple[Upstream, Upstream]]:
    stable, candidate = await Upstream("stable").start(), await Upstream("candidate").start()
    yield stable, candidate
    await stable.stop()
    await candidate.stop()


def pushed(upstreams: tuple[Upstream, Upstream], weight: float, **service: object) -> str:
    """A complete proxy configuration as the control plane holds it. Its listen and admin
    (``127.0.0.1:0``) and workers are the kind of thing the proxy's own file overrides."""
    stable, candidate = upstreams
    document = yaml.safe_load(
        config_text([stable.address], [candidate.address], split={"weight": weight}, **service)
    )
    document["listen"] = "127.0.0.1:1"  # ignored: the local file's listen wins
    return yaml.safe_dump(document)


def local_file(
    control_plane: ControlPlane, name: str, token: str, cache: Path | None, **extra: object
) -> ProxyConfig:
    section: dict[str, object] = {"url": control_plane.server.url, "token": token, "config": name}
    if cache is not None:
        section["cache_path"] = str(cache)
    document = {"listen": "127.0.0.1:0", "admin": None, "control_plane": section, **extra}
    return parse_config(yaml.safe_dump(document), source="local.yaml")


@asynccontextmanager
async def following(local: ProxyConfig) -> AsyncIterator[ProxyApp]:
    """A started ProxyApp whose configuration comes from the control plane (or the cache)."""
    remote = RemoteConfig(local, options=FAST)
    app = ProxyApp(await remote.initial(), remote=remote)
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


async def served_by(app: ProxyApp, count: int = 6) -> set[str]:
    """Which upstreams answered ``count`` first visits (each a new sticky key)."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{app.port}") as client:
        answers = [await client.get("/echo") for _ in range(count)]
    assert all(answer.status_code == 200 for answer in answers), answers
    return {answer.headers["x-upstream"] for answer in answers}


async def until_served_by(app: ProxyApp, upstream: str, timeout: float = 1.0) -> float:
    """Seconds until every first visit goes to ``upstream``; fails after ``timeout``."""
    started = time.monotonic()
    while await served_by(app) != {upstream}:
        assert time.monotonic() - started < timeout, f"still not all on {upstream}"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def test_a_pushed_weight_changes_routing_within_a_second(
    control_plane: ControlPlane, upstreams: tuple[Upstream, Upstream], tmp_path: Path
) -> None:
    token = control_plane.token("edge-weights", "weights")
    control_plane.push("weights", pushed(upstreams, 0))
    async with following(local_file(control_plane, "weights", token, None)) as app:
        assert app.config.listen == "127.0.0.1:0"  # the local file's, not the pushed 1
        assert await served_by(app) == {"stable"}
        control_plane.push("weights", pushed(upstreams, 100))
        assert await until_served_by(app, "candidate") < 1.0
        control_plane.push("weights", pushed(upstreams, 0))
        assert await until_served_by(app, "stable") < 1.0
        status = app.status()["control_plane"]
        assert (status["version"], status["connected"], status["from_cache"]) == (3, True, False)


async def test_a_pushed_version_that_does_not_validate_here_is_refused(
    control_plane: ControlPlane, upstreams: tuple[Upstream, Upstream], tmp_path: Path
) -> None:
    token = control_plane.token("edge-refuse", "refuse")
    control_plane.push("refuse", pushed(upstreams, 100))
    async with following(local_file(control_plane, "refuse", token, tmp_path / "c.json")) as app:
        assert await served_by(app) == {"candidate"}
        # Valid for the control plane (secret_env names the proxy's environment), but this
        # proxy has no such variable: refused, and the running configuration stays.
        document = yaml.safe_load(pushed(upstreams, 0))
        document["signing_keys"] = [{"id": "k1", "secret_env": "STAGELESS_TEST_UNSET_KEY"}]
        control_plane.push("refuse", yaml.safe_dump(document))
        # An invalid document written straight into the store, bypassing the API's check.
        service = open_service(sqlite_url(control_plane.server.data_dir))
        try:
            service.store.update_proxy_config(
                "refuse", json.dumps({"services": [], "zzz": 1}), expected=None, actor="test"
            )
        finally:
            service.close()
        deadline = time.monotonic() + 2
        while app.status()["control_plane"]["refused"] < 2:
            assert time.monotonic() < deadline, app.status()
            await asyncio.sleep(0.02)
        assert await served_by(app) == {"candidate"}
        assert app.status()["control_plane"]["version"] == 1
        cached = read_cache(tmp_path / "c.json", server=control_plane.server.url, name="refuse")
        assert cached is not None and cached[0] == 1  # only good versions are cached
        # The stream goes on: the next good version is applied.
        control_plane.push("refuse", pushed(upstreams, 0))
        assert await until_served_by(app, "stable") < 1.0


async def test_a_wrong_token_is_refused_and_without_a_cache_the_proxy_does_not_start(
    control_plane: ControlPlane, upstreams: tuple[Upstream, Upstream]
) -> None:
    control_plane.push("guarded", pushed(upstreams, 0))
    other = control_plane.token("edge-other", "not-guarded")
    for token, refusal in [
        ("stl_not-a-token", "rejected the token (HTTP 401)"),
        (other, "does not allow this token to stream the proxy config (HTTP 403)"),
    ]:
        remote = RemoteConfig(local_file(control_plane, "guarded", token, None), options=FAST)
        started = time.monotonic()
        with pytest.raises(ControlPlaneUnavailableError, match="no cache_path is set"):
            await remote.initial()
        assert time.monotonic() - started < 1.0  # a refusal does not wait for initial_wait_s
        assert refusal in (remote.last_error or "")
        assert not remote.connected


async def test_the_proxy_outlives_the_control_plane_and_restarts_from_its_cache(
    upstreams: tuple[Upstream, Upstream], tmp_path: Path
) -> None:
    live = LiveServer(tmp_path / "cp", heartbeat_s=0.5)
    plane = ControlPlane(live, live.create_token("admin", "admin"))
    token = plane.token("edge", "edge")
    cache = tmp_path / "cache" / "edge.json"
    with live:
        plane.push("edge", pushed(upstreams, 100))
        async with following(local_file(plane, "edge", token, cache)) as app:
            assert await served_by(app) == {"candidate"}
            live.kill()
            await asyncio.sleep(0.3)
            assert not app.status()["control_plane"]["connected"]
            assert await served_by(app, 20) == {"candidate"}  # the last configuration stays
    # The control plane is down: a new proxy starts from the cache file.
    async with following(local_file(plane, "edge", token, cache)) as app:
        assert app.status()["control_plane"]["from_cache"] is True
        assert await served_by(app) == {"candidate"}
        # The control plane comes back (same port): the proxy reconnects by itself.
        live.start()
        try:
            plane.push("edge", pushed(upstreams, 0))
            assert await until_served_by(app, "stable", timeout=3.0) < 3.0
            assert app.status()["control_plane"]["from_cache"] is False
        finally:
            live.kill()


async def test_sighup_re_reads_the_local_file(
    control_plane: ControlPlane, upstreams: tuple[Upstream, Upstream], tmp_path: Path
) -> None:
    token = control_plane.token("edge-hup", "hup")
    control_plane.push("hup", pushed(upstreams, 0))
    path = tmp_path / "proxy.yaml"
    section = {"url": control_plane.server.url, "token": token, "config": "hup"}
    original = {"listen": "127.0.0.1:0", "admin": None, "control_plane": section}
    path.write_text(yaml.safe_dump(original))
    local = parse_config(path.read_text(), source=str(path))
    remote = RemoteConfig(local, options=FAST)
    app = ProxyApp(await remote.initial(), config_path=path, remote=remote)
    await app.start()
    try:
        # listen needs a restart: refused, everything stays.
        path.write_text(
            yaml.safe_dump({"listen": "127.0.0.1:1", "admin": None, "control_plane": section})
        )
        app.reload_from_file()
        assert app.config.listen == "127.0.0.1:0"
        assert remote.local.listen == "127.0.0.1:0"
        # A file that repeats pushed settings is refused as a whole at load.
        with pytest.raises(ValidationError, match="comes from proxy config 'hup'"):
            parse_config(
                yaml.safe_dump({"control_plane": section, "services": []}), source="x.yaml"
            )
        # Same file: re-merged with the last pushed document, nothing changes.
        path.write_text(yaml.safe_dump(original))
        app.reload_from_file()
        assert await served_by(app) == {"stable"}
        control_plane.push("hup", pushed(upstreams, 100))
        assert await until_served_by(app, "candidate") < 1.0
        # A changed control_plane section takes effect at once: here a token that is refused.
        path.write_text(
            yaml.safe_dump({**original, "control_plane": {**section, "token": "stl_revoked"}})
        )
        app.reload_from_file()
        deadline = time.monotonic() + 2
        while "HTTP 401" not in (remote.last_error or ""):
            assert time.monotonic() < deadline, remote.status()
            await asyncio.sleep(0.02)
        assert await served_by(app) == {"candidate"}  # and the configuration stays
    finally:
        await app.stop()


async def test_a_supervisor_with_workers_follows_the_control_plane(
    control_plane: ControlPlane, upstreams: tuple[Upstream, Upstream], tmp_path: Path
) -> None:
    token = control_plane.token("edge-workers", "workers")
    control_plane.push("workers", pushed(upstreams, 0))
    section = {"url": control_plane.server.url, "token": token, "config": "workers"}
    path = tmp_path / "proxy.yaml"
    path.write_text(
        yaml.safe_dump(
            {"listen": "127.0.0.1:0", "admin": None, "workers": 2, "control_plane": section}
        )
    )
    supervisor = Supervisor(parse_config(path.read_text(), source=str(path)), path)
    running = asyncio.get_running_loop().create_task(supervisor.run())
    try:
        while supervisor.port == 0:
            assert not running.done(), running
            await asyncio.sleep(0.02)
        assert supervisor.config.workers == 2 and supervisor.remote is not None
        base = f"http://127.0.0.1:{supervisor.port}"
        deadline = time.monotonic() + 15  # worker processes start (spawn)
        async with httpx.AsyncClient(base_url=base) as client:
            while True:
                try:
                    if (await client.get("/echo")).headers["x-upstream"] == "stable":
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            control_plane.push("workers", pushed(upstreams, 100))
            started = time.monotonic()
            while True:
                answers = [(await client.get("/echo")).headers["x-upstream"] for _ in range(6)]
                if set(answers) == {"candidate"}:
                    break
                assert time.monotonic() - started < 1.0, answers
                await asyncio.sleep(0.02)
    finally:
        await supervisor.stop()
        await running


def test_reconnection_delays_are_jittered_and_capped() -> None:
    delays = [backoff_delay(FAST, attempt) for attempt in range(2000)]
    assert all(0 <= d <= FAST.backoff_max_s for d in delays)
    assert max(backoff_delay(FAST, 0) for _ in range(200)) <= FAST.backoff_initial_s
    assert len(set(delays)) > 1000  # jittered, not a fixed ladder


def test_check_names_where_the_configuration_comes_from(tmp_path: Path) -> None:
    path = tmp_path / "proxy.yaml"
    section = {"url": "http://cp.example:7411/", "token_env": "EDGE_TOKEN", "config": "edge"}
    path.write_text(yaml.safe_dump({"listen": "127.0.0.1:0", "control_plane": section}))
    result = CliRunner().invoke(
        main, ["proxy", "--config", str(path), "--check"], env={"EDGE_TOKEN": "stl_x"}
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{path}: valid (proxy config 'edge' on http://cp.example:7411)\n"
    unset = CliRunner().invoke(main, ["proxy", "--config", str(path), "--check"], env={})
    assert unset.exit_code == 2
    assert "control_plane.token_env: the environment variable EDGE_TOKEN is not set" in unset.stderr


def test_without_control_plane_or_cache_the_proxy_exits_with_a_plain_error(
    tmp_path: Path,
) -> None:
    path = tmp_path / "proxy.yaml"
    port = free_port()  # nothing listens there
    section = {
        "url": f"http://127.0.0.1:{port}",
        "token": "stl_x",
        "config": "edge",
        "cache_path": str(tmp_path / "missing.json"),
    }
    path.write_text(yaml.safe_dump({"listen": "127.0.0.1:0", "control_plane": section}))
    started = time.monotonic()
    result = CliRunner().invoke(main, ["proxy", "--config", str(path)])
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: no configuration: proxy config 'edge' on ")
    assert f"the cache file {tmp_path / 'missing.json'} has none" in result.stderr
    assert time.monotonic() - started < 5  # a refused connection does not wait 10 s


async def test_a_version_pushed_while_the_proxy_starts_is_applied_when_it_attaches(
    control_plane: ControlPlane, upstreams: tuple[Upstream, Upstream]
) -> None:
    token = control_plane.token("edge-early", "early")
    control_plane.push("early", pushed(upstreams, 0))
    remote = RemoteConfig(local_file(control_plane, "early", token, None), options=FAST)
    first = await remote.initial()
    control_plane.push("early", pushed(upstreams, 100))
    deadline = time.monotonic() + 2
    while remote.version != 2:  # received before anything is attached
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    app = ProxyApp(first, remote=remote)
    await app.start()
    try:
        assert app.config.services[0].split.weight == 100
        assert await served_by(app) == {"candidate"}
    finally:
        await app.stop()
