"""Proxy speed side by side (issue 4): direct, HAProxy, nginx, a minimal asyncio proxy, Stageless.

Every contender forwards to the same upstream, an nginx answering a fixed ~100-byte JSON body
with keep-alive (bench/proxy/upstream.nginx.conf), on loopback, each on its own port, all
running at once. The configurations are pinned in bench/proxy/ and tuned as each project's docs
advise (HAProxy: nbthread = WORKERS, ``http-reuse always``; nginx: worker_processes = WORKERS,
upstream ``keepalive``, HTTP/1.1 with the Connection header cleared). ``minimal`` is
bench/proxy/minimal.py, a stdlib-asyncio forwarding proxy with pooled upstream connections and
no features: the floor. Stageless runs as ``stageless proxy --config FILE`` with a generated
YAML file (see ``stageless_config``): every feature on (sticky split at 10 % to a candidate
that is the same upstream, tester tokens honoured, health checks, routes, metrics, batches).

CPU (``--pin``): with fewer WORKERS than CPUs, each proxy is pinned with taskset to the last
WORKERS CPUs (``proxy``, the default), so no contender uses more than WORKERS cores however
many processes or threads it runs (a supervisor, a master process); wrk and the upstreams are
not pinned and use whatever CPU is left. ``split`` also pins wrk, the upstreams and the
open-loop generator to the other CPUs; on a 2-CPU VM that made the load side the bottleneck
(see docs/benchmarks.md). ``off`` pins nothing. The tables show how busy each CPU set was.

Scenarios (``--scenarios``):

* ``throughput``: wrk (-t1 -c50, a Lua script rotating 1,000 sticky-key cookies, printing JSON)
  against direct, haproxy, nginx, minimal, stageless; requests/s, p50, p99 and ratios vs direct,
  HAProxy and minimal.
* ``shadow``: the same wrk load against Stageless without shadowing, Stageless copying 100 % of
  requests to a candidate (a second nginx, instant), nginx plain and nginx with ``mirror`` to
  the same candidate; the copies Stageless sent, dropped and compared, from its admin /metrics.
* ``isolation``: open-loop, NOT wrk: bench/proxy/openloop.py (asyncio) sends RATE requests/s
  at their planned times over CONNECTIONS keep-alive connections (an idle connection is reused
  most-recently-returned first, like client pools; with none idle the request waits) and
  measures latency from the planned time, so coordinated omission is avoided. The candidate is
  bench/proxy/slow.py answering after 300 ms: Stageless without and with 100 % shadowing to it,
  nginx plain and with ``mirror`` to it.

Rounds interleave the contenders (rotated order each round); tables show medians over rounds,
and every ratio (columns and targets) is the median of the rounds' ratios, each round's run
over the same round's run of the base (``paired``), so that a host whose speed drifts between
rounds does not decide a verdict.
Targets from the issue are checked and printed as PASS or MISS with the figures.

Usage: nice -n -5 .venv/bin/python bench/proxy.py [--workers 1] [--duration 10] [--rounds 3]
       [--scenarios throughput,shadow,isolation] [--contenders direct,haproxy,nginx,minimal,
       stageless] [--rate 200] [--open-connections 100] [--pin proxy|split|off] [--markdown]
       [--workdir DIR] [--stageless-command CMD]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import math
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import yaml
from prometheus_client.parser import text_string_to_metric_families

Run = TypeVar("Run")
ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "bench" / "proxy"
PATH = "/api/items?page=1"
KEYS = 1000
CONNECTIONS = 50
SLOW_DELAY_S = 0.3
BATCH_INTERVAL_S = 2
SIGNING_SECRET = "stageless-bench-signing-secret-not-for-production"  # noqa: S105 (bench only)
FAMILIES = ("direct", "haproxy", "nginx", "minimal", "stageless")
SCENARIOS = ("throughput", "shadow", "isolation")
# binary -> Debian package
PACKAGES = {"wrk": "wrk", "haproxy": "haproxy", "nginx": "nginx", "taskset": "util-linux"}

# targets from issue 4
AT_LEAST_MINIMAL = 1.0
AT_LEAST_HAPROXY = 0.8
SHADOW_VS_MIRROR = 2.0
SHADOW_VS_PLAIN = 0.8
MAX_DROPPED = 0.01
MAX_P99_RISE_MS = 1.0
#: shadow.pipeline of the pipelined copier in the shadow scenario (docs/proxy.md)
PIPELINE = 16

LUA = r"""
local requests = {}
local count = 0
local index = 0
function init(args)
  for k = 1, tonumber(os.getenv("BENCH_KEYS")) do
    requests[k] = wrk.format("GET", os.getenv("BENCH_PATH"), {
      ["Accept"] = "application/json",
      ["User-Agent"] = "stageless-bench",
      ["Cookie"] = string.format("session=bench; stageless-key=bench%017d", k),
    })
  end
  count = #requests
end
function request()
  index = index % count + 1
  return requests[index]
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"non_2xx":%d,' ..
    '"socket_errors":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end
