"""The whole story on loopback: a candidate proven (or refused) on live traffic, no staging.

What runs, all on 127.0.0.1:

- the control plane (``stageless serve``, a process of its own, SQLite in a temporary directory)
  with its rollout runner;
- the shop: stable, a candidate with a real regression (more 5xx on checkout, a slower tail, a
  changed JSON contract) and a good candidate (:mod:`stageless.demo.shop`);
- the built-in proxy, following its proxy config on the control plane and reporting its
  batches back (:mod:`stageless.proxy`);
- shoppers: thousands of simulated users with sticky cookies (:mod:`stageless.demo.traffic`)
  and a tester with a signed routing token.

Run 1 walks the bad candidate through shadow, testers, 5 %, 25 %, 100 %: the diff shows the
changed fields, the judge catches the regression at 5 % and the rollback happens by itself.
Run 2 does the same with the good candidate, which is promoted to 100 %. Every process and
server started is stopped at the end, on an error and on Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from rich.console import Console

from stageless.analysis.batch import TrafficClass
from stageless.demo.shop import BAD_CANDIDATE, GOOD_CANDIDATE, STABLE, Shop
from stageless.demo.traffic import Shoppers
from stageless.demo.view import LiveView, final_report
from stageless.proxy.app import ProxyApp
from stageless.proxy.config import parse_config
from stageless.proxy.remote import RemoteConfig
from stageless.routing.tokens import SigningKey, issue_token
from stageless.service import Precondition, open_service
from stageless.store import sqlite_url

SERVICE = "shop"
CONFIG = "shop"
#: Requests per second the shoppers send, and how many distinct shoppers there are.
RATE = 300.0
USERS = 4000
#: A run that has not finished by then is aborted (the plan's steps take about a minute).
RUN_DEADLINE_S = 150.0

PLAN = """\
service: shop
proxy_config: shop
stable: {addresses: ["STABLE"]}
candidate: {addresses: ["CANDIDATE"]}
judges:
  demo:                     # a fast judge for a two-minute demo (production: minutes)
    warmup_s: 0
    min_canary_requests: 150
    error_margin: 3
    latency_margin: 0.25
    tail_margin: 3
    # Shop, proxy and shoppers share one event loop on a machine doing other work: its stalls
    # hit both versions at once, in bursts, which the latency tests do not model. FAIL only
    # on a median 50 % slower or twice the tail exceedances, far below the regression's.
    latency_null_shift: 0.5
    tail_null_ratio: 2
steps:
  - kind: shadow
    share: 50
    until: {compared: 400, duration_s: 6}
    expected_fields: ["body.currency", "body.*.currency", "body.*[].currency"]
    max_unexpected_fields: 0
    max_error_percent: 5
  - kind: testers
    approval: manual
  - kind: canary
    weight: 5
    judge: demo
    min_duration_s: 8
    max_duration_s: 24
    on_timeout: proceed
  - kind: canary
    weight: 25
    judge: demo
    min_duration_s: 8
    max_duration_s: 18
    on_timeout: proceed
  - kind: promote
