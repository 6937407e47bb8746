"""What the controller tests run against: a scripted driver, a webhook receiver and a control
plane under uvicorn, all real.

``ScriptedDriver`` is a real :class:`~stageless.drivers.base.Driver`: it records every
``apply()`` and ``promote()``, and, like a proxy would, produces batches for the traffic it was
last given (users split by the candidate's weight; the candidate's error rate and latency from
its scenario) and a growing shadow diff report. ``Receiver`` is an HTTP server on a loopback
port that records every request (headers and raw body) and answers from a script.
``control_plane`` runs the app under uvicorn in a thread with a driver factory and a fast runner.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import uvicorn

from stageless.analysis.batch import Batch, Histogram, TrafficClass, Version
from stageless.api import create_app
from stageless.client import ControlPlaneClient
from stageless.controller import RetryPolicy, RunnerOptions
from stageless.diff import DiffCollector
from stageless.diff.report import NoiseFilter
from stageless.drivers.base import Driver, DriverError, ShadowReport
from stageless.rollout.commands import Traffic
from stageless.rollout.plan import RolloutPlan
from stageless.settings import Settings
from stageless.store import SqlStore, TokenScope, open_store, sqlite_url
from tests.diff.factories import json_response

SECRET = "controller-test-secret-0123456789abcdef"  # noqa: S105  # a test key
WEBHOOK_SECRET = b"webhook-test-secret-0123456789abcdef"
START = 1_800_000_000.0


@dataclass
class Scenario:
    """How the candidate behaves: its error rate relative to stable's, and its slowdown."""

    error_ratio: float = 1.0
    slowdown: float = 1.0
    error_rate: float = 0.01
    rps: float = 1000.0
    intervals_per_call: int = 15
    shadow_per_call: int = 30


@dataclass
class ScriptedDriver:
    """A driver whose data plane is simulated in memory (see the module docstring)."""

    service: str
    scenario: Scenario = field(default_factory=Scenario)
    seed: int = 1
    fail_applies: int = 0  # the next N apply() calls raise DriverError
    applied: list[Traffic] = field(default_factory=list)
    promoted: int = 0
    closed: int = 0
    batch_calls: int = 0

    def __post_init__(self) -> None:
        self.traffic = Traffic()
        self.generated: list[Batch] = []
        self.next_ts = START
        self.rng = np.random.default_rng(self.seed)
        self.diff = DiffCollector()
        self.lock = threading.Lock()

    async def apply(self, traffic: Traffic) -> None:
        with self.lock:
            if self.fail_applies > 0:
                self.fail_applies -= 1
                raise DriverError("the data plane refused the change (scripted)")
            self.applied.append(traffic)
            if traffic.shadow > 0 and self.traffic.shadow == 0:
                self.diff = DiffCollector()
            if traffic != self.traffic:
                self.generated = []  # batches after a change describe the new split only
            self.traffic = traffic

    async def promote(self) -> None:
        with self.lock:
            self.promoted += 1

    async def batches(self, since: float) -> list[Batch]:
        with self.lock:
            self.batch_calls += 1
            self.next_ts = max(self.next_ts, since)
            for _ in range(self.scenario.intervals_per_call):
                self.generated.extend(self._interval(self.next_ts))
                self.next_ts += 1.0
            return [b for b in self.generated if b.ts >= since]

    def _interval(self, ts: float) -> list[Batch]:
        s, share = self.scenario, self.traffic.weight / 100.0
        n = int(self.rng.poisson(s.rps))
        n_canary = int(self.rng.binomial(n, share))
        out = []
        for version, count in ((Version.STABLE, n - n_canary), (Version.CANDIDATE, n_canary)):
            canary = version is Version.CANDIDATE
            rate = s.error_rate * (s.error_ratio if canary else 1.0)
            latency = 100.0 * np.exp(0.5 * self.rng.standard_normal(count))
            if canary:
                latency *= s.slowdown
            users = int(self.rng.binomial(count, 0.8))
            out.append(
                Batch(
                    ts=ts,
                    interval_s=1.0,
                    service=self.service,
                    route="/",
                    version=version,
                    traffic_class=TrafficClass.USER,
                    configured_share=share if canary else 1.0 - share,
                    requests=count,
                    errors=int(self.rng.binomial(count, min(rate, 1.0))),
                    client_errors=0,
                    users=users,
                    new_users=users,
                    samples=tuple(latency[:1000].tolist()),
                    histogram=Histogram(),
                )
            )
        return out

    async def shadow_report(self) -> ShadowReport:
        with self.lock:
            same = json_response({"total": 12, "id": 1})
            for n in range(self.scenario.shadow_per_call):
                self.diff.record("GET /api/orders", same, same, same, f"GET /api/orders/{n}")
            report = self.diff.report(noise_filter=NoiseFilter())
            compared = sum(e.total for e in report.endpoints)
            return ShadowReport(report, sent=compared, failed=0)

    async def close(self) -> None:
        with self.lock:
            self.closed += 1