"""


# --- tools -------------------------------------------------------------------------------


def find_tool(name: str) -> str | None:
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    return shutil.which(name, path=path)


def ensure_packages() -> dict[str, str]:
    """Install the Debian packages of missing tools (apt-get update first); idempotent."""
    missing = sorted({package for tool, package in PACKAGES.items() if find_tool(tool) is None})
    if missing:
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        print(f"installing Debian packages: {' '.join(missing)}", file=sys.stderr)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True, env=env)  # noqa: S603
        subprocess.run(  # noqa: S603
            [*sudo, "apt-get", "install", "-y", "-qq", *missing], check=True, env=env
        )
    tools: dict[str, str] = {}
    for tool in PACKAGES:
        found = find_tool(tool)
        if found is None:
            sys.exit(f"{tool} is still missing after installing {PACKAGES[tool]}")
        tools[tool] = found
    return tools


def tool_versions(tools: dict[str, str]) -> dict[str, str]:
    def first_line(command: list[str]) -> str:
        done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
        return (done.stdout + done.stderr).strip().splitlines()[0]

    return {
        "haproxy": first_line([tools["haproxy"], "-v"]).split()[2],
        "nginx": first_line([tools["nginx"], "-v"]).rsplit("/", 1)[-1],
        "wrk": first_line([tools["wrk"], "-v"]).split()[1],
    }


def default_stageless_command() -> str:
    local = ROOT / ".venv" / "bin" / "stageless"
    return f"{local if local.exists() else shutil.which('stageless') or 'stageless'} proxy"


def stageless_missing(stageless: Sequence[str]) -> str | None:
    """Why the Stageless proxy command cannot run, or None when it can."""
    command = [*stageless, "--help"]
    try:
        done = subprocess.run(  # noqa: S603
            command, capture_output=True, text=True, timeout=60, check=False
        )
    except OSError as exc:
        return f"`{shlex.join(command)}` could not start: {exc}"
    if done.returncode != 0:
        last = (done.stderr or done.stdout).strip().splitlines()[-1:]
        return f"`{shlex.join(command)}` exited {done.returncode}: {' '.join(last)}"
    return None


# --- processes ---------------------------------------------------------------------------


class Processes:
    """Every process this script starts, each in its own process group, stopped at the end."""

    def __init__(self, workdir: Path, taskset: str) -> None:
        self.workdir = workdir
        self.taskset = taskset
        self.running: dict[str, tuple[subprocess.Popen[bytes], IO[bytes]]] = {}

    def start(self, name: str, command: Sequence[str], cpus: Sequence[int] | None) -> None:
        if cpus:
            command = [self.taskset, "-c", ",".join(map(str, cpus)), *command]
        log = (self.workdir / f"{name}.log").open("wb")
        process = subprocess.Popen(  # noqa: S603
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            start_new_session=True,
        )
        self.running[name] = (process, log)

    def alive(self, name: str) -> bool:
        return self.running[name][0].poll() is None

    def log_tail(self, name: str, lines: int = 15) -> str:
        text = (self.workdir / f"{name}.log").read_text(errors="replace")
        return "\n".join(text.strip().splitlines()[-lines:])

    def stop(self, name: str) -> None:
        process, log = self.running.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)
        with contextlib.suppress(ProcessLookupError):  # stragglers (forked workers)
            os.killpg(process.pid, signal.SIGKILL)
        log.close()

    def stop_all(self) -> None:
        for name in list(self.running):
            self.stop(name)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


# --- configurations ----------------------------------------------------------------------


def render(template: str, workdir: Path, **values: object) -> Path:
    """Fill a pinned config's @NAME@ placeholders; write the result to the work directory."""
    text = (CONFIGS / template).read_text()
    values = {"DIR": workdir, **values}
    for key, value in values.items():
        text = text.replace(f"@{key}@", str(value))
    code = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    leftover = re.findall(r"@[A-Z_]+@", code)
    if leftover:
        raise RuntimeError(f"{template}: unfilled placeholders {leftover}")
    out = workdir / f"{template.split('.')[0]}-{values['PORT']}{Path(template).suffix}"
    out.write_text(text)
    return out


@dataclass(frozen=True)
class StagelessSetup:
    """What differs between the Stageless contenders."""

    candidate_port: int
    weight: float
    shadow: bool
    pipeline: int = 1  # shadow.pipeline (1: the default, one copy per connection at a time)


def stageless_config(
    setup: StagelessSetup, *, port: int, admin_port: int, upstream: int, workers: int
) -> dict[str, Any]:
    """The generated ``stageless proxy`` configuration (the design note's YAML format)."""
    service: dict[str, Any] = {
        "name": "bench",
        "hosts": [],
        "stable": {"addresses": [f"127.0.0.1:{upstream}"]},
        "candidate": {"addresses": [f"127.0.0.1:{setup.candidate_port}"]},
        "health_check": {
            "path": "/healthz",
            "interval_s": 2,
            "timeout_s": 1,
            "healthy_threshold": 2,
            "unhealthy_threshold": 2,
        },
        "split": {"weight": setup.weight, "sticky": {"cookie": "stageless-key"}},
        "testers": True,
        "routes": [{"name": "api", "prefix": "/api/"}],
    }
    if setup.shadow:
        service["shadow"] = {"share": 100}  # everything else at its defaults
        if setup.pipeline > 1:
            service["shadow"]["pipeline"] = setup.pipeline
    return {
        "listen": f"127.0.0.1:{port}",
        "admin": f"127.0.0.1:{admin_port}",
        "workers": workers,
        "signing_keys": [{"id": "bench", "secret": SIGNING_SECRET}],
        "batches": {"path": f"batches-{port}.jsonl", "interval_s": BATCH_INTERVAL_S},
        "services": [service],
    }


# --- contenders --------------------------------------------------------------------------


@dataclass
class Contender:
    key: str
    family: str
    label: str
    port: int
    admin_port: int | None = None


