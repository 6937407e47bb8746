"""The Gateway API driver: the HTTPRoutes it writes (weighted backendRefs, a header match per
valid tester token, the RequestMirror filter) validate against the Gateway API schema as the npm
package ``@kubernetes-models/gateway-api`` compiles it (run with the machine's Node.js, versions
locked in tests/drivers/js); they go to a file or standard output, and to kubectl when asked;
batches come from Prometheus' HTTP API (a loopback server speaking it)."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from stageless.analysis.batch import Version, parse_batch
from stageless.drivers.base import DriverError
from stageless.drivers.gateway import (
    ROUTE_HEADER,
    WEIGHT_UNITS,
    GatewayDriver,
    dump_manifest,
    render_httproute,
)
from stageless.drivers.testers import MAX_TOKENS
from stageless.rollout.commands import Traffic
from stageless.rollout.plan import RolloutPlan, parse_plan
from tests.drivers.dataplane import ENVIRON, TESTERS, tokens_file
from tests.ports import free_port

JS_DIR = Path(__file__).parent / "js"
SCRIPT = JS_DIR / "validate_httproute.mjs"


def gateway_plan(extra: str = "", tokens: Path = Path("/nonexistent/tokens")) -> RolloutPlan:
    return parse_plan(
        "service: shop\nstable: {addresses: ['shop-stable:8080']}\n"
        "candidate: {addresses: ['shop-canary:8080']}\ndriver: gateway-api\n"
        "steps: [{kind: shadow}, {kind: testers}, {kind: canary, weight: 5}, {kind: promote}]\n"
        f"gateway: {{parent_refs: [{{name: edge, namespace: infra, section_name: https}}], "
        f"testers: {TESTERS % tokens}{extra}}}\n"
    )


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: the Gateway API schema check needs Node.js and npm")
    return path


def validate(manifests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each manifest checked by @kubernetes-models/gateway-api (``npm ci`` first if needed)."""
    node = tool("node")
    if not (JS_DIR / "node_modules" / "@kubernetes-models" / "gateway-api").is_dir():
        installed = subprocess.run(  # noqa: S603 - a fixed command
            [tool("npm"), "ci", "--no-audit", "--no-fund"],
            cwd=JS_DIR,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert installed.returncode == 0, f"npm ci failed:\n{installed.stdout}{installed.stderr}"
    done = subprocess.run(  # noqa: S603 - node with our script
        [node, str(SCRIPT)],
        input=json.dumps(manifests),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    results: list[dict[str, Any]] = json.loads(done.stdout)
    return results


def test_the_route_weighs_routes_testers_and_mirrors() -> None:
    plan = gateway_plan(", hostnames: [shop.example.com], namespace: web")
    route = render_httproute(plan, Traffic(5, testers=True, shadow=10), ("st1.a.b", "st1.c.d"))
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert route["kind"] == "HTTPRoute"
    assert route["metadata"]["name"] == "shop" and route["metadata"]["namespace"] == "web"
    assert route["spec"]["parentRefs"] == [
        {"name": "edge", "namespace": "infra", "sectionName": "https"}
    ]
    assert route["spec"]["hostnames"] == ["shop.example.com"]
    testers, main = route["spec"]["rules"]
    assert testers == {
        "matches": [
            {"headers": [{"type": "Exact", "name": ROUTE_HEADER, "value": "st1.a.b"}]},
            {"headers": [{"type": "Exact", "name": ROUTE_HEADER, "value": "st1.c.d"}]},
        ],
        "backendRefs": [{"name": "shop-canary", "port": 8080}],
    }
    assert main == {
        "backendRefs": [
            {"name": "shop-stable", "port": 8080, "weight": 95_000},
            {"name": "shop-canary", "port": 8080, "weight": 5_000},
        ],
        "filters": [
            {
                "type": "RequestMirror",
                "requestMirror": {
                    "backendRef": {"name": "shop-canary", "port": 8080},
                    "percent": 10,
                },
            }
        ],
    }


def test_fractional_shares_and_promotion() -> None:
    plan = gateway_plan()
    route = render_httproute(plan, Traffic(0.125, shadow=0.5))
    (main,) = route["spec"]["rules"]
    assert [b["weight"] for b in main["backendRefs"]] == [WEIGHT_UNITS - 125, 125]
    mirror = main["filters"][0]["requestMirror"]
    assert mirror["fraction"] == {"numerator": 500, "denominator": WEIGHT_UNITS}
    assert "percent" not in mirror
    off = render_httproute(plan, Traffic(), ("st1.a.b",))
    assert len(off["spec"]["rules"]) == 1 and "filters" not in off["spec"]["rules"][0]
    promoted = render_httproute(plan, Traffic(), promoted=True)
    assert [b["weight"] for b in promoted["spec"]["rules"][0]["backendRefs"]] == [0, WEIGHT_UNITS]


def test_an_address_that_is_no_service_name_needs_the_backend_setting() -> None:
    plan = parse_plan(
        "service: shop\nstable: {addresses: ['10.0.0.1:80']}\n"
        "candidate: {addresses: ['10.0.0.2:80']}\ndriver: gateway-api\nsteps: [{kind: promote}]\n"
        "gateway: {parent_refs: [{name: edge}], candidate_backend: {name: c, port: 80}}\n"
    )
    with pytest.raises(DriverError, match=r"gateway\.stable_backend: the address '10\.0\.0\.1:80'"):
        render_httproute(plan, Traffic(5))


def test_every_route_validates_against_the_gateway_api_schema() -> None:
    tokens = tuple(f"st1.{'a' * 40}{i:02d}.{'b' * 43}" for i in range(MAX_TOKENS))
    plans = [gateway_plan(), gateway_plan(", hostnames: [shop.example.com, '*.shop.example']")]
    manifests = [
        render_httproute(plan, traffic, tokens, promoted=promoted)
        for plan in plans
        for traffic, promoted in [
            (Traffic(), False),
            (Traffic(0.001, testers=True, shadow=0.001), False),
            (Traffic(5, testers=True, shadow=10), False),
            (Traffic(100, testers=True, shadow=100), False),
            (Traffic(), True),
        ]
    ]
    assert [r for r in validate(manifests) if not r["ok"]] == []
    # The check can fail: the same route with values outside the schema's bounds.
    broken = json.loads(json.dumps(manifests[2]))
    broken["spec"]["rules"][-1]["backendRefs"][0]["weight"] = 2_000_000
    broken["spec"]["rules"][-1]["filters"][0]["requestMirror"]["percent"] = 150
    (result,) = validate([broken])
    assert not result["ok"]
    assert any("weight" in e for e in result["errors"]), result
    assert any("percent" in e for e in result["errors"]), result


def test_the_driver_writes_each_change_to_its_file(tmp_path: Path) -> None:
    now = [time.time()]
    tokens = tokens_file(tmp_path, now[0])
    out = tmp_path / "routes" / "shop.yaml"
    plan = gateway_plan(f", output: {out}", tokens.file)
    driver = GatewayDriver(plan, environ=ENVIRON, clock=lambda: now[0])

    async def run() -> None:
        await driver.apply(Traffic(5, testers=True))
        written = yaml.safe_load(out.read_text())
        assert written == render_httproute(plan, Traffic(5, testers=True), (tokens.valid,))
        stamp = out.stat().st_mtime_ns
        await driver.apply(Traffic(5, testers=True))
        assert out.stat().st_mtime_ns == stamp  # nothing changed: nothing written
        now[0] += 7200  # the token expired: the next refresh drops the tester rule
        driver.fetched_until = now[0]  # (no Prometheus here: nothing to fetch)
        await driver.batches(now[0])
        assert len(yaml.safe_load(out.read_text())["spec"]["rules"]) == 1
        await driver.promote()
        promoted = yaml.safe_load(out.read_text())
        assert [b["weight"] for b in promoted["spec"]["rules"][0]["backendRefs"]] == [0, 100_000]
        await driver.close()

    import asyncio

    asyncio.run(run())
    assert out.read_text().startswith("---\n")
    assert [p.name for p in out.parent.iterdir()] == ["shop.yaml"]  # no staged file left


async def test_standard_output_gets_the_manifest(capsys: pytest.CaptureFixture[str]) -> None:
    driver = GatewayDriver(gateway_plan(), environ=ENVIRON)
    await driver.apply(Traffic(25))
    printed = capsys.readouterr().out
    assert printed == dump_manifest(render_httproute(gateway_plan(), Traffic(25)))
    await driver.close()


async def test_kubectl_failures_are_driver_errors(tmp_path: Path) -> None:
    plan = gateway_plan(f", output: {tmp_path}/r.yaml, kubectl: true, kubectl_context: no-such")
    driver = GatewayDriver(plan, environ=ENVIRON)
    with pytest.raises(DriverError, match="kubectl"):
        await driver.apply(Traffic(5))
    await driver.close()


class _Prometheus(BaseHTTPRequestHandler):
    """Answers /api/v1/query_range like Prometheus: per step, the candidate 10 requests with 1
    error and stable 90 with none; latency buckets to match."""

    server: PrometheusStub

    def do_GET(self) -> None:
        query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
        promql, start = query["query"][0], float(query["start"][0])
        end, step = float(query["end"][0]), float(query["step"][0])
        self.server.queries.append(promql)
        candidate = 'version="candidate"' in promql
        points = [start + i * step for i in range(int((end - start) / step + 1e-9) + 1)]
        series: list[dict[str, Any]]
        if "errors_total" in promql:
            series = [{"metric": {}, "values": [[t, "1" if candidate else "0"] for t in points]}]
        elif "_bucket" in promql:
            count = 10 if candidate else 90
            series = [
                {"metric": {"le": le}, "values": [[t, str(count * share)] for t in points]}
                for le, share in (("0.05", 0.5), ("0.25", 1.0), ("+Inf", 1.0))
            ]
        else:
            series = [{"metric": {}, "values": [[t, "10" if candidate else "90"] for t in points]}]
        body = json.dumps({"status": "success", "data": {"resultType": "matrix", "result": series}})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        """Quiet."""


class PrometheusStub(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        self.queries: list[str] = []
        super().__init__(("127.0.0.1", free_port()), _Prometheus)


@pytest.fixture
def prometheus() -> Iterator[PrometheusStub]:
    server = PrometheusStub()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


async def test_batches_come_from_prometheus(prometheus: PrometheusStub, tmp_path: Path) -> None:
    now = [1_764_100_000.0]
    url = f"http://127.0.0.1:{prometheus.server_address[1]}"
    plan = gateway_plan(f", output: {tmp_path}/r.yaml, metrics: {{url: '{url}', interval_s: 10}}")
    driver = GatewayDriver(plan, environ=ENVIRON, clock=lambda: now[0])
    await driver.apply(Traffic(10))
    since = now[0]
    assert await driver.batches(since) == []  # no whole interval yet
    now[0] += 30
    found = await driver.batches(since)
    assert len(found) == 6  # 3 intervals x 2 versions
    for batch in found:
        assert parse_batch(batch.to_json()) == batch
        assert since <= batch.ts < now[0]
    candidate = [b for b in found if b.version is Version.CANDIDATE]
    assert {(b.requests, b.errors, b.configured_share) for b in candidate} == {(10, 1, 0.1)}
    assert sum(candidate[0].histogram.counts) == 10
    asked = len(prometheus.queries)
    assert await driver.batches(since) == found  # nothing new: not asked again
    assert len(prometheus.queries) == asked
    assert any('service="shop"' in q and 'version="candidate"' in q for q in prometheus.queries)
    await driver.close()


async def test_unreachable_prometheus_is_a_driver_error(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    plan = gateway_plan(f", output: {tmp_path}/r.yaml, metrics: {{url: '{url}', interval_s: 1}}")
    now = [1_764_100_000.0]
    driver = GatewayDriver(plan, environ=ENVIRON, clock=lambda: now[0])
    now[0] += 5
    with pytest.raises(DriverError, match="metrics for 'shop': cannot reach Prometheus"):
        await driver.batches(now[0] - 5)
    await driver.close()
