"""The HAProxy driver against a real HAProxy on loopback, in front of two small upstreams:
the generated configuration passes ``haproxy -c``; weights move over the runtime API under live
traffic with no failed request; raising the weight only adds users; tester routing follows the
valid tokens only; a rollback is one move; batches from ``show stat`` are valid and count what
was sent."""

from __future__ import annotations

import asyncio
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stageless.analysis.batch import TrafficClass, Version, parse_batch
from stageless.drivers.base import DriverError
from stageless.drivers.haproxy import (
    MAX_WEIGHT,
    HAProxyDriver,
    parse_stat,
    render_config,
    server_weights,
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


def haproxy_plan(
    directory: Path, stable: list[str], candidate: list[str], port: int, tokens: Path
) -> RolloutPlan:
    return parse_plan(
        f"service: shop\nstable: {{addresses: {stable}}}\ncandidate: {{addresses: {candidate}}}\n"
        "driver: haproxy\nsteps: [{kind: testers}, {kind: canary, weight: 5}, {kind: promote}]\n"
        f"haproxy: {{socket: {directory}/admin.sock, listen: '127.0.0.1:{port}', "
        f"testers_acl: {directory}/testers.acl, testers: {TESTERS % tokens}, interval_s: 1}}\n"
    )


@dataclass
class Running:
    plan: RolloutPlan
    driver: HAProxyDriver
    port: int
    stable: Upstream
    candidate: Upstream
    tokens: Tokens


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory with a short path (a unix socket's path has at most 107 bytes)."""
    with tempfile.TemporaryDirectory(prefix="hx", dir="/tmp") as name:
        yield Path(name)


@pytest.fixture
async def haproxy(short_dir: Path) -> AsyncIterator[Running]:
    binary = program("haproxy")
    tokens = tokens_file(short_dir, time.time())
    with upstreams() as (stable, candidate):
        port = free_port()
        plan = haproxy_plan(short_dir, [stable.address], [candidate.address], port, tokens.file)
        config = write_config(plan, short_dir / "haproxy.cfg")
        with running([binary, "-db", "-f", str(config)], port):
            driver = HAProxyDriver(plan, environ=ENVIRON)
            yield Running(plan, driver, port, stable, candidate, tokens)
            await driver.close()


def test_the_generated_configuration_passes_haproxy_check(short_dir: Path) -> None:
    tokens = tokens_file(short_dir, time.time())
    plan = haproxy_plan(
        short_dir, ["127.0.0.1:9001", "127.0.0.1:9002"], ["127.0.0.1:9003"], 8080, tokens.file
    )
    config = write_config(plan, short_dir / "haproxy.cfg")
    assert (short_dir / "testers.acl").read_text() == ""
    text = config.read_text()
    assert "server stable-1 127.0.0.1:9001 weight 256" in text
    assert "server stable-2 127.0.0.1:9002 weight 256" in text
    assert "server candidate-1 127.0.0.1:9003 weight 0" in text
    assert "balance hash var(txn.stageless_key)" in text
    assert f"stats socket {short_dir}/admin.sock mode 600 level admin" in text
    checked = subprocess.run(  # noqa: S603 - the real haproxy
        [program("haproxy"), "-c", "-f", str(config)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


async def test_weights_move_under_live_traffic_without_a_failed_request(haproxy: Running) -> None:
    with load(haproxy.port, clients=2, users=300) as loops:
        for weight in (5, 25, 50, 100, 25):
            await haproxy.driver.apply(Traffic(weight))
            await asyncio.sleep(0.25)
        await haproxy.driver.apply(Traffic())  # rollback
        await asyncio.sleep(0.2)
    failures = [f for loop in loops for f in loop.failures]
    answered = sum(loop.requests for loop in loops)
    assert failures == []
    assert answered > 200
    total = sum((loop.answers for loop in loops), start=type(loops[0].answers)())
    assert set(total) == {"stable", "candidate"}
    assert await haproxy.driver.weights() == {"stable-1": MAX_WEIGHT, "candidate-1": 0}
    after = user_answers(haproxy.port, [f"user-0-{i}" for i in range(200)])
    assert set(after.values()) == {"stable"}, "a rolled-back candidate still gets users"


async def test_raising_the_weight_only_adds_users(haproxy: Running) -> None:
    users = [f"u{i}" for i in range(1500)]
    await haproxy.driver.apply(Traffic(10))
    at_10 = user_answers(haproxy.port, users)
    await haproxy.driver.apply(Traffic(30))
    at_30 = user_answers(haproxy.port, users)
    again = user_answers(haproxy.port, users)
    assert at_30 == again, "users flip between requests at one weight"
    moved_back = [u for u in users if at_10[u] == "candidate" and at_30[u] != "candidate"]
    assert moved_back == []
    share_10 = sum(v == "candidate" for v in at_10.values()) / len(users)
    share_30 = sum(v == "candidate" for v in at_30.values()) / len(users)
    assert 0.05 < share_10 < 0.16
    assert 0.22 < share_30 < 0.38


async def test_a_first_visit_gets_a_sticky_key_that_keeps_its_version(haproxy: Running) -> None:
    await haproxy.driver.apply(Traffic(50))
    _, body, response = get(haproxy.port)
    cookie = response.getheader("Set-Cookie") or ""
    assert cookie.startswith("stageless-key=") and "Max-Age=31536000" in cookie
    key = cookie.split(";")[0].removeprefix("stageless-key=")
    assert user_answers(haproxy.port, [key] * 20) == {key: body}
    _, _, again = get(haproxy.port, headers={"Cookie": f"stageless-key={key}"})
    assert again.getheader("Set-Cookie") is None


async def test_testers_reach_the_candidate_only_with_a_valid_token(haproxy: Running) -> None:
    tokens, port = haproxy.tokens, haproxy.port
    await haproxy.driver.apply(Traffic(0, testers=True))
    assert get(port, headers={"x-stageless-route": tokens.valid})[1] == "candidate"
    assert get(port, headers={"Cookie": f"stageless-route={tokens.valid}"})[1] == "candidate"
    for refused in (tokens.expired, tokens.other_service, tokens.forged, "st1.made.up"):
        assert get(port, headers={"x-stageless-route": refused})[1] == "stable"
    seen = haproxy.candidate.seen[-1]
    assert seen.get("x-stageless-traffic") == "tester"
    assert "x-stageless-route" not in seen
    listed = await haproxy.driver.api.run(f"show acl {haproxy.plan.haproxy.testers_acl}")  # type: ignore[union-attr]
    assert [line.split()[1] for line in listed.splitlines() if line.strip()] == [tokens.valid]
    await haproxy.driver.apply(Traffic())  # a rollback stops tester routing too
    assert get(port, headers={"x-stageless-route": tokens.valid})[1] == "stable"


async def test_a_token_that_expires_stops_matching_at_the_next_refresh(short_dir: Path) -> None:
    now = [time.time()]
    binary = program("haproxy")
    tokens = tokens_file(short_dir, now[0])
    with upstreams() as (stable, candidate):
        port = free_port()
        plan = haproxy_plan(short_dir, [stable.address], [candidate.address], port, tokens.file)
        config = write_config(plan, short_dir / "haproxy.cfg")
        with running([binary, "-db", "-f", str(config)], port):
            driver = HAProxyDriver(plan, environ=ENVIRON, clock=lambda: now[0])
            await driver.apply(Traffic(0, testers=True))
            assert get(port, headers={"x-stageless-route": tokens.valid})[1] == "candidate"
            now[0] += 7200  # the valid token's hour is over
            await driver.batches(0)
            assert get(port, headers={"x-stageless-route": tokens.valid})[1] == "stable"


async def test_promotion_sends_every_user_to_the_candidate(haproxy: Running) -> None:
    await haproxy.driver.apply(Traffic(25, testers=True))
    await haproxy.driver.promote()
    assert set(user_answers(haproxy.port, [f"p{i}" for i in range(100)]).values()) == {"candidate"}
    assert await haproxy.driver.weights() == {"stable-1": 0, "candidate-1": MAX_WEIGHT}


async def test_shadowing_is_refused_with_the_reason(haproxy: Running) -> None:
    with pytest.raises(DriverError, match="HAProxy cannot copy requests"):
        await haproxy.driver.apply(Traffic(5, shadow=10))
    assert (await haproxy.driver.shadow_report()).sent == 0


async def test_batches_from_show_stat_count_what_was_sent(haproxy: Running) -> None:
    driver, port = haproxy.driver, haproxy.port
    await driver.apply(Traffic(50, testers=True))
    started = time.time()
    await driver.batches(started)  # the interval starts at the apply
    users = [f"b{i}" for i in range(60)]
    versions = user_answers(port, users)
    for path in ("/status/500", "/status/500", "/status/404"):
        get(port, path, headers={"Cookie": "stageless-key=b0"})
    get(port, headers={"x-stageless-route": haproxy.tokens.valid})
    await asyncio.sleep(1.05)
    found = await driver.batches(started - 1)
    assert found, "no batch after an interval"
    for batch in found:
        assert parse_batch(batch.to_json()) == batch
    user = [b for b in found if b.traffic_class is TrafficClass.USER]
    assert sum(b.requests for b in user) == 63
    by_version = {
        v: sum(b.requests for b in user if b.version is v)
        for v in (Version.STABLE, Version.CANDIDATE)
    }
    expected_candidate = sum(v == "candidate" for v in versions.values())
    extra = 3 if versions["b0"] == "candidate" else 0
    assert by_version[Version.CANDIDATE] == expected_candidate + extra
    b0 = Version(versions["b0"])
    assert sum(b.errors for b in user if b.version is b0) == 2
    assert sum(b.client_errors for b in user if b.version is b0) == 1
    testers = [b for b in found if b.traffic_class is TrafficClass.TESTER]
    assert sum(b.requests for b in testers) == 1
    assert all(b.version is Version.CANDIDATE for b in testers)
    candidate = next(b for b in user if b.version is Version.CANDIDATE)
    assert candidate.configured_share == pytest.approx(0.5)
    assert candidate.users == 0 and candidate.new_users is None and candidate.samples == ()


async def test_an_unreachable_runtime_api_is_a_driver_error(short_dir: Path) -> None:
    plan = haproxy_plan(short_dir, ["127.0.0.1:9001"], ["127.0.0.1:9002"], 8080, short_dir / "t")
    driver = HAProxyDriver(plan, environ=ENVIRON)
    with pytest.raises(DriverError, match=r"cannot reach HAProxy's runtime API at .*admin\.sock"):
        await driver.apply(Traffic(5))


def test_show_stat_csv_is_read_by_server() -> None:
    text = (
        "# pxname,svname,weight,req_tot,hrsp_4xx,hrsp_5xx,econ,eresp,status\n"
        "shop,stable-1,256,10,1,2,0,0,UP\nshop,candidate-1,13,3,0,1,1,,UP\n"
        "shop,BACKEND,269,13,1,3,1,0,UP\nshop_in,FRONTEND,,13,1,3,,,OPEN\n"
    )
    servers = parse_stat(text)
    assert set(servers) == {("shop", "stable-1"), ("shop", "candidate-1")}
    candidate = servers[("shop", "candidate-1")]
    assert (candidate.req_tot, candidate.hrsp_5xx, candidate.econ, candidate.eresp) == (3, 1, 1, 0)
    assert candidate.weight == 13


@given(
    st.integers(1, 99_999).map(lambda u: u / 1000),
    st.integers(1, 99_999).map(lambda u: u / 1000),
    st.integers(1, 4),
    st.integers(1, 4),
)
def test_raising_the_weight_never_lowers_the_candidate_nor_raises_stable(
    a: float, b: float, stable: int, candidate: int
) -> None:
    low, high = sorted((a, b))
    s_low, c_low = server_weights(low, stable, candidate)
    s_high, c_high = server_weights(high, stable, candidate)
    assert c_low <= c_high and s_low >= s_high
    for s, c in ((s_low, c_low), (s_high, c_high)):
        assert 1 <= s <= MAX_WEIGHT and 1 <= c <= MAX_WEIGHT
        assert MAX_WEIGHT in (s, c)
    share = c_low * candidate / (c_low * candidate + s_low * stable)
    ratio = max(stable / candidate, candidate / stable)  # rounding one side's weight by 1/2
    assert abs(share - low / 100) <= 0.6 * ratio / MAX_WEIGHT or 1 in (c_low, s_low)
    assert server_weights(0, stable, candidate) == (MAX_WEIGHT, 0)
    assert server_weights(100, stable, candidate) == (0, MAX_WEIGHT)


def test_the_configuration_renders_every_address_once() -> None:
    plan = parse_plan(
        "service: shop\nstable: {addresses: ['10.0.0.1:80', '10.0.0.2:80']}\n"
        "candidate: {addresses: ['10.0.0.3:80']}\ndriver: haproxy\nsteps: [{kind: promote}]\n"
        "haproxy: {socket: /run/h.sock, backend: web}\n"
    )
    text = render_config(plan)
    assert "backend web\n" in text and "backend web_candidate\n" in text
    assert "acl stageless_tester" not in text  # no testers configured: no ACL file needed
    assert text.count("10.0.0.3:80") == 2 and text.count("10.0.0.1:80") == 1