@dataclass
class Bench:
    """The running set-up: processes, tools, CPU sets, the upstreams."""

    args: argparse.Namespace
    procs: Processes
    tools: dict[str, str]
    versions: dict[str, str]
    layout: Layout
    upstream: int = 0
    body: bytes = b""
    candidates: dict[str, int] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)
    lost: dict[str, str] = field(default_factory=dict)  # contender key -> what happened
    hot_paths: dict[str, str] = field(default_factory=dict)  # Stageless key -> /status hot_path

    def alive(self, contender: Contender) -> bool:
        name = contender.key if contender.key in self.procs.running else "upstream"
        return self.procs.alive(name)

    def lose(self, contender: Contender, why: str) -> None:
        """A contender stopped working during the run: report it and stop its process."""
        exited = "" if self.alive(contender) else " (its process exited)"
        tail = self.procs.log_tail(contender.key) if contender.key in self.procs.running else ""
        print(f"\n{contender.key}: {why}{exited}; log ends with:\n{tail}\n", file=sys.stderr)
        self.lost[contender.key] = f"{why}{exited}"
        self.failed.append(contender.key)
        if contender.key in self.procs.running:
            self.procs.stop(contender.key)

    def start_nginx(self, name: str, template: str, **values: object) -> int:
        port = free_port()
        config = render(template, self.procs.workdir, PORT=port, **values)
        command = [self.tools["nginx"], "-p", str(self.procs.workdir), "-c", str(config)]
        command += ["-e", str(self.procs.workdir / f"nginx-{port}.stderr.log")]
        command += ["-g", "daemon off;"]
        cpus = self.layout.load_pin if template == "upstream.nginx.conf" else self.layout.proxy_pin
        self.procs.start(name, command, cpus)
        return port

    def start_upstreams(self, *, candidate: bool, slow: bool) -> None:
        if not self.upstream:
            self.upstream = self.start_nginx("upstream", "upstream.nginx.conf")
            self.body = wait_ready(self.procs, "upstream", self.upstream, None)
            (self.procs.workdir / "body.json").write_bytes(self.body)
        if candidate and "instant" not in self.candidates:
            port = self.start_nginx("candidate", "upstream.nginx.conf")
            wait_ready(self.procs, "candidate", port, self.body)
            self.candidates["instant"] = port
        if slow and "slow" not in self.candidates:
            port = free_port()
            command = [sys.executable, str(CONFIGS / "slow.py"), "--listen", f"127.0.0.1:{port}"]
            command += ["--delay", str(SLOW_DELAY_S), "--body-file", "body.json"]
            self.procs.start("slow", command, self.layout.load_pin)
            wait_ready(self.procs, "slow", port, self.body)
            self.candidates["slow"] = port

    def start(self, key: str) -> Contender | None:
        """Start one contender and check that it answers the upstream's body; None if it
        failed (the reason is printed and the run's exit status becomes 1)."""
        workers = self.args.workers
        try:
            contender = self.launch(key, workers)
            wait_ready(self.procs, key, contender.port, self.body)
            if contender.family == "stageless" and contender.admin_port is not None:
                self.hot_paths[key] = hot_path(contender.admin_port)
        except RuntimeError as exc:
            print(f"\n{key}: FAILED TO START, left out of the run:\n{exc}\n", file=sys.stderr)
            self.failed.append(key)
            if key in self.procs.running:
                self.procs.stop(key)
            return None
        return contender

    def launch(self, key: str, workers: int) -> Contender:
        plural = "s" if workers > 1 else ""
        versions = self.versions
        if key == "direct":
            return Contender(key, "direct", "direct to upstream (nginx, 1 worker)", self.upstream)
        if key == "haproxy":
            port = free_port()
            config = render(
                "haproxy.cfg",
                self.procs.workdir,
                PORT=port,
                WORKERS=workers,
                UPSTREAM_PORT=self.upstream,
            )
            self.procs.start(
                key, [self.tools["haproxy"], "-db", "-f", str(config)], self.layout.proxy_pin
            )
            label = f"HAProxy {versions['haproxy']} (nbthread {workers}, http-reuse always)"
            return Contender(key, "haproxy", label, port)
        if key in ("nginx", "nginx-mirror", "nginx-mirror-slow"):
            if key == "nginx":
                port = self.start_nginx(
                    key, "proxy.nginx.conf", WORKERS=workers, UPSTREAM_PORT=self.upstream
                )
                label = f"nginx {versions['nginx']} ({workers} worker{plural}, keepalive)"
                return Contender(key, "nginx", label, port)
            candidate = self.candidates["slow" if key.endswith("slow") else "instant"]
            port = self.start_nginx(
                key,
                "mirror.nginx.conf",
                WORKERS=workers,
                UPSTREAM_PORT=self.upstream,
                CANDIDATE_PORT=candidate,
            )
            which = "slow candidate" if key.endswith("slow") else "candidate"
            return Contender(key, "nginx", f"nginx {versions['nginx']} mirror to {which}", port)
        if key == "minimal":
            port = free_port()
            command = [sys.executable, str(CONFIGS / "minimal.py"), "--listen", f"127.0.0.1:{port}"]
            command += ["--upstream", f"127.0.0.1:{self.upstream}", "--workers", str(workers)]
            self.procs.start(key, command, self.layout.proxy_pin)
            label = f"minimal asyncio proxy ({workers} process{'es' if workers > 1 else ''})"
            return Contender(key, "minimal", label, port)
        if key.startswith("stageless"):
            return self.launch_stageless(key, workers)
        raise ValueError(key)

    def launch_stageless(self, key: str, workers: int) -> Contender:
        setups = {
            "stageless": (StagelessSetup(self.upstream, 10, shadow=False), "all features"),
            "stageless-noshadow": (StagelessSetup(self.upstream, 0, shadow=False), "no shadow"),
            "stageless-shadow": (
                StagelessSetup(self.candidates.get("instant", 0), 0, shadow=True),
                "100% shadow to candidate",
            ),
            "stageless-shadow-pipelined": (
                StagelessSetup(self.candidates.get("instant", 0), 0, True, PIPELINE),
                f"100% shadow to candidate, pipeline {PIPELINE}",
            ),
            "stageless-shadow-slow": (
                StagelessSetup(self.candidates.get("slow", 0), 0, shadow=True),
                "100% shadow to slow candidate",
            ),
        }
        setup, what = setups[key]
        port, admin = free_port(), free_port()
        config = stageless_config(
            setup, port=port, admin_port=admin, upstream=self.upstream, workers=workers
        )
        path = self.procs.workdir / f"{key}.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        command = [*shlex.split(self.args.stageless_command), "--config", str(path)]
        self.procs.start(key, command, self.layout.proxy_pin)
        plural = "s" if workers > 1 else ""
        return Contender(
            key, "stageless", f"Stageless ({workers} worker{plural}, {what})", port, admin
        )


