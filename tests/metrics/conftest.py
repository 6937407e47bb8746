"""A real Prometheus on loopback, scraping a real target that exposes proxy-like metrics.

The target serves counters that grow linearly with wall-clock time (so ``increase()`` over an
interval is known in advance) and a latency histogram, in the Prometheus text format rendered by
prometheus-client. Prometheus (the Debian package, installed by scripts/setup) scrapes it every
second; the fixture waits, bounded, until enough data is stored, and kills the server at teardown.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from tests.ports import free_port

#: Prometheus' default buckets, in seconds.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Per version: requests/s, errors/s, client errors/s, share of requests per bucket upper bound.
RATES = {
    "stable": (90.0, 0.9, 1.8, {0.05: 0.1, 0.1: 0.5, 0.25: 0.3, 0.5: 0.1}),
    "candidate": (10.0, 1.0, 0.0, {0.1: 0.2, 0.25: 0.5, 0.5: 0.2, 1.0: 0.1}),
}
SCRAPE_S = 1.0
DATA_WAIT_S = 25.0


class ProxyLikeCollector(Collector):
    """Counters equal to rate * (now - t0): their increase over any window is rate * window."""

    def __init__(self, t0: float) -> None:
        self.t0 = t0

    def collect(self) -> Iterable[Metric]:
        elapsed = time.time() - self.t0
        labels = ["service", "route", "version", "traffic_class"]
        requests = CounterMetricFamily("stageless_proxy_requests", "requests", labels=labels)
        errors = CounterMetricFamily("stageless_proxy_errors", "5xx", labels=labels)
        client = CounterMetricFamily("stageless_proxy_client_errors", "4xx", labels=labels)
        latency = HistogramMetricFamily(
            "stageless_proxy_request_duration_seconds", "latency", labels=labels
        )
        for version, (rate, error_rate, client_rate, shares) in RATES.items():
            key = ["checkout", "/api", version, "user"]
            requests.add_metric(key, rate * elapsed)
            errors.add_metric(key, error_rate * elapsed)
            client.add_metric(key, client_rate * elapsed)
            cumulative, buckets = 0.0, []
            for le in BUCKETS:
                cumulative += shares.get(le, 0.0)
                buckets.append((str(le), cumulative * rate * elapsed))
            buckets.append(("+Inf", rate * elapsed))
            latency.add_metric(key, buckets, sum_value=0.2 * rate * elapsed)
            # Tester traffic must never be counted as user traffic.
            requests.add_metric(["checkout", "/api", version, "tester"], 1000.0 * elapsed)
        # A service whose candidate never got a request: only stable series exist.
        requests.add_metric(["search", "/q", "stable", "user"], 50.0 * elapsed)
        # A user's own metric, with its own names for the service and the versions.
        own = CounterMetricFamily("http_requests", "a user's own metric", labels=["app", "track"])
        for track, rate in (("primary", 90.0), ("canary", 10.0)):
            own.add_metric(["checkout", track], rate * elapsed)
        yield from (requests, errors, client, latency, own)


@dataclass(frozen=True)
class RunningPrometheus:
    url: str
    first_sample: float  # Unix time of the first stored scrape of the target


@pytest.fixture(scope="module")
def target() -> Iterator[str]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ProxyLikeCollector(t0=time.time() - 100.0))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = generate_latest(registry)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="metrics-target", daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture(scope="module")
def prometheus(
    target: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningPrometheus]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail(
            "the prometheus binary is not on PATH: run scripts/setup, which installs the Debian "
            "package 'prometheus' listed in scripts/debian-packages"
        )
    workdir: Path = tmp_path_factory.mktemp("prometheus")
    config = workdir / "prometheus.yml"
    config.write_text(
        "global:\n"
        f"  scrape_interval: {SCRAPE_S:g}s\n"
        f"  evaluation_interval: {SCRAPE_S:g}s\n"
        "scrape_configs:\n"
        "  - job_name: target\n"
        "    static_configs:\n"
        f"      - targets: ['{target}']\n"
    )
    port = free_port()
    log = (workdir / "prometheus.log").open("wb")
    process = subprocess.Popen(  # noqa: S603 - a fixed binary with our own arguments
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.console.templates=/nonexistent",
            "--web.console.libraries=/nonexistent",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        first = wait_for_data(url, process, workdir / "prometheus.log")
        yield RunningPrometheus(url, first)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        log.close()


def wait_for_data(url: str, process: subprocess.Popen[bytes], log: Path) -> float:
    """Wait (bounded) until 12 s of scrapes are stored; the time of the first one."""
    deadline = time.monotonic() + DATA_WAIT_S
    first: float | None = None
    query = "timestamp(stageless_proxy_requests_total)"
    with httpx.Client(timeout=2.0, trust_env=False) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"prometheus exited with {process.returncode}: {log.read_text()}")
            if first is None:
                try:
                    answer = client.get(f"{url}/api/v1/query", params={"query": query}).json()
                    result = answer["data"]["result"]
                    first = float(result[0]["value"][1]) if result else None
                except (httpx.HTTPError, ValueError, KeyError):  # not up yet
                    pass
            elif time.time() >= first + 12.0:
                return first
            time.sleep(0.2)
    pytest.fail(f"prometheus stored no usable data within {DATA_WAIT_S:g} s: {log.read_text()}")
