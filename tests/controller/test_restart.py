"""A restart of the control plane in the middle of a canary, against real processes.

``stageless serve`` runs as a subprocess with the built-in driver; the test plays the proxy:
it reads nothing but posts reports (batches of a good candidate) with a proxy token, as
``stageless proxy`` does. Half the evidence the judge needs arrives, the server is killed with
SIGKILL, started again on the same database: the rollout is found in the same canary step with
its evidence count intact, the proxy config is not rewritten, and once the other half arrives
the judge (rebuilt from the recorded evidence: the second half alone is not enough to pass)
passes and the candidate is promoted in the proxy config.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from stageless.client import ControlPlaneClient, RolloutInfo
from stageless.service import open_service
from stageless.store import sqlite_url
from tests.ports import free_port

LEASE_S = 1.5
PROXY_CONFIG = """\
services:
  - name: shop
    stable: {addresses: ["127.0.0.1:9001"]}
    candidate: {addresses: ["127.0.0.1:9002"]}
    split: {weight: 0}
"""
PLAN = """\
service: shop
stable: {addresses: ["127.0.0.1:9001"]}
candidate: {addresses: ["127.0.0.1:9002"]}
steps:
  - {kind: canary, weight: 50, min_duration_s: 1, max_duration_s: 600}
  - {kind: promote}
judges:
  default: {min_canary_requests: 30000, warmup_s: 0}
"""
HALF = 40  # intervals of 1 s, ~500 canary requests each: two halves are needed to pass


class Serve:
    """``stageless serve`` on a fixed loopback port, killed with SIGKILL and started again."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = data_dir / "serve.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("STAGELESS_")}
        command = [
            sys.executable,
            "-m",
            "stageless",
            "serve",
            "--data-dir",
            str(self.data_dir),
            "--port",
            str(self.port),
            "--rollout-lease-s",
            str(LEASE_S),
            "--log-level",
            "warning",
            "--graceful-timeout-s",
            "1",
        ]
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(  # noqa: S603 - our own command line
                command, stdout=sink, stderr=subprocess.STDOUT, env=env
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/api/v1/health", timeout=1).status_code == 200:
                    return
            time.sleep(0.05)
        raise AssertionError(f"serve did not start: {self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(10)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[tuple[Serve, dict[str, str]]]:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    service = open_service(sqlite_url(data_dir))
    try:
        tokens = {
            "admin": service.tokens.create("ci", "admin", actor="test").plaintext,
            "proxy": service.tokens.create(
                "edge", "proxy", proxy_config="shop", actor="test"
            ).plaintext,
        }
    finally:
        service.close()
    server = Serve(data_dir)
    server.start()
    try:
        yield server, tokens
    finally:
        server.kill()


def good_batches(ts0: float, intervals: int, seed: int) -> list[dict[str, Any]]:
    """What a proxy reports for a candidate as good as stable at weight 50."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(intervals):
        total = int(rng.poisson(1000))
        canary = int(rng.binomial(total, 0.5))
        for version, count in (("stable", total - canary), ("candidate", canary)):
            users = int(rng.binomial(count, 0.8))
            latency = 100.0 * np.exp(0.5 * rng.standard_normal(count))
            out.append(
                {
                    "ts": ts0 + i,
                    "interval_s": 1.0,
                    "service": "shop",
                    "route": "/",
                    "version": version,
                    "traffic_class": "user",
                    "configured_share": 0.5,
                    "requests": count,
                    "errors": int(rng.binomial(count, 0.01)),
                    "client_errors": 0,
                    "users": users,
                    "new_users": users,
                    "latency_ms": {"samples": latency[:1000].round(3).tolist()},
                }
            )
    return out


def report(server: Serve, token: str, batches: list[dict[str, Any]]) -> None:
    with ControlPlaneClient(server.url, token) as proxy:
        for start in range(0, len(batches), 20):  # one report per 10 intervals, as a proxy would
            assert proxy.send_proxy_report("shop", batches[start : start + 20], None) > 0


def wait(
    client: ControlPlaneClient, rollout: str, done: Callable[[RolloutInfo], bool]
) -> RolloutInfo:
    deadline = time.monotonic() + 20
    while True:
        info = client.get_rollout(rollout)
        if done(info):
            return info
        assert time.monotonic() < deadline, f"gave up waiting: {info.raw}"
        time.sleep(0.05)


def test_a_killed_control_plane_resumes_the_canary_with_its_evidence(
    serve: tuple[Serve, dict[str, str]],
) -> None:
    server, tokens = serve
    with ControlPlaneClient(server.url, tokens["admin"]) as client:
        client.apply_proxy_config("shop", PROXY_CONFIG, format="yaml")
        started = client.start_rollout(PLAN, format="yaml")
        first = wait(client, started.id, lambda i: i.phase == "CANARY")
        assert first.traffic["weight"] == 50.0
        ts0 = time.time() + 1
        report(server, tokens["proxy"], good_batches(ts0, HALF, seed=1))
        before = wait(client, started.id, lambda i: i.evidence >= 2 * HALF)
        assert before.decision is not None
        assert before.decision["verdict"] == "CONTINUE"
        versions = len(client.list_proxy_config_versions("shop"))
        owner = before.raw["lease"]["owner"]

    server.kill()
    server.start()

    with ControlPlaneClient(server.url, tokens["admin"]) as client:
        after = client.get_rollout(started.id)
        assert (after.phase, after.step, after.evidence) == ("CANARY", before.step, 2 * HALF)
        resumed = wait(client, started.id, lambda i: i.raw["lease"]["owner"] not in (None, owner))
        assert (resumed.phase, resumed.evidence) == ("CANARY", 2 * HALF)
        # The resumed instance re-applied the same weight: the proxies kept it, and the proxy
        # config got no new version.
        assert len(client.list_proxy_config_versions("shop")) == versions
        report(server, tokens["proxy"], good_batches(ts0 + HALF, HALF, seed=2))
        done = wait(client, started.id, lambda i: i.finished)
        assert done.phase == "PROMOTED", done.reason
        history = client.rollout_history(started.id)
        config = client.get_proxy_config("shop")
    verdict = next(t for t in history if t.event.get("type") == "JudgeReported")
    assert verdict.event["verdict"] == "PASS"
    judged = verdict.event["summary"].split(" canary requests")[0].split()[-1]
    # More canary requests than the second half holds: the first half was replayed.
    assert int(judged.replace(",", "")) > HALF * 500 * 1.2
    # The promotion: the candidate is the new stable, with no weight left on it.
    (service,) = config.document["services"]
    assert service["stable"]["addresses"] == ["127.0.0.1:9002"]
    assert service["split"]["weight"] == 0
    assert json.dumps(config.document)  # plain JSON