def http_get(port: int, timeout: float = 5) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Accept": "application/json", "Cookie": "stageless-key=bench00000000000000001"}
        connection.request("GET", PATH, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def wait_ready(procs: Processes, name: str, port: int, body: bytes | None) -> bytes:
    """Wait until ``name`` answers 200 (with ``body``, if given) on ``port``; its body."""
    deadline = time.monotonic() + 60
    last = "no answer"
    while time.monotonic() < deadline:
        if name in procs.running and not procs.alive(name):
            raise RuntimeError(f"{name} exited; its log ends with:\n{procs.log_tail(name)}")
        try:
            status, got = http_get(port, timeout=2)
        except OSError as exc:
            last = repr(exc)
        else:
            if status == 200 and (body is None or got == body):
                return got
            last = f"status {status}, body {got[:200]!r}"
        time.sleep(0.2)
    raise RuntimeError(f"{name} did not answer correctly on port {port}: {last}")


# --- CPU ---------------------------------------------------------------------------------


def cpu_times() -> dict[int, tuple[int, int]]:
    """(busy, total) jiffies per CPU; busy leaves out idle, iowait and steal."""
    out: dict[int, tuple[int, int]] = {}
    with open("/proc/stat", encoding="ascii") as stat:
        for line in stat:
            name, *fields = line.split()
            if name.startswith("cpu") and name != "cpu":
                values = [int(v) for v in fields[:8]]
                idle = values[3] + values[4] + values[7]
                out[int(name[3:])] = (sum(values) - idle, sum(values))
    return out


def busy_percent(
    before: dict[int, tuple[int, int]], after: dict[int, tuple[int, int]], cpus: Sequence[int]
) -> float:
    busy = sum(after[c][0] - before[c][0] for c in cpus)
    total = sum(after[c][1] - before[c][1] for c in cpus)
    return 100.0 * busy / total if total else 0.0


# --- closed loop (wrk) -------------------------------------------------------------------


@dataclass(frozen=True)
class WrkRun:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    cpu: tuple[float, ...]  # busy % of each CPU set in Layout.columns


def run_wrk(bench: Bench, port: int, duration: float) -> WrkRun | None:
    """One wrk run; None if wrk failed (its error is printed)."""
    workdir = bench.procs.workdir
    command = [bench.tools["wrk"], "-t1", f"-c{CONNECTIONS}", f"-d{max(1, round(duration))}s"]
    command += ["--timeout", "10s", "-s", str(workdir / "bench.lua"), f"http://127.0.0.1:{port}"]
    if bench.layout.load_pin:
        pin = ",".join(map(str, bench.layout.load_pin))
        command = [bench.tools["taskset"], "-c", pin, *command]
    env = {**os.environ, "BENCH_KEYS": str(KEYS), "BENCH_PATH": PATH}
    before = cpu_times()
    done = subprocess.run(  # noqa: S603
        command, env=env, capture_output=True, text=True, check=False
    )
    after = cpu_times()
    try:
        result = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        print(f"wrk failed ({done.returncode}): {done.stdout}{done.stderr}", file=sys.stderr)
        return None
    return WrkRun(
        rps=result["requests"] / (result["duration_us"] / 1e6),
        p50_ms=result["p50_us"] / 1000,
        p99_ms=result["p99_us"] / 1000,
        requests=result["requests"],
        errors=result["non_2xx"] + result["socket_errors"],
        cpu=tuple(busy_percent(before, after, cpus) for _, cpus in bench.layout.columns),
    )


def rotated(items: Sequence[Contender], round_: int) -> list[Contender]:
    shift = round_ % len(items)
    return [*items[shift:], *items[:shift]]


def measure_rounds(
    bench: Bench,
    contenders: Sequence[Contender],
    measure: Callable[[Contender], Run | None],
    show: Callable[[Run], str],
) -> dict[str, list[Run]]:
    """ROUNDS rounds, each measuring every contender once in a rotated order. A contender whose
    measurement fails or whose process dies is left out of the later rounds (and reported)."""
    results: dict[str, list[Run]] = {c.key: [] for c in contenders}
    active = list(contenders)
    for round_ in range(bench.args.rounds):
        for contender in rotated(active, round_):
            run = measure(contender)
            if run is None or not bench.alive(contender):
                bench.lose(contender, f"failed in round {round_ + 1}")
            else:
                results[contender.key].append(run)
        active = [c for c in active if c.key not in bench.lost]
        line = ", ".join(f"{c.key} {show(results[c.key][-1])}" for c in active)
        print(f"  round {round_ + 1}/{bench.args.rounds}: {line}", file=sys.stderr)
        if not active:
            break
    return results


def closed_loop(
    bench: Bench, contenders: Sequence[Contender], between: Callable[[], None] | None = None
) -> dict[str, list[WrkRun]]:
    """A 1 s warm-up each, then the rounds with wrk."""
    for contender in contenders:
        if run_wrk(bench, contender.port, 1) is None or not bench.alive(contender):
            bench.lose(contender, "failed in the warm-up")
    if between:
        between()
    return measure_rounds(
        bench,
        [c for c in contenders if c.key not in bench.lost],
        lambda c: run_wrk(bench, c.port, bench.args.duration),
        lambda run: f"{run.rps:,.0f}/s",
    )


# --- open loop (bench/proxy/openloop.py) ------------------------------------------------


@dataclass(frozen=True)
class OpenLoopRun:
    planned: int
    completed: int
    errors: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    lag_p99_ms: float


def run_open_loop(bench: Bench, port: int, duration: float) -> OpenLoopRun | None:
    """One run of the open-loop generator (its own process, on the load CPUs); None if it
    failed (its error is printed)."""
    args = bench.args
    command = [sys.executable, str(CONFIGS / "openloop.py"), "--port", str(port)]
    command += ["--rate", str(args.rate), "--duration", str(duration)]
    command += ["--connections", str(args.open_connections), "--path", PATH, "--keys", str(KEYS)]
    if bench.layout.load_pin:
        pin = ",".join(map(str, bench.layout.load_pin))
        command = [bench.tools["taskset"], "-c", pin, *command]
    done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    try:
        return OpenLoopRun(**json.loads(done.stdout.strip().splitlines()[-1]))
    except (IndexError, ValueError, TypeError):
        print(f"openloop failed ({done.returncode}): {done.stdout}{done.stderr}", file=sys.stderr)
        return None


# --- Stageless metrics -------------------------------------------------------------------


def admin_get(admin_port: int, path: str) -> bytes:
    """The body of ``GET path`` on a running ``stageless proxy``'s admin port."""
    connection = http.client.HTTPConnection("127.0.0.1", admin_port, timeout=5)
    try:
        connection.request("GET", path)
        return connection.getresponse().read()
    finally:
        connection.close()


def hot_path(admin_port: int) -> str:
    """Which hot path a running ``stageless proxy`` runs: ``hot_path`` of its admin /status."""
    try:
        status = json.loads(admin_get(admin_port, "/status"))
    except (OSError, ValueError) as exc:
        raise RuntimeError(f"its admin /status did not answer: {exc}") from exc
    return str(status.get("hot_path", "unknown (no hot_path in /status)"))


def hot_path_notes(hot_paths: dict[str, str]) -> tuple[list[str], bool]:
    """Lines naming the hot path each Stageless contender ran, and whether one ran the sources
    without being asked to (a build older than the sources measures the wrong code)."""
    lines = [f"Stageless hot path ({key}): {text}" for key, text in sorted(hot_paths.items())]
    stale = [
        key
        for key, text in hot_paths.items()
        if not text.startswith("compiled") and "STAGELESS_NATIVE=0" not in text
    ]
    if stale:
        lines.append(
            f"WARNING: {', '.join(sorted(stale))} ran the interpreted hot path without "
            "STAGELESS_NATIVE=0: these are not the figures of the compiled proxy "
            "(run scripts/setup, then the bench again)"
        )
    return lines, bool(stale)


def shadow_metrics(admin_port: int) -> dict[str, float]:
    """stageless_proxy_shadow_* counters from the admin /metrics, summed over labels:
    ``copies_total`` by outcome, and every other ``*_total`` (compared, ...) by name."""
    text = admin_get(admin_port, "/metrics").decode()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name = sample.name
            if not name.startswith("stageless_proxy_shadow_") or not name.endswith("_total"):
                continue
            if name == "stageless_proxy_shadow_copies_total":
                key = "copies " + sample.labels.get("outcome", "?")
            else:
                key = name.removeprefix("stageless_proxy_shadow_").removesuffix("_total")
            out[key] = out.get(key, 0.0) + sample.value
    return out


def settled_shadow_metrics(admin_port: int) -> dict[str, float]:
    """Poll until the counters stop moving for longer than a batch interval (workers report
    their counts to the process serving /metrics periodically); at most 30 s."""
    deadline = time.monotonic() + 30
    last = shadow_metrics(admin_port)
    steady_since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = shadow_metrics(admin_port)
        if now != last:
            last, steady_since = now, time.monotonic()
        elif time.monotonic() - steady_since > BATCH_INTERVAL_S + 1:
            break
    return last


def copier_counts(bench: Bench, copier: Contender | None) -> dict[str, float] | None:
    """The settled shadow counters of a running Stageless contender; None if there is none or
    its admin endpoint does not answer."""
    if copier is None or copier.admin_port is None or copier.key in bench.lost:
        return None
    try:
        return settled_shadow_metrics(copier.admin_port)
    except OSError as exc:
        print(f"{copier.key}: /metrics failed: {exc!r}", file=sys.stderr)
        return None


def shadow_delta(
    before: dict[str, float] | None, after: dict[str, float] | None
) -> dict[str, float] | None:
    """What the timed runs added; copies first (sent, then the other outcomes), then the rest."""
    if before is None or after is None:
        return None
    order = sorted(after, key=lambda k: (not k.startswith("copies "), k != "copies sent", k))
    return {key: after[key] - before.get(key, 0.0) for key in order}


def dropped_share(counts: dict[str, float]) -> tuple[float, float, float] | None:
    """(sent, dropped, share of copies dropped) from copies_total by outcome: each copy ends
    sent or dropped_*; other outcomes (too_large) are also counted as sent."""
    copies = {k.removeprefix("copies "): v for k, v in counts.items() if k.startswith("copies ")}
    if not copies:
        return None
    sent = copies.get("sent", 0.0)
    dropped = sum(v for k, v in copies.items() if k.startswith("dropped"))
    total = sent + dropped
    return sent, dropped, dropped / total if total else math.nan


# --- report ------------------------------------------------------------------------------


@dataclass
class Table:
    title: str
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def render(self, markdown: bool) -> str:
        if markdown:
            lines = [f"**{self.title}**", ""]
            lines.append("| " + " | ".join(self.headers) + " |")
            lines.append("|---|" + "---:|" * (len(self.headers) - 1))
            lines.extend("| " + " | ".join(row) + " |" for row in self.rows)
            if self.notes:
                lines.append("")
                lines.extend(f"- {note}" for note in self.notes)
            return "\n".join(lines)
        widths = [
            max(len(r[i]) for r in [self.headers, *self.rows]) for i in range(len(self.headers))
        ]

        def line(cells: list[str]) -> str:
            first = cells[0].ljust(widths[0])
            return "  ".join(
                [first, *(c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))]
            )

        return "\n".join([self.title, line(self.headers), *map(line, self.rows), *self.notes])


