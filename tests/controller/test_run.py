"""One rollout's run (``stageless.controller.run``) against a real control plane (uvicorn on
loopback) and a scripted driver: plans walked through shadow, testers, canary and promote; a bad
candidate rolled back by the judge; people's pause, resume, promote and abort; driver failures;
webhook checks; notifications signed and delivered to a real receiver."""

from __future__ import annotations

import json
import time
from pathlib import Path

from stageless.controller import SIGNATURE_HEADER, verify_signature
from stageless.rollout.commands import Traffic
from stageless.store import AuditAction, open_store, rollout_target, sqlite_url
from tests.controller.plans import SHADOW, TESTERS, canary, plan
from tests.controller.support import (
    WEBHOOK_SECRET,
    Drivers,
    Receiver,
    Scenario,
    control_plane,
)


def test_a_good_candidate_walks_from_shadow_to_promoted_with_signed_webhooks(
    tmp_path: Path,
) -> None:
    drivers = Drivers()
    with (
        Receiver() as hooks,
        control_plane(tmp_path, drivers) as cp,
        cp.client("write") as client,
    ):
        started = client.start_rollout(plan(SHADOW, TESTERS, canary(50), webhooks=hooks.url))
        assert (started.phase, started.service) == ("PENDING", "shop")
        testing = cp.wait_until(started.id, lambda i: i.phase == "TESTING")
        assert testing.raw["shadow"] is None  # the shadow step's evidence is in its history
        assert testing.traffic == {"weight": 0.0, "testers": True, "shadow": 0.0}
        client.request_rollout(started.id, "approve")
        done = cp.wait_until(started.id, lambda i: i.finished)
        assert done.phase == "PROMOTED", done.reason
        history = client.rollout_history(started.id)
        deliveries = hooks.wait_for(5)
    driver = drivers.last
    assert driver.applied == [
        Traffic(0.0, False, 10.0),  # shadow
        Traffic(0.0, True, 0.0),  # testers
        Traffic(50.0, True, 0.0),  # canary
        Traffic(100.0, True, 0.0),  # promote
    ]
    assert (driver.promoted, driver.closed) == (1, 1)
    moves = [(t.from_phase, t.to_phase) for t in history if t.from_phase != t.to_phase]
    assert moves == [
        ("PENDING", "SHADOWING"),
        ("SHADOWING", "TESTING"),
        ("TESTING", "CANARY"),
        ("CANARY", "PROMOTING"),
        ("PROMOTING", "PROMOTED"),
    ]
    shadow = [t for t in history if t.event["type"] == "DiffReported"]
    assert shadow[-1].event["summary"]["compared"] >= 50
    assert shadow[-1].to_phase == "TESTING"
    assert "(shadow 10%) passed: " in shadow[-1].reason
    approval = next(t for t in history if t.event["type"] == "ApprovalGiven")
    assert approval.actor.startswith("write-")
    verdict = next(t for t in history if t.event["type"] == "JudgeReported")
    assert verdict.event["verdict"] == "PASS"
    assert verdict.from_phase == "CANARY"
    bodies = []
    for delivery in deliveries:
        signature = delivery.headers[SIGNATURE_HEADER]
        assert verify_signature(WEBHOOK_SECRET, signature, delivery.body)
        assert not verify_signature(WEBHOOK_SECRET, signature, delivery.body + b" ")
        assert delivery.headers["X-Stageless-Event"] == "rollout.transition"
        bodies.append(delivery.json())
    assert {(b["from"], b["to"]) for b in bodies} == set(moves)
    assert all(b["rollout"] == started.id and b["service"] == "shop" for b in bodies)


