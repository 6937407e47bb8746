"""The nginx driver against a real nginx on loopback, in front of two small upstreams: the
generated configuration passes ``nginx -t``; weights move by graceful reload under live traffic
with no failed request; raising the weight only adds users; tester routing follows the valid
tokens only; ``mirror`` copies the shadow share to the candidate; batches from the JSON access
log are valid and count what was sent."""

from __future__ import annotations

import asyncio
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stageless.analysis.batch import TrafficClass, Version, parse_batch
from stageless.drivers.base import DriverError
from stageless.drivers.nginx import (
    NginxDriver,
    NginxLayout,
    nginx_percent,
    parse_log_line,
    render_config,
    write_config,
)
from stageless.rollout.commands import Traffic
from stageless.rollout.plan import RolloutPlan, parse_plan
from tests.drivers.dataplane import (
    ENVIRON,
    TESTERS,
    Tokens,
    Upstream,
    get,
    load,
    program,
    running,
    tokens_file,
    upstreams,
    user_answers,
)
from tests.ports import free_port


def nginx_plan(
    directory: Path, stable: str, candidate: str, port: int, tokens: Path, nginx: str = "nginx"
) -> RolloutPlan:
    return parse_plan(
        f"service: shop\nstable: {{addresses: ['{stable}']}}\n"
        f"candidate: {{addresses: ['{candidate}']}}\ndriver: nginx\n"
        "steps: [{kind: shadow}, {kind: testers}, {kind: canary, weight: 5}, {kind: promote}]\n"
        f"nginx: {{config: {directory}/shop.conf, nginx: {nginx}, listen: '127.0.0.1:{port}', "
        f"worker_processes: 1, testers: {TESTERS % tokens}, interval_s: 1}}\n"
    )


@dataclass
class Running:
    plan: RolloutPlan
    driver: NginxDriver
    port: int
    stable: Upstream
    candidate: Upstream
    tokens: Tokens
    layout: NginxLayout


@pytest.fixture
def directory() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="ngx", dir="/tmp") as name:
        yield Path(name)


@pytest.fixture
async def nginx(directory: Path) -> AsyncIterator[Running]:
    binary = program("nginx")
    tokens = tokens_file(directory, time.time())
    with upstreams() as (stable, candidate):
        port = free_port()
        plan = nginx_plan(directory, stable.address, candidate.address, port, tokens.file, binary)
        config = write_config(plan)
        layout = NginxLayout.of(plan.nginx)  # type: ignore[arg-type]
        command = [binary, "-e", str(layout.error_log), "-c", str(config), "-g", "daemon off;"]
        with running(command, port, layout.error_log):
            driver = NginxDriver(plan, environ=ENVIRON)
            yield Running(plan, driver, port, stable, candidate, tokens, layout)
            await driver.close()


async def settle(running: Running) -> None:
    """Wait until the old workers of the last reload are gone: apply returns once the new
    worker runs, while the old one still finishes what it holds (worker_processes is 1)."""
    master = running.layout.pid.read_text().strip()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        children = subprocess.run(  # noqa: S603 - pgrep, fixed arguments
            ["/usr/bin/pgrep", "-a", "-P", master], capture_output=True, text=True, check=False
        ).stdout.splitlines()
        if len(children) == 1 and "shutting down" not in children[0]:
            return
        await asyncio.sleep(0.02)
    pytest.fail("nginx's old workers did not stop within 10 s")


async def arrived(upstream: Upstream, count: int) -> None:
    """Wait (3 s at most) until ``upstream`` has seen ``count`` requests (copies are sent in
    the background)."""
    deadline = time.monotonic() + 3
    while len(upstream.seen) < count and time.monotonic() < deadline:
        await asyncio.sleep(0.02)


async def quiet(upstream: Upstream) -> None:
    """Wait until ``upstream`` has seen no new request for 0.3 s (3 s at most)."""
    deadline, count = time.monotonic() + 3, -1
    while len(upstream.seen) != count and time.monotonic() < deadline:
        count = len(upstream.seen)
        await asyncio.sleep(0.3)