@dataclass(frozen=True)
class Target:
    text: str
    passed: bool | None
    detail: str

    def render(self, markdown: bool) -> str:
        verdict = {True: "PASS", False: "MISS", None: "NOT MEASURED"}[self.passed]
        return (
            f"- **{verdict}** {self.text}: {self.detail}"
            if markdown
            else f"{verdict:<12} {self.text}: {self.detail}"
        )


def median(runs: Sequence[Any], name: str) -> float:
    return float(statistics.median(getattr(run, name) for run in runs))


def paired(results: dict[str, list[WrkRun]], key: str, base: str) -> float | None:
    """``key``'s throughput over ``base``'s: the median of the rounds' ratios, each round's run
    of ``key`` over the same round's run of ``base`` (the two ran within a minute of each
    other, so a host that speeds up or slows down between rounds cancels out). When one of
    them was left out of later rounds, the ratio of their medians. None without runs."""
    runs, bases = results.get(key), results.get(base)
    if not runs or not bases:
        return None
    if len(runs) != len(bases):
        return median(runs, "rps") / median(bases, "rps")
    return float(statistics.median(r.rps / b.rps for r, b in zip(runs, bases, strict=True)))


def paired_note(results: dict[str, list[WrkRun]], pairs: Sequence[tuple[str, str]]) -> str:
    shown = []
    for key, base in pairs:
        runs, bases = results.get(key), results.get(base)
        if runs and bases and len(runs) == len(bases):
            each = " / ".join(f"{r.rps / b.rps:.3f}" for r, b in zip(runs, bases, strict=True))
            shown.append(f"{key}/{base} {each}")
    return "ratios by round: " + "; ".join(shown) if shown else ""


def ratio(results: dict[str, list[WrkRun]], key: str, base: str) -> str:
    value = paired(results, key, base)
    return "–" if value is None else f"{value:.2f}"


def lost_notes(lost: dict[str, str], results: dict[str, list[Any]]) -> list[str]:
    notes = []
    for key, why in lost.items():
        if key in results:
            done = len(results[key])
            rest = f"medians over its {done} completed rounds" if done else "left out"
            notes.append(f"{key} {why}: {rest}")
    return notes