def test_a_bad_candidate_is_rolled_back_by_the_judge(tmp_path: Path) -> None:
    drivers = Drivers(Scenario(error_ratio=4.0))
    with control_plane(tmp_path, drivers) as cp, cp.client() as client:
        started = client.start_rollout(plan(canary(20, min_s=30)))
        done = cp.wait_until(started.id, lambda i: i.finished)
        history = client.rollout_history(started.id)
        audit = cp.store.list_audit(target=rollout_target(started.id))
    assert done.phase == "ROLLED_BACK"
    assert "the judge says FAIL" in done.reason
    assert done.step_description == "canary 20%"
    assert done.evidence > 0
    assert done.decision is not None
    assert done.decision["verdict"] == "FAIL"
    driver = drivers.last
    assert driver.applied == [Traffic(20.0, False, 0.0), Traffic()]  # weight 0 in one move
    assert driver.promoted == 0
    moves = [(t.from_phase, t.to_phase) for t in history if t.from_phase != t.to_phase]
    assert moves == [
        ("PENDING", "CANARY"),
        ("CANARY", "ROLLING_BACK"),
        ("ROLLING_BACK", "ROLLED_BACK"),
    ]
    rollback = next(t for t in history if t.to_phase == "ROLLING_BACK")
    assert [c["type"] for c in rollback.commands] == ["RollBack", "StopJudge", "Notify"]
    actions = [e.action for e in audit]
    assert actions.count(AuditAction.ROLLOUT_TRANSITION) == 3
    assert actions[0] is AuditAction.ROLLOUT_CREATE


def test_pause_resume_and_abort_through_the_api(tmp_path: Path) -> None:
    drivers = Drivers()
    with control_plane(tmp_path, drivers) as cp, cp.client("write") as client:
        started = client.start_rollout(plan(canary(5, min_s=30)))
        cp.wait_until(started.id, lambda i: i.phase == "CANARY")
        client.request_rollout(started.id, "pause", message="looking at a dashboard")
        paused = cp.wait_until(started.id, lambda i: i.phase == "PAUSED")
        assert "pause requested by write-" in paused.reason
        assert paused.traffic["weight"] == 5.0  # a pause holds the weights
        client.request_rollout(started.id, "resume")
        cp.wait_until(started.id, lambda i: i.phase == "CANARY")
        client.request_rollout(started.id, "abort", message="wrong build")
        done = cp.wait_until(started.id, lambda i: i.finished)
        history = client.rollout_history(started.id)
    assert done.phase == "ABORTED"
    assert "wrong build" in done.reason
    assert drivers.last.applied == [Traffic(5.0, False, 0.0), Traffic()]
    abort = next(t for t in history if t.event["type"] == "AbortRequested")
    assert abort.event["reason"] == "wrong build"


def test_promote_skips_the_remaining_gates(tmp_path: Path) -> None:
    drivers = Drivers()
    long_shadow = "{kind: shadow, share: 5, until: {compared: 1000000, duration_s: 600}}"
    with control_plane(tmp_path, drivers) as cp, cp.client() as client:
        started = client.start_rollout(plan(long_shadow, TESTERS, canary(5)))
        cp.wait_until(started.id, lambda i: i.phase == "SHADOWING")
        client.request_rollout(started.id, "promote")
        done = cp.wait_until(started.id, lambda i: i.finished)
    assert done.phase == "PROMOTED"
    assert drivers.last.applied == [Traffic(0.0, False, 5.0), Traffic(100.0, False, 0.0)]
    assert drivers.last.promoted == 1


def test_a_driver_failure_pauses_and_a_resume_sends_the_traffic_again(tmp_path: Path) -> None:
    drivers = Drivers(fail_applies=1)
    with control_plane(tmp_path, drivers) as cp, cp.client() as client:
        started = client.start_rollout(plan(canary(10, min_s=30)))
        paused = cp.wait_until(started.id, lambda i: i.phase == "PAUSED")
        assert "the driver failed: the data plane refused the change" in paused.reason
        client.request_rollout(started.id, "resume")
        cp.wait_until(started.id, lambda i: i.phase == "CANARY")
        assert drivers.last.applied == [Traffic(10.0, False, 0.0)]  # the resent weight
        client.request_rollout(started.id, "abort")
        cp.wait_until(started.id, lambda i: i.finished)