"""


@dataclass
class Stage:
    """Everything the demo started, to stop it all in the end."""

    workdir: Path
    serve: subprocess.Popen[bytes] | None = None
    url: str = ""
    admin_token: str = ""
    proxy: ProxyApp | None = None
    shops: list[Shop] = field(default_factory=list)
    shoppers: Shoppers | None = None
    tester_task: asyncio.Task[None] | None = None
    key: SigningKey | None = None


async def run(console: Console, *, plan_text: str = PLAN) -> int:
    """Both runs; 0 when the bad candidate was rolled back and the good one promoted."""
    with tempfile.TemporaryDirectory(prefix="stageless-demo-") as tmp:
        async with staged(Path(tmp), console) as stage:
            outcomes = []
            for title, candidate in (
                ("Run 1: a candidate with a regression", stage.shops[1]),
                ("Run 2: a good candidate", stage.shops[2]),
            ):
                outcomes.append(await rollout(stage, console, title, candidate, plan_text))
        ok = outcomes == ["ROLLED_BACK", "PROMOTED"]
        console.print(
            "[bold green]The bad candidate was rolled back by itself and the good one promoted."
            if ok
            else f"[bold red]Unexpected outcomes: {outcomes}"
        )
        return 0 if ok else 1


@contextlib.asynccontextmanager
async def staged(workdir: Path, console: Console) -> AsyncIterator[Stage]:
    stage = Stage(workdir)
    try:
        stage.shops = [
            await Shop(STABLE, seed=1).start(),
            await Shop(BAD_CANDIDATE, seed=2).start(),
            await Shop(GOOD_CANDIDATE, seed=3).start(),
        ]
        await start_control_plane(stage)
        console.print(f"control plane: {stage.url} (pid {stage.serve.pid if stage.serve else '?'})")
        await start_proxy(stage)
        assert stage.proxy is not None  # noqa: S101
        console.print(f"proxy: http://127.0.0.1:{stage.proxy.port}, following proxy config 'shop'")
        stage.shoppers = Shoppers("127.0.0.1", stage.proxy.port, users=USERS, rate=RATE, seed=7)
        stage.shoppers.start()
        yield stage
    finally:
        await stop(stage)


async def start_control_plane(stage: Stage) -> None:
    data = stage.workdir / "control-plane"
    data.mkdir()
    stable = stage.shops[0].address
    key = SigningKey("demo", secrets.token_urlsafe(32).encode())
    stage.key = key
    document = {
        "signing_keys": [{"id": key.id, "secret": key.secret.decode()}],
        "batches": {"interval_s": 1},
        "services": [
            {
                "name": SERVICE,
                "stable": {"addresses": [stable]},
                "candidate": {"addresses": [stage.shops[1].address]},
                "split": {"weight": 0},
                "shadow": {
                    "share": 0,
                    "noise_share": 50,
                    "compare": {"ignore_fields": ["body.request_id", "body.order"]},
                },
            }
        ],
    }
    service = open_service(sqlite_url(data))
    try:
        service.proxy_configs.put(
            CONFIG, json.dumps(document), precondition=Precondition(), actor="demo"
        )
        stage.admin_token = service.tokens.create("demo", "admin", actor="demo").plaintext
        proxy_token = service.tokens.create(
            "demo-proxy", "proxy", proxy_config=CONFIG, actor="demo"
        ).plaintext
    finally:
        service.close()
    (stage.workdir / "proxy-token").write_text(proxy_token)
    port = _free_port()
    stage.url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("STAGELESS_")}
    with (stage.workdir / "serve.log").open("ab") as log:
        stage.serve = subprocess.Popen(  # noqa: S603 (our own command line)
            [
                sys.executable,
                "-m",
                "stageless",
                "serve",
                "--data-dir",
                str(data),
                "--port",
                str(port),
                "--log-level",
                "warning",
                "--graceful-timeout-s",
                "1",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # Ctrl-C reaches the demo, which stops it in order
        )
    async with httpx.AsyncClient() as client:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if stage.serve.poll() is not None:
                raise RuntimeError(
                    "the control plane exited: " + (stage.workdir / "serve.log").read_text()[-2000:]
                )
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"{stage.url}/api/v1/health")).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise RuntimeError("the control plane did not become healthy within 30 s")


async def start_proxy(stage: Stage) -> None:
    local = {
        "listen": "127.0.0.1:0",
        "admin": "127.0.0.1:0",
        "control_plane": {
            "url": stage.url,
            "token": (stage.workdir / "proxy-token").read_text(),
            "config": CONFIG,
            "cache_path": str(stage.workdir / "proxy-cache.json"),
        },
    }
    remote = RemoteConfig(parse_config(yaml.safe_dump(local), source="demo proxy"))
    config = await remote.initial()
    stage.proxy = ProxyApp(config, remote=remote)
    await stage.proxy.start()


async def rollout(
    stage: Stage, console: Console, title: str, candidate: Shop, plan_text: str
) -> str:
    """Point the proxy config's candidate at ``candidate``, run the plan, show it live."""
    headers = {"Authorization": f"Bearer {stage.admin_token}"}
    async with httpx.AsyncClient(base_url=stage.url, headers=headers, timeout=10) as client:
        await _set_candidate(client, candidate.address)
        plan = plan_text.replace("STABLE", stage.shops[0].address).replace(
            "CANDIDATE", candidate.address
        )
        response = await client.post(
            "/api/v1/rollouts", content=plan, headers={"Content-Type": "application/yaml"}
        )
        response.raise_for_status()
        rollout_id = response.json()["id"]
        shoppers = stage.shoppers
        assert shoppers is not None  # noqa: S101
        shoppers.tally.answers.clear()
        view = LiveView(console, title, shoppers)
        started = time.monotonic()
        approved = False
        status: dict[str, Any] = response.json()
        tester = asyncio.get_running_loop().create_task(_tester(stage))
        try:
            with view:
                while not status["finished"]:
                    await asyncio.sleep(0.5)
                    status = (await client.get(f"/api/v1/rollouts/{rollout_id}")).json()
                    view.update(status, time.monotonic() - started)
                    if status["phase"] == "TESTING" and not approved:
                        await asyncio.sleep(2)  # the tester tries the candidate, then approves
                        reply = await client.post(f"/api/v1/rollouts/{rollout_id}/approve")
                        approved = reply.status_code < 300
                    stuck = _stuck(status, time.monotonic() - started)
                    if stuck:
                        # Nobody is at the keyboard to resume a paused rollout: end the run
                        # as an operator would, with the reason in the history.
                        await client.post(
                            f"/api/v1/rollouts/{rollout_id}/abort",
                            headers={"X-Stageless-Message": stuck},
                        )
                        status = (await client.get(f"/api/v1/rollouts/{rollout_id}")).json()
        finally:
            tester.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await tester
        history = (await client.get(f"/api/v1/rollouts/{rollout_id}/history")).json()
        admin = f"http://127.0.0.1:{stage.proxy.admin_port}" if stage.proxy else ""
        diff = (await client.get(f"{admin}/diff")).json() if admin else None
        final_report(console, status, history, diff, shoppers, time.monotonic() - started)
        return str(status["phase"])