def wrk_table(
    title: str,
    contenders: Sequence[Contender],
    results: dict[str, list[WrkRun]],
    bases: Sequence[tuple[str, str]],
    bench: Bench,
) -> Table:
    layout, lost = bench.layout, bench.lost
    """Medians per contender; ``bases`` are (contender key, column header) for the ratios."""
    cpu = [name for name, _ in layout.columns]
    contenders = [c for c in contenders if results.get(c.key)]
    table = Table(
        title,
        ["contender", "req/s", "p50 ms", "p99 ms", *(h for _, h in bases), "errors", *cpu],
    )
    for c in contenders:
        runs = results[c.key]
        cells = [
            c.label,
            f"{median(runs, 'rps'):,.0f}",
            f"{median(runs, 'p50_ms'):.2f}",
            f"{median(runs, 'p99_ms'):.2f}",
            *(ratio(results, c.key, b) for b, _ in bases),
            str(sum(r.errors for r in runs)),
            *(f"{statistics.median(r.cpu[i] for r in runs):.0f}" for i in range(len(cpu))),
        ]
        table.rows.append(cells)
    rounds = "; ".join(
        f"{c.key} " + " / ".join(f"{r.rps:,.0f}" for r in results[c.key]) for c in contenders
    )
    table.notes.append(f"rounds (req/s): {rounds}")
    table.notes.extend(lost_notes(lost, results))
    return table


def throughput_targets(results: dict[str, list[WrkRun]]) -> list[Target]:
    def rps(key: str) -> float | None:
        return median(results[key], "rps") if results.get(key) else None

    stageless, minimal, haproxy = rps("stageless"), rps("minimal"), rps("haproxy")
    out = []
    text = "Stageless (all features) >= the minimal asyncio proxy's throughput"
    by_round = paired(results, "stageless", "minimal")
    if stageless is None or minimal is None or by_round is None:
        out.append(Target(text, None, "needs both contenders"))
    else:
        detail = f"{by_round:.2f}x by round; medians {stageless:,.0f} vs {minimal:,.0f} req/s"
        out.append(Target(text, by_round >= AT_LEAST_MINIMAL, detail))
    text = f"Stageless >= {AT_LEAST_HAPROXY}x HAProxy's throughput"
    by_round = paired(results, "stageless", "haproxy")
    if stageless is None or haproxy is None or by_round is None:
        out.append(Target(text, None, "needs both contenders"))
    else:
        detail = f"{by_round:.2f}x by round; medians {stageless:,.0f} vs {haproxy:,.0f} req/s"
        out.append(Target(text, by_round >= AT_LEAST_HAPROXY, detail))
    return out


# --- scenarios ---------------------------------------------------------------------------


@dataclass
class Outcome:
    tables: list[Table] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)


def start_all(bench: Bench, keys: Sequence[str], families: Sequence[str]) -> list[Contender]:
    started = []
    for key in keys:
        family = "direct" if key == "direct" else key.split("-")[0]
        if family in families:
            contender = bench.start(key)
            if contender is not None:
                started.append(contender)
    return started


def stop_all(bench: Bench, contenders: Sequence[Contender]) -> None:
    for contender in contenders:
        if contender.key in bench.procs.running:
            bench.procs.stop(contender.key)


def throughput(bench: Bench, families: Sequence[str]) -> Outcome:
    keys = ["direct", "haproxy", "nginx", "minimal", "stageless"]
    contenders = start_all(bench, keys, families)
    outcome = Outcome()
    try:
        if not contenders:
            return outcome
        print("throughput: " + ", ".join(c.key for c in contenders), file=sys.stderr)
        results = closed_loop(bench, contenders)
    finally:
        stop_all(bench, contenders)
    bases = [("direct", "vs direct"), ("haproxy", "vs HAProxy"), ("minimal", "vs minimal")]
    title = (
        f"Throughput: wrk -t1 -c{CONNECTIONS}, medians of {bench.args.rounds} rounds "
        "(ratios: medians of the rounds' ratios)"
    )
    table = wrk_table(title, contenders, results, bases, bench)
    note = paired_note(results, [("stageless", "minimal"), ("stageless", "haproxy")])
    if note:
        table.notes.append(note)
    outcome.tables.append(table)
    outcome.targets.extend(throughput_targets(results))
    return outcome


#: The copiers of the shadow scenario, and how their rows and targets are named.
COPIERS = {"stageless-shadow": "", "stageless-shadow-pipelined": f" (pipeline {PIPELINE})"}


def shadow(bench: Bench, families: Sequence[str]) -> Outcome:
    bench.start_upstreams(candidate=True, slow=False)
    keys = ["stageless-noshadow", *COPIERS, "nginx", "nginx-mirror"]
    contenders = start_all(bench, keys, families)
    outcome = Outcome()
    copiers = [c for c in contenders if c.key in COPIERS]
    before: dict[str, dict[str, float] | None] = {}
    counts: dict[str, dict[str, float] | None] = {}
    try:
        if not contenders:
            return outcome
        print("shadow: " + ", ".join(c.key for c in contenders), file=sys.stderr)

        def snapshot() -> None:
            for copier in copiers:
                before[copier.key] = copier_counts(bench, copier)

        results = closed_loop(bench, contenders, between=snapshot)
        for copier in copiers:
            counts[copier.key] = shadow_delta(before.get(copier.key), copier_counts(bench, copier))
    finally:
        stop_all(bench, contenders)
    bases = [("stageless-noshadow", "vs no shadow"), ("nginx-mirror", "vs nginx mirror")]
    title = (
        f"Shadow, 100% of requests copied to an instant candidate: wrk -t1 -c{CONNECTIONS}, "
        f"medians of {bench.args.rounds} rounds (ratios: medians of the rounds' ratios)"
    )
    table = wrk_table(title, contenders, results, bases, bench)
    pairs = [(key, base) for key in COPIERS for base in ("nginx-mirror", "stageless-noshadow")]
    note = paired_note(results, pairs)
    if note:
        table.notes.append(note)
    for copier in copiers:
        requests = sum(r.requests for r in results.get(copier.key, []))
        table.notes.append(copies_note(counts.get(copier.key), requests, COPIERS[copier.key]))
    outcome.tables.append(table)
    for key, name in COPIERS.items():
        outcome.targets.extend(shadow_targets(results, counts.get(key), key, name))
    return outcome