def test_every_generated_configuration_passes_nginx_t(directory: Path) -> None:
    tokens = tokens_file(directory, time.time())
    plan = nginx_plan(directory, "127.0.0.1:9001", "127.0.0.1:9002", 8080, tokens.file)
    write_config(plan)
    for traffic, promoted in [
        (Traffic(), False),
        (Traffic(0.005, testers=True, shadow=0.5), False),
        (Traffic(33.333, testers=True, shadow=100), False),
        (Traffic(100), False),
        (Traffic(), True),
    ]:
        candidate = directory / "check.conf"
        candidate.write_text(render_config(plan, traffic, (tokens.valid,), promoted=promoted))
        checked = subprocess.run(  # noqa: S603 - the real nginx
            [
                program("nginx"),
                "-q",
                "-e",
                str(directory / "error.log"),
                "-t",
                "-c",
                str(candidate),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert checked.returncode == 0, (traffic, checked.stderr)


def test_the_configuration_says_what_it_does(directory: Path) -> None:
    plan = nginx_plan(directory, "127.0.0.1:9001", "127.0.0.1:9002", 8080, directory / "t")
    text = render_config(plan, Traffic(5, testers=True, shadow=10), ("st1.a.b",))
    assert 'split_clients "shop$stageless_key" $stageless_split {\n        5.00% candidate;' in text
    assert '        "st1.a.b" 1;' in text
    assert "            mirror /_stageless_mirror;" in text
    assert "        10.00% 1;" in text
    off = render_config(plan, Traffic(5), ("st1.a.b",))
    assert "st1.a.b" not in off and "mirror /_stageless_mirror;" not in off
    promoted = render_config(plan, Traffic(), promoted=True)
    assert promoted.count("server 127.0.0.1:9002;") == 2 and "9001" not in promoted


async def test_weights_move_by_graceful_reload_without_a_failed_request(nginx: Running) -> None:
    with load(nginx.port, clients=2, users=300) as loops:
        for weight in (5, 25, 50, 100, 25):
            await nginx.driver.apply(Traffic(weight))
            await asyncio.sleep(0.25)
        await nginx.driver.apply(Traffic())
        await settle(nginx)
        await asyncio.sleep(0.2)
    failures = [f for loop in loops for f in loop.failures]
    assert failures == []
    assert sum(loop.requests for loop in loops) > 200
    total: Counter[str] = sum((loop.answers for loop in loops), start=Counter())
    assert set(total) == {"stable", "candidate"}
    after = user_answers(nginx.port, [f"user-0-{i}" for i in range(200)])
    assert set(after.values()) == {"stable"}, "a rolled-back candidate still gets users"


async def test_reloads_drop_no_new_connection_either(nginx: Running) -> None:
    with load(nginx.port, clients=2, keep_alive=False) as loops:
        for weight in (10, 20, 30, 40):
            await nginx.driver.apply(Traffic(weight))
            await asyncio.sleep(0.2)
    assert [f for loop in loops for f in loop.failures] == []
    assert sum(loop.requests for loop in loops) > 50


async def test_raising_the_weight_only_adds_users(nginx: Running) -> None:
    users = [f"u{i}" for i in range(1500)]
    await nginx.driver.apply(Traffic(10))
    await settle(nginx)
    at_10 = user_answers(nginx.port, users)
    await nginx.driver.apply(Traffic(30))
    await settle(nginx)
    at_30 = user_answers(nginx.port, users)
    assert user_answers(nginx.port, users) == at_30
    assert [u for u in users if at_10[u] == "candidate" and at_30[u] != "candidate"] == []
    assert 0.06 < sum(v == "candidate" for v in at_10.values()) / len(users) < 0.14
    assert 0.25 < sum(v == "candidate" for v in at_30.values()) / len(users) < 0.35


async def test_a_first_visit_gets_a_sticky_key_that_keeps_its_version(nginx: Running) -> None:
    await nginx.driver.apply(Traffic(50))
    await settle(nginx)
    _, body, response = get(nginx.port)
    cookie = response.getheader("Set-Cookie") or ""
    assert cookie.startswith("stageless-key=") and "Max-Age=31536000" in cookie
    key = cookie.split(";")[0].removeprefix("stageless-key=")
    assert user_answers(nginx.port, [key] * 20) == {key: body}
    _, _, again = get(nginx.port, headers={"Cookie": f"stageless-key={key}"})
    assert again.getheader("Set-Cookie") is None


async def test_testers_reach_the_candidate_only_with_a_valid_token(nginx: Running) -> None:
    tokens, port = nginx.tokens, nginx.port
    await nginx.driver.apply(Traffic(0, testers=True))
    await settle(nginx)
    assert get(port, headers={"x-stageless-route": tokens.valid})[1] == "candidate"
    assert get(port, headers={"Cookie": f"stageless-route={tokens.valid}"})[1] == "candidate"
    for refused in (tokens.expired, tokens.other_service, tokens.forged, "st1.made.up"):
        assert get(port, headers={"x-stageless-route": refused})[1] == "stable"
    seen = nginx.candidate.seen[-1]
    assert seen.get("x-stageless-traffic") == "tester"
    assert seen.get("x-stageless-version") == "candidate"
    assert "x-stageless-route" not in seen
    await nginx.driver.apply(Traffic())
    await settle(nginx)
    assert get(port, headers={"x-stageless-route": tokens.valid})[1] == "stable"


async def test_mirror_copies_the_shadow_share_to_the_candidate(nginx: Running) -> None:
    await nginx.driver.apply(Traffic(0, shadow=100))
    await settle(nginx)
    before = len(nginx.candidate.seen)
    answers = [get(nginx.port, f"/item/{i}")[1] for i in range(20)]
    await arrived(nginx.candidate, before + 20)
    assert set(answers) == {"stable"}  # users only ever see stable's answers
    copies = nginx.candidate.seen[before:]
    assert len(copies) == 20
    assert {c.get("x-stageless-traffic") for c in copies} == {"shadow"}
    await asyncio.sleep(2.1)
    report = await nginx.driver.shadow_report()
    assert report.report is None and report.sent == 20 and report.failed == 0
    await nginx.driver.apply(Traffic(0, shadow=25))
    await settle(nginx)
    before = len(nginx.candidate.seen)
    for i in range(400):
        get(nginx.port, f"/item/{i}")
    await quiet(nginx.candidate)
    assert 60 < len(nginx.candidate.seen) - before < 140
    await nginx.driver.apply(Traffic())
    await settle(nginx)
    before = len(nginx.candidate.seen)
    for i in range(20):
        get(nginx.port, f"/item/{i}")
    assert len(nginx.candidate.seen) == before


async def test_batches_from_the_access_log_count_what_was_sent(nginx: Running) -> None:
    driver, port = nginx.driver, nginx.port
    await driver.apply(Traffic(50, testers=True))
    await settle(nginx)
    started = time.time()
    users = [f"b{i}" for i in range(60)]
    versions = user_answers(port, users)
    for path in ("/status/500", "/status/500", "/status/404"):
        get(port, path, headers={"Cookie": "stageless-key=b0"})
    get(port, headers={"x-stageless-route": nginx.tokens.valid})
    await asyncio.sleep(2.2)  # the interval ends, then the log lag
    found = await driver.batches(started - 1)
    assert found, "no batch after an interval"
    for batch in found:
        assert parse_batch(batch.to_json()) == batch
    user = [b for b in found if b.traffic_class is TrafficClass.USER]
    assert sum(b.requests for b in user) == 63
    by_version = {v: [b for b in user if b.version is v] for v in Version}
    expected = sum(v == "candidate" for v in versions.values())
    extra = 3 if versions["b0"] == "candidate" else 0
    assert sum(b.requests for b in by_version[Version.CANDIDATE]) == expected + extra
    b0 = Version(versions["b0"])
    assert sum(b.errors for b in by_version[b0]) == 2
    assert sum(b.client_errors for b in by_version[b0]) == 1
    assert sum(b.users for b in user) >= 60
    assert sum(b.new_users or 0 for b in by_version[Version.CANDIDATE]) == expected
    assert all(b.samples and sum(b.histogram.counts) == b.requests for b in user if b.requests)
    assert all(b.configured_share == 0.5 for b in user)
    testers = [b for b in found if b.traffic_class is TrafficClass.TESTER]
    assert [(b.version, b.requests) for b in testers] == [(Version.CANDIDATE, 1)]
    assert await driver.batches(time.time() + 60) == []


async def test_a_configuration_nginx_refuses_is_not_put_in_place(directory: Path) -> None:
    plan = nginx_plan(
        directory, "127.0.0.1:9001", "127.0.0.1:9002", 8080, directory / "t", "/bin/false"
    )
    with pytest.raises(DriverError, match="nginx: cannot check the new configuration"):
        await NginxDriver(plan, environ=ENVIRON).apply(Traffic(5))
    assert not (directory / "shop.conf").exists()


async def test_a_reload_without_a_running_nginx_says_so(directory: Path) -> None:
    plan = nginx_plan(
        directory, "127.0.0.1:9001", "127.0.0.1:9002", 8080, directory / "t", program("nginx")
    )
    with pytest.raises(DriverError, match=r"cannot reload \(is nginx running with -c"):
        await NginxDriver(plan, environ=ENVIRON).apply(Traffic(5))


def test_log_lines_become_records() -> None:
    line = (
        '{"ts":1764100000.125,"version":"candidate","class":"user","status":503,'
        '"request_time":0.042,"upstream":"127.0.0.1:9002","upstream_status":"503","key":"k1"}'
    )
    record = parse_log_line(line)
    assert record is not None
    assert (record.ts, record.version, record.status, record.user) == (
        1764100000.125,
        Version.CANDIDATE,
        503,
        "k1",
    )
    assert record.latency_ms == pytest.approx(42.0)
    shadow = parse_log_line(line.replace('"class":"user"', '"class":"shadow"'))
    assert shadow is not None and shadow.user is None  # copies are nobody's visit
    for bad in ("", "not json", '{"ts":1}', line.replace("candidate", "canary"), "[]"):
        assert parse_log_line(bad) is None


@given(st.integers(1, 99_999).map(lambda u: u / 1000))
def test_split_percentages_have_two_decimals_and_never_round_to_nothing(weight: float) -> None:
    text = nginx_percent(weight)
    whole, _, rest = text.removesuffix("%").partition(".")
    assert len(rest) == 2
    value = int(whole) + int(rest) / 100
    assert value >= 0.01
    assert abs(value - weight) <= 0.005 + 1e-9 or value == 0.01
