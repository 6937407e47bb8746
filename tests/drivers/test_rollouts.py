"""Plans run end to end through the HAProxy and nginx drivers: a real control plane (uvicorn,
its rollout runner and the sequential judge) steers a real HAProxy or nginx on loopback while a
client loop of GETs plays the users. Both versions answer 500 to 4 % of requests (a baseline the
errors test compares against). A good candidate is promoted on the judge's PASS with no request
lost by the data plane; a candidate that answers 500 to everything is rolled back by the judge's
FAIL, and afterwards users get stable only. The judge looks at errors only (HAProxy's statistics
carry no latency and no users)."""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from stageless.drivers.base import Driver
from stageless.drivers.haproxy import HAProxyDriver
from stageless.drivers.haproxy import write_config as write_haproxy_config
from stageless.drivers.nginx import NginxDriver, NginxLayout
from stageless.drivers.nginx import write_config as write_nginx_config
from stageless.rollout.plan import RolloutPlan, parse_plan
from tests.controller.support import Drivers, control_plane
from tests.drivers.dataplane import Load, load, program, running, upstreams, user_answers
from tests.ports import free_port

STEPS = """\
judges: {default: {metrics: [errors], srm: false, min_canary_requests: 100, warmup_s: 0}}
steps:
  - {kind: canary, weight: 50, min_duration_s: 1, max_duration_s: 15, on_timeout: rollback}
  - {kind: promote}
"""
BASELINE_FAIL_EVERY = 25
"""Both versions answer 500 to every 25th request (4 %): with no error at all on either side the
errors test has nothing to compare, and the judge could never say PASS."""


class RealDrivers(Drivers):
    """The controller's driver factory, making the real driver of each plan."""

    def __init__(self, make: Callable[[RolloutPlan], Driver]) -> None:
        super().__init__()
        self.make = make

    def __call__(self, plan: RolloutPlan) -> Driver:
        return self.make(plan)


@contextlib.contextmanager
def haproxy_in_front(directory: Path, failing: bool) -> Iterator[tuple[str, int, RealDrivers]]:
    with upstreams(failing=failing) as (stable, candidate):
        stable.fail_every = candidate.fail_every = BASELINE_FAIL_EVERY
        port = free_port()
        text = (
            f"service: shop\nstable: {{addresses: ['{stable.address}']}}\n"
            f"candidate: {{addresses: ['{candidate.address}']}}\ndriver: haproxy\n"
            f"haproxy: {{socket: {directory}/admin.sock, listen: '127.0.0.1:{port}', "
            f"interval_s: 1}}\n{STEPS}"
        )
        config = write_haproxy_config(parse_plan(text), directory / "haproxy.cfg")
        with running([program("haproxy"), "-db", "-f", str(config)], port):
            yield text, port, RealDrivers(HAProxyDriver)


@contextlib.contextmanager
def nginx_in_front(directory: Path, failing: bool) -> Iterator[tuple[str, int, RealDrivers]]:
    with upstreams(failing=failing) as (stable, candidate):
        stable.fail_every = candidate.fail_every = BASELINE_FAIL_EVERY
        port = free_port()
        text = (
            f"service: shop\nstable: {{addresses: ['{stable.address}']}}\n"
            f"candidate: {{addresses: ['{candidate.address}']}}\ndriver: nginx\n"
            f"nginx: {{config: {directory}/shop.conf, nginx: {program('nginx')}, "
            f"listen: '127.0.0.1:{port}', worker_processes: 1, interval_s: 1}}\n{STEPS}"
        )
        plan = parse_plan(text)
        config = write_nginx_config(plan)
        layout = NginxLayout.of(plan.nginx)  # type: ignore[arg-type]
        command = [program("nginx"), "-e", str(layout.error_log), "-c", str(config)]
        with running([*command, "-g", "daemon off;"], port, layout.error_log):
            yield text, port, RealDrivers(NginxDriver)


DATA_PLANES = {"haproxy": haproxy_in_front, "nginx": nginx_in_front}


@pytest.fixture
def directory() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="ro", dir="/tmp") as name:
        yield Path(name)


def transport_failures(loops: list[Load]) -> list[str]:
    return [f for loop in loops for f in loop.failures if not f.startswith("HTTP 500")]


@pytest.mark.parametrize("data_plane", sorted(DATA_PLANES))
def test_a_good_candidate_is_promoted_on_the_judges_pass_with_no_lost_request(
    data_plane: str, directory: Path
) -> None:
    with (
        DATA_PLANES[data_plane](directory, failing=False) as (text, port, drivers),
        control_plane(directory / "cp", drivers) as cp,
        cp.client() as client,
        load(port, clients=2, users=200) as loops,
    ):
        started = client.start_rollout(text)
        done = cp.wait_until(started.id, lambda i: i.finished, timeout=30)
        history = client.rollout_history(started.id)
        time.sleep(0.3)
        after = user_answers(port, [f"late-{i}" for i in range(50)])
    assert done.phase == "PROMOTED", done.raw
    passed = next(t for t in history if t.to_phase == "PROMOTING")
    assert "the judge says PASS" in passed.reason, passed.reason
    assert transport_failures(loops) == []  # no request lost while the weights moved
    errors = sum(f.startswith("HTTP 500") for loop in loops for f in loop.failures)
    assert errors <= 1.5 * sum(loop.requests for loop in loops) / BASELINE_FAIL_EVERY
    assert sum(loop.answers["candidate"] for loop in loops) > 50
    assert set(after.values()) == {"candidate"}


@pytest.mark.parametrize("data_plane", sorted(DATA_PLANES))
def test_a_failing_candidate_is_rolled_back_by_the_judge(data_plane: str, directory: Path) -> None:
    with (
        DATA_PLANES[data_plane](directory, failing=True) as (text, port, drivers),
        control_plane(directory / "cp", drivers) as cp,
        cp.client() as client,
        load(port, clients=2, users=200) as loops,
    ):
        started = client.start_rollout(text)
        done = cp.wait_until(started.id, lambda i: i.finished, timeout=30)
        time.sleep(0.3)
        after = user_answers(port, [f"late-{i}" for i in range(50)])
    assert done.phase == "ROLLED_BACK", done.raw
    assert "the judge says FAIL" in done.reason
    assert transport_failures(loops) == []  # 500s only: the regression and the baseline
    assert set(after.values()) == {"stable"}