def copies_note(counts: dict[str, float] | None, requests: int, name: str = "") -> str:
    if counts is None:
        return f"Stageless{name} shadow counters: not available"
    if not counts:
        return f"Stageless{name} shadow counters: none found on /metrics (stageless_proxy_shadow_*)"
    listed = ", ".join(f"{k} {v:,.0f}" for k, v in counts.items())
    return f"Stageless 100% shadow{name}, timed runs: {requests:,} requests; {listed}"


def shadow_targets(
    results: dict[str, list[WrkRun]],
    counts: dict[str, float] | None,
    key: str = "stageless-shadow",
    name: str = "",
) -> list[Target]:
    """The shadow targets for the copier ``key`` (``name`` says which, in the target's text)."""

    def rps(key: str) -> float | None:
        return median(results[key], "rps") if results.get(key) else None

    copier, plain, mirror = rps(key), rps("stageless-noshadow"), rps("nginx-mirror")
    out = []
    text = f"Stageless with 100% shadow{name} >= {SHADOW_VS_MIRROR:.0f}x nginx mirror's throughput"
    by_round = paired(results, key, "nginx-mirror")
    if copier is None or mirror is None or by_round is None:
        out.append(Target(text, None, "needs both contenders"))
    else:
        detail = f"{by_round:.2f}x by round; medians {copier:,.0f} vs {mirror:,.0f} req/s"
        out.append(Target(text, by_round >= SHADOW_VS_MIRROR, detail))
    text = f"Stageless with 100% shadow{name} >= {SHADOW_VS_PLAIN:.0%} of Stageless without shadow"
    by_round = paired(results, key, "stageless-noshadow")
    if copier is None or plain is None or by_round is None:
        out.append(Target(text, None, "needs both contenders"))
    else:
        detail = f"{by_round:.0%} by round; medians {copier:,.0f} vs {plain:,.0f} req/s"
        out.append(Target(text, by_round >= SHADOW_VS_PLAIN, detail))
    out.append(dropped_target(counts, name))
    return out


def dropped_target(counts: dict[str, float] | None, where: str = "") -> Target:
    text = f"at most {MAX_DROPPED:.0%} of shadow copies dropped{where}"
    if counts is None:
        return Target(text, None, "needs Stageless with shadow")
    shares = dropped_share(counts)
    if shares is None:
        return Target(text, None, "no stageless_proxy_shadow_copies_total on /metrics")
    sent, dropped, share = shares
    detail = f"{dropped:,.0f} dropped, {sent:,.0f} sent ({share:.2%})"
    return Target(text, share <= MAX_DROPPED, detail)


def isolation(bench: Bench, families: Sequence[str]) -> Outcome:
    bench.start_upstreams(candidate=False, slow=True)
    keys = ["stageless-noshadow", "stageless-shadow-slow", "nginx", "nginx-mirror-slow"]
    contenders = start_all(bench, keys, families)
    outcome = Outcome()
    args = bench.args
    copier = next((c for c in contenders if c.key == "stageless-shadow-slow"), None)
    results: dict[str, list[OpenLoopRun]] = {}
    counts = None
    try:
        if not contenders:
            return outcome
        print("isolation: " + ", ".join(c.key for c in contenders), file=sys.stderr)

        def measure(contender: Contender, duration: float) -> OpenLoopRun | None:
            run = run_open_loop(bench, contender.port, duration)
            return run if run is not None and run.completed else None

        for contender in contenders:  # warm-up
            if measure(contender, 1) is None or not bench.alive(contender):
                bench.lose(contender, "failed in the warm-up")
        before = copier_counts(bench, copier)
        results = measure_rounds(
            bench,
            [c for c in contenders if c.key not in bench.lost],
            lambda c: measure(c, args.open_duration),
            lambda run: f"p99 {run.p99_ms:.2f} ms",
        )
        counts = shadow_delta(before, copier_counts(bench, copier))
    finally:
        stop_all(bench, contenders)
    baselines = {"stageless-shadow-slow": "stageless-noshadow", "nginx-mirror-slow": "nginx"}
    title = (
        f"Shadow isolation, open loop: {args.rate:g} req/s over {args.open_connections} "
        f"keep-alive connections, {args.open_duration:g} s per run, candidate answers after "
        f"{SLOW_DELAY_S * 1000:.0f} ms; medians of {args.rounds} rounds"
    )
    headers = ["contender", "requests", "errors", "p50 ms", "p99 ms", "max ms", "p99 rise ms"]
    table = Table(title, [*headers, "send lag p99 ms"])
    for c in [c for c in contenders if results.get(c.key)]:
        runs = results[c.key]
        base = baselines.get(c.key)
        rise = "–"
        if base is not None and results.get(base):
            rise = f"{median(runs, 'p99_ms') - median(results[base], 'p99_ms'):+.2f}"
        table.rows.append(
            [
                c.label,
                f"{sum(r.completed for r in runs):,}",
                str(sum(r.errors for r in runs)),
                f"{median(runs, 'p50_ms'):.2f}",
                f"{median(runs, 'p99_ms'):.2f}",
                f"{median(runs, 'max_ms'):.2f}",
                rise,
                f"{median(runs, 'lag_p99_ms'):.2f}",
            ]
        )
    table.notes.append(
        "latency from each request's planned send time; send lag = how late the generator "
        "sent (its own timer precision, the same for every contender)"
    )
    p99s = "; ".join(
        f"{c.key} " + " / ".join(f"{r.p99_ms:.2f}" for r in results[c.key])
        for c in contenders
        if results.get(c.key)
    )
    table.notes.append(f"rounds (p99 ms): {p99s}")
    table.notes.extend(lost_notes(bench.lost, results))
    if copier is not None:
        requests = sum(r.completed for r in results.get(copier.key, []))
        table.notes.append(copies_note(counts, requests))
    outcome.tables.append(table)
    text = (
        f"shadow isolation: user p99 rises by at most {MAX_P99_RISE_MS:g} ms with a slow candidate"
    )
    if results.get("stageless-shadow-slow") and results.get("stageless-noshadow"):
        with_shadow = median(results["stageless-shadow-slow"], "p99_ms")
        without = median(results["stageless-noshadow"], "p99_ms")
        rise_ms = with_shadow - without
        detail = f"p99 {with_shadow:.2f} ms vs {without:.2f} ms without shadow ({rise_ms:+.2f} ms)"
        outcome.targets.append(Target(text, rise_ms <= MAX_P99_RISE_MS, detail))
    else:
        outcome.targets.append(Target(text, None, "needs Stageless with and without shadow"))
    if copier is not None:
        outcome.targets.append(dropped_target(counts, " (slow candidate)"))
    return outcome