class Drivers:
    """A driver factory that keeps the drivers it made, by service."""

    def __init__(
        self, scenario: Scenario | None = None, *, fail_make: int = 0, **options: Any
    ) -> None:
        self.scenario = scenario or Scenario()
        self.options = options
        self.made: list[ScriptedDriver] = []
        self.fail_make = fail_make  # the next N calls raise DriverError
        self.refused = 0

    def __call__(self, plan: RolloutPlan) -> Driver:
        if self.fail_make > 0:
            self.fail_make -= 1
            self.refused += 1
            raise DriverError(f"no data plane for {plan.service} (scripted)")
        # A data plane made later carries later traffic: each driver draws from its own stream
        # (the first one from seed 1), so a rollout taken over does not see its evidence replayed.
        options = {"seed": 1 + len(self.made), **self.options}
        driver = ScriptedDriver(plan.service, self.scenario, **options)
        self.made.append(driver)
        return driver

    @property
    def last(self) -> ScriptedDriver:
        assert self.made, "no driver was made"
        return self.made[-1]


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """A loopback HTTP server recording every POST; ``answers`` scripts the replies in order
    (status, JSON body), the last one repeating."""

    def __init__(self, answers: list[tuple[int, Any]] | None = None) -> None:
        self.answers = list(answers or [(200, {"ok": True})])
        self.received: list[Received] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                with receiver.lock:
                    receiver.received.append(
                        Received(self.path, dict(self.headers.items()), body, time.time())
                    )
                    index = min(len(receiver.received), len(receiver.answers)) - 1
                    status, answer = receiver.answers[index]
                payload = b"" if answer is None else json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass  # quiet

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.01)
        raise AssertionError(f"expected {count} requests, got {len(self.received)}")


FAST = RunnerOptions(
    tick_s=0.05,
    poll_s=0.05,
    lease_s=5.0,
    shadow_poll_s=0.05,
    webhook_secret=WEBHOOK_SECRET,
    retry=RetryPolicy(attempts=4, base_delay_s=0.05, max_delay_s=0.2),
    check_retry=RetryPolicy(attempts=100, base_delay_s=0.05, max_delay_s=0.2),
)


@dataclass
class ControlPlane:
    url: str
    store: SqlStore
    tokens: dict[str, str]
    drivers: Drivers

    def client(self, who: str = "admin") -> ControlPlaneClient:
        return ControlPlaneClient(self.url, self.tokens[who])

    def wait_until(self, rollout: str, done: Callable[[Any], bool], timeout: float = 15.0) -> Any:
        """Poll the rollout (through the API) until ``done(info)``; return that info."""
        deadline = time.monotonic() + timeout
        with self.client("read") as client:
            while True:
                info = client.get_rollout(rollout)
                if done(info):
                    return info
                if time.monotonic() > deadline:
                    raise AssertionError(f"gave up waiting; the rollout is {info.raw}")
                time.sleep(0.02)


@contextmanager
def control_plane(
    data_dir: Path,
    drivers: Drivers,
    *,
    runner: RunnerOptions = FAST,
    store: SqlStore | None = None,
) -> Iterator[ControlPlane]:
    """The app under uvicorn on a loopback port, its runner making drivers with ``drivers``."""
    data_dir.mkdir(parents=True, exist_ok=True)
    owned = store is None
    store = store or open_store(sqlite_url(data_dir), poll_interval=0.05)
    tokens = {
        scope: store.create_token(
            f"{scope}-{time.monotonic_ns()}", TokenScope(scope), actor="t"
        ).plaintext
        for scope in ("admin", "write", "read")
    }
    settings = Settings(data_dir=data_dir, secret_key=SECRET, heartbeat_s=0.5)
    app = create_app(settings, store, driver_factory=drivers, runner=runner)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", timeout_graceful_shutdown=2
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="control-plane", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield ControlPlane(f"http://127.0.0.1:{port}", store, tokens, drivers)
    finally:
        app.state.ctx.hub.close_soon()
        server.should_exit = True
        thread.join(10)
        if owned:
            store.close()
