"""The runner's Controller (``stageless.controller.runner``) against real control planes
(uvicorn on loopback) sharing one store: one instance runs a rollout, another takes it over when
the first stops (leases)."""

from __future__ import annotations

import time
from pathlib import Path

from stageless.rollout.commands import Traffic
from stageless.store import open_store, sqlite_url
from tests.controller.plans import canary, plan
from tests.controller.support import (
    Drivers,
    control_plane,
)


def test_one_instance_runs_a_rollout_and_another_takes_over_when_it_stops(tmp_path: Path) -> None:
    first_drivers, second_drivers = Drivers(), Drivers()
    shared = open_store(sqlite_url(tmp_path / "shared"), poll_interval=0.05)
    second_store = open_store(sqlite_url(tmp_path / "shared"), poll_interval=0.05)
    try:
        with control_plane(tmp_path / "a", first_drivers, store=shared) as first:
            with control_plane(tmp_path / "b", second_drivers, store=second_store):
                with first.client() as client:
                    started = client.start_rollout(plan(canary(5, min_s=60)))
                first.wait_until(started.id, lambda i: i.phase == "CANARY")
                time.sleep(0.5)  # both instances polled several times meanwhile
                owners = {len(first_drivers.made), len(second_drivers.made)}
                assert owners == {0, 1}, "exactly one instance runs the rollout"
                runner, other = (
                    (first_drivers, second_drivers)
                    if first_drivers.made
                    else (second_drivers, first_drivers)
                )
                holder = first.store.get_rollout(started.id).lease_owner
                assert holder is not None
            if runner is second_drivers:  # the runner stopped (its lease released)
                # The driver is made before the traffic is applied to it: wait for both.
                first.wait_until(
                    started.id, lambda i: bool(first_drivers.made and first_drivers.last.applied)
                )
                assert first_drivers.last.applied == [Traffic(5.0, False, 0.0)]  # re-applied
        with control_plane(tmp_path / "c", Drivers(), store=second_store) as last:
            if runner is first_drivers:
                deadline = time.monotonic() + 10
                while not last.drivers.made:
                    assert time.monotonic() < deadline, "nobody took the rollout over"
                    time.sleep(0.02)
            with last.client() as client:
                client.request_rollout(started.id, "abort")
            last.wait_until(started.id, lambda i: i.finished)
        assert other is not runner
    finally:
        shared.close()
        second_store.close()