# --- main --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """Where processes run: taskset CPU lists (None = not pinned) and the CPU sets whose
    busy share each table shows."""

    proxy_pin: list[int] | None
    load_pin: list[int] | None
    columns: list[tuple[str, list[int]]]
    description: str


def cpu_layout(workers: int, pin: str) -> Layout:
    cpus = sorted(os.sched_getaffinity(0))
    if workers >= len(cpus):
        text = f"not pinned: {workers} workers need all of CPUs {cpus}"
        return Layout(None, None, [("CPU %", cpus)], text)
    proxy, load = cpus[-workers:], cpus[:-workers]

    def named(group: list[int]) -> str:
        return "CPU " + ",".join(map(str, group))

    columns = [(f"{named(proxy)} %", proxy), (f"{named(load)} %", load)]
    if pin == "off":
        text = f"not pinned (--pin off); busy shown for {named(proxy)} and {named(load)}"
        return Layout(None, None, columns, text)
    if pin == "proxy":
        text = f"proxies pinned to {named(proxy)} (taskset); wrk, upstreams, open-loop not pinned"
        return Layout(proxy, None, columns, text)
    text = (
        f"proxies pinned to {named(proxy)}; upstreams, wrk and the open-loop generator to "
        f"{named(load)} (taskset)"
    )
    return Layout(proxy, load, columns, text)


def machine() -> str:
    model = "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (
        f"{os.cpu_count()} CPUs ({model}), Python {platform.python_version()} "
        f"({platform.python_implementation()}), {platform.system()} {platform.release()}"
    )


def commit() -> str:
    done = subprocess.run(  # noqa: S603
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or "?"


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def names(text: str, allowed: Sequence[str]) -> list[str]:
    chosen = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in allowed]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown {unknown}; expected some of {list(allowed)}")
    return chosen


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=1, help="processes/threads per proxy")
    parser.add_argument("--duration", type=float, default=10, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--scenarios",
        type=lambda t: names(t, SCENARIOS),
        default=list(SCENARIOS),
        help=f"comma-separated, of {','.join(SCENARIOS)}",
    )
    parser.add_argument(
        "--contenders",
        type=lambda t: names(t, FAMILIES),
        default=list(FAMILIES),
        help=f"comma-separated, of {','.join(FAMILIES)} (nginx includes nginx mirror)",
    )
    parser.add_argument("--rate", type=float, default=200, help="open loop: requests/s")
    parser.add_argument(
        "--open-duration", type=float, default=None, help="open loop: seconds (default --duration)"
    )
    parser.add_argument("--open-connections", type=int, default=100, help="open loop")
    parser.add_argument(
        "--pin",
        choices=["proxy", "split", "off"],
        default="proxy",
        help="proxy: proxies pinned to the last WORKERS CPUs, the rest not pinned; split: the "
        "rest pinned to the other CPUs; off: nothing pinned (default: %(default)s)",
    )
    parser.add_argument(
        "--stageless-command",
        default=default_stageless_command(),
        help="the Stageless proxy command; the script adds --config FILE (default: %(default)s)",
    )
    parser.add_argument("--markdown", action="store_true", help="print the tables as markdown")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="keep configs and logs here (default: a temp dir)",
    )
    args = parser.parse_args(argv)
    if args.open_duration is None:
        args.open_duration = args.duration
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGHUP, lambda *_: sys.exit(129))
    tools = ensure_packages()
    versions = tool_versions(tools)
    families = list(args.contenders)
    status = 0
    stageless_wanted = "stageless" in families
    if stageless_wanted and (reason := stageless_missing(shlex.split(args.stageless_command))):
        message = f"Stageless contender NOT RUN: {reason}. The other contenders run without it."
        print(message, file=sys.stderr)
        families.remove("stageless")
        status = 1
    else:
        reason = None
    layout = cpu_layout(args.workers, args.pin)

    print(f"command: {shlex.join([Path(sys.executable).name, *sys.argv])} (nice {os.nice(0)})")
    print(f"machine: {machine()}")
    print(f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit {commit()}")
    print(f"tools: HAProxy {versions['haproxy']}, nginx {versions['nginx']}, wrk {versions['wrk']}")
    print(f"CPUs: {layout.description}; workers per proxy: {args.workers}")
    print(f"load average at start: {load_average()}")
    if reason:
        print(f"Stageless: NOT RUN ({reason})")

    with contextlib.ExitStack() as stack:
        if args.workdir is None:
            workdir = Path(
                stack.enter_context(tempfile.TemporaryDirectory(prefix="stageless-bench-proxy-"))
            )
        else:
            workdir = args.workdir.resolve()
            workdir.mkdir(parents=True, exist_ok=True)
        workdir.chmod(0o755)  # nginx workers drop privileges when started as root
        (workdir / "bench.lua").write_text(LUA)
        procs = Processes(workdir, tools["taskset"])
        bench = Bench(args, procs, tools, versions, layout)
        outcomes: list[Outcome] = []
        try:
            bench.start_upstreams(candidate=False, slow=False)
            runners = {"throughput": throughput, "shadow": shadow, "isolation": isolation}
            outcomes.extend(runners[scenario](bench, families) for scenario in args.scenarios)
        finally:
            procs.stop_all()
    print(f"load average at end: {load_average()}")
    notes, stale = hot_path_notes(bench.hot_paths)
    for note in notes:
        print(note)
    for outcome in outcomes:
        for table in outcome.tables:
            print()
            print(table.render(args.markdown))
    print()
    print("**Targets (issue 4)**\n" if args.markdown else "Targets (issue 4):")
    for outcome in outcomes:
        for target in outcome.targets:
            print(target.render(args.markdown))
    if bench.failed:
        print(f"\ncontenders that failed: {', '.join(bench.failed)} (details on stderr)")
        status = 1
    if stale:
        print(f"\n{notes[-1]}")
        status = 1
    return status


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # the processes were stopped on the way out
        print("interrupted", file=sys.stderr)
        sys.exit(130)