def test_a_webhook_check_decides_a_testers_step(tmp_path: Path) -> None:
    answers = [(503, None), (200, {"result": "pass", "detail": "smoke tests green"})]
    with (
        Receiver(answers) as check,
        control_plane(tmp_path, Drivers()) as cp,
        cp.client() as client,
    ):
        step = (
            "{kind: testers, approval: webhook, "
            f"webhook: {{url: '{check.url}/check', timeout_s: 10}}}}"
        )
        started = client.start_rollout(plan(step, canary(5, min_s=30)))
        canary_info = cp.wait_until(started.id, lambda i: i.phase == "CANARY")
        assert "the webhook check passed: smoke tests green" in canary_info.reason
        asked = check.wait_for(2)
        client.request_rollout(started.id, "abort")
        cp.wait_until(started.id, lambda i: i.finished)
    body = asked[1].json()
    assert (body["rollout"], body["service"], body["step"]) == (started.id, "shop", 0)
    assert body["candidate"] == ["127.0.0.1:9002"]
    assert verify_signature(WEBHOOK_SECRET, asked[1].headers[SIGNATURE_HEADER], asked[1].body)
    assert asked[0].headers["X-Stageless-Delivery"] == asked[1].headers["X-Stageless-Delivery"]


def test_a_failed_webhook_check_rolls_back(tmp_path: Path) -> None:
    answers = [(200, {"result": "fail", "detail": "checkout broken"})]
    drivers = Drivers()
    with Receiver(answers) as check, control_plane(tmp_path, drivers) as cp, cp.client() as client:
        step = f"{{kind: testers, approval: webhook, webhook: {{url: '{check.url}'}}}}"
        started = client.start_rollout(plan(step, canary(5)))
        done = cp.wait_until(started.id, lambda i: i.finished)
    assert done.phase == "ROLLED_BACK"
    assert "the webhook check failed: checkout broken" in done.reason
    assert drivers.last.applied == [Traffic(0.0, True, 0.0), Traffic()]


def test_history_and_state_are_plain_json(tmp_path: Path) -> None:
    with control_plane(tmp_path, Drivers()) as cp, cp.client() as client:
        started = client.start_rollout(plan(canary(5, min_s=30)))
        info = cp.wait_until(started.id, lambda i: i.evidence > 0)
        client.request_rollout(started.id, "abort")
        cp.wait_until(started.id, lambda i: i.finished)
        history = client.rollout_history(started.id)
    assert info.decision is not None
    assert info.decision["verdict"] in ("CONTINUE", "PASS")
    assert info.raw["step"]["kind"] == "canary"
    json.dumps([t.event for t in history] + [list(t.commands) for t in history])


def test_a_rollout_whose_driver_cannot_be_made_ends_before_it_starts(tmp_path: Path) -> None:
    drivers = Drivers(fail_make=1)
    with control_plane(tmp_path, drivers) as cp, cp.client() as client:
        started = client.start_rollout(plan(canary(5)))
        done = cp.wait_until(started.id, lambda i: i.finished)
    assert done.phase == "ABORTED"
    assert "no driver for 'builtin': no data plane for shop (scripted)" in done.reason
    assert drivers.made == []


def test_a_rollout_under_way_waits_for_its_driver_and_goes_on(tmp_path: Path) -> None:
    # The candidate is better than stable, so that no judge's verdict (however much batch time
    # passes while the test waits) can end the step before the abort does: a FAIL is out of
    # reach, and a PASS waits for the step's minimum of a minute.
    better = Scenario(error_ratio=0.5, slowdown=0.8)
    store = open_store(sqlite_url(tmp_path / "shared"), poll_interval=0.05)
    try:
        with (
            control_plane(tmp_path / "a", Drivers(better), store=store) as first,
            first.client() as c,
        ):
            started = c.start_rollout(plan(canary(5, min_s=60)))
            first.wait_until(started.id, lambda i: i.phase == "CANARY")
        later = Drivers(better, fail_make=3)
        with control_plane(tmp_path / "b", later, store=store) as second:
            deadline = time.monotonic() + 10
            while not later.made:
                assert time.monotonic() < deadline, "the rollout was never run again"
                time.sleep(0.02)
            assert later.refused == 3  # tried again (with growing pauses) until it could
            info = second.wait_until(started.id, lambda i: i.raw["lease"]["owner"] is not None)
            assert info.phase == "CANARY"  # the failures changed nothing
            assert later.last.applied == [Traffic(5.0, False, 0.0)]
            with second.client() as client:
                client.request_rollout(started.id, "abort")
            assert second.wait_until(started.id, lambda i: i.finished).phase == "ABORTED"
    finally:
        store.close()