def _stuck(status: dict[str, Any], elapsed: float) -> str:
    """Why the demo ends a run that cannot finish by itself ("" while it can)."""
    if status["finished"]:
        return ""
    if status["phase"] == "PAUSED":
        return f"the demo aborts a paused rollout (paused: {status.get('reason') or '?'})"
    if elapsed > RUN_DEADLINE_S:
        return f"the demo aborts a rollout still running after {RUN_DEADLINE_S:.0f} s"
    return ""


async def _set_candidate(client: httpx.AsyncClient, address: str) -> None:
    response = await client.get(f"/api/v1/proxy-configs/{CONFIG}")
    response.raise_for_status()
    document = response.json()["document"]
    for service in document["services"]:
        if service["name"] == SERVICE:
            service["candidate"] = {"addresses": [address]}
    reply = await client.put(
        f"/api/v1/proxy-configs/{CONFIG}",
        content=json.dumps(document),
        headers={"Content-Type": "application/json", "If-Match": response.headers["ETag"]},
    )
    reply.raise_for_status()


async def _tester(stage: Stage) -> None:
    """A person with a tester token, clicking through the candidate now and then."""
    assert stage.key is not None and stage.proxy is not None  # noqa: S101
    token = issue_token(
        stage.key,
        service=SERVICE,
        traffic_class=TrafficClass.TESTER,
        subject="dana",
        ttl_s=3600,
        now=time.time(),
    )
    url = f"http://127.0.0.1:{stage.proxy.port}"
    async with httpx.AsyncClient(base_url=url, headers={"X-Stageless-Route": token}) as client:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                await client.get("/api/products", headers={"Host": "shop.demo"})
            await asyncio.sleep(0.2)


async def stop(stage: Stage) -> None:
    """Stop everything that was started, in reverse order, whatever state it is in."""
    if stage.shoppers is not None:
        with contextlib.suppress(Exception):
            await stage.shoppers.stop()
    if stage.proxy is not None:
        with contextlib.suppress(Exception):
            await stage.proxy.stop()
    process = stage.serve
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            await asyncio.to_thread(process.wait, 10)
        except subprocess.TimeoutExpired:
            process.kill()
            await asyncio.to_thread(process.wait, 10)
    for shop in stage.shops:
        with contextlib.suppress(Exception):
            await shop.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


__all__ = ["PLAN", "run"]
