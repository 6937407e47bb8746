"""Rollout use cases over a real store: a plan validated before anything is stored, requests
recorded for the runner, approvals only where a step waits for one, transitions and evidence
recorded by the lease holder and read back."""

from __future__ import annotations

import json

import pytest
import yaml

from stageless.analysis import JudgeConfig, SequentialJudge
from stageless.analysis.verdict import Verdict
from stageless.errors import ConflictError, NotFoundError, ValidationError
from stageless.rollout.events import ApprovalGiven, StartRequested
from stageless.rollout.machine import transition
from stageless.rollout.phases import Phase
from stageless.service import Service
from stageless.store import AuditAction, LeaseLostError, RolloutAction, rollout_target
from tests.analysis.factories import batch
from tests.rollout.factories import TESTERS, canary, document

PLAN = yaml.safe_dump(document(TESTERS, canary(5)))


def test_a_plan_starts_a_pending_rollout(service: Service) -> None:
    view = service.rollouts.start(PLAN, actor="ci")
    assert view.record.id.startswith("checkout-")
    assert (view.state.phase, view.plan.service, view.evidence, view.judge) == (
        Phase.PENDING,
        "checkout",
        0,
        None,
    )
    again = service.rollouts.get(view.record.id)
    assert (again.state, again.plan, again.record) == (view.state, view.plan, view.record)
    assert [v.record.id for v in service.rollouts.list_all()] == [view.record.id]
    (entry,) = service.audit.entries(target=rollout_target(view.record.id))
    assert (entry.action, entry.actor) == (AuditAction.ROLLOUT_CREATE, "ci")


def test_an_invalid_plan_names_every_path_and_stores_nothing(service: Service) -> None:
    bad = document(canary(140))
    bad["colour"] = "red"
    with pytest.raises(ValidationError) as caught:
        service.rollouts.start(json.dumps(bad), actor="ci")
    paths = {issue.path for issue in caught.value.issues}
    assert {"steps[0].weight", "colour"} <= paths
    assert service.rollouts.list_all() == []


def test_a_second_rollout_of_a_running_service_is_a_conflict(service: Service) -> None:
    first = service.rollouts.start(PLAN, actor="ci")
    with pytest.raises(ConflictError, match=first.record.id):
        service.rollouts.start(PLAN, actor="ci")


def test_requests_are_recorded_and_approvals_need_a_manual_gate(service: Service) -> None:
    view = service.rollouts.start(PLAN, actor="ci")
    rollout = view.record.id
    pause = service.rollouts.request(rollout, "pause", actor="alice", reason="lunch")
    assert (pause.action, pause.reason) == (RolloutAction.PAUSE, "lunch")
    with pytest.raises(ConflictError, match="is not waiting for an approval"):
        service.rollouts.request(rollout, RolloutAction.APPROVE, actor="alice")  # PENDING
    assert service.rollouts.acquire(rollout, "me", ttl_s=30)
    state, commands = transition(view.state, StartRequested("ci"), 1000.0)
    assert state.phase is Phase.TESTING
    service.rollouts.save_transition(
        rollout, view.state, state, StartRequested("ci"), commands, owner="me", actor="ci"
    )
    approval = service.rollouts.request(rollout, RolloutAction.APPROVE, actor="alice")
    assert approval.step == 0
    assert [r.id for r in service.rollouts.pending(rollout)] == [pause.id, approval.id]
    after, more = transition(state, ApprovalGiven(0, "alice"), 1001.0)
    assert after.phase is Phase.CANARY
    service.rollouts.save_transition(
        rollout,
        state,
        after,
        ApprovalGiven(0, "alice"),
        more,
        owner="me",
        actor="alice",
        handled=(approval.id,),
    )
    assert [r.id for r in service.rollouts.pending(rollout)] == [pause.id]
    with pytest.raises(ConflictError, match="is not waiting for an approval"):
        service.rollouts.request(rollout, RolloutAction.APPROVE, actor="alice")  # a canary
    with pytest.raises(NotFoundError):
        service.rollouts.request("nope", RolloutAction.ABORT, actor="alice")


def test_history_and_evidence_are_read_back(service: Service) -> None:
    view = service.rollouts.start(PLAN, actor="ci")
    rollout = view.record.id
    with pytest.raises(LeaseLostError):
        service.rollouts.save_evidence(rollout, 0, [batch()], None, owner="me")
    assert service.rollouts.acquire(rollout, "me", ttl_s=30)
    state, commands = transition(view.state, StartRequested("ci"), 1000.0)
    service.rollouts.save_transition(
        rollout, view.state, state, StartRequested("ci"), commands, owner="me", actor="ci"
    )
    (entry,) = service.rollouts.history(rollout)
    assert (entry.from_phase, entry.to_phase, entry.actor) == ("PENDING", "TESTING", "ci")
    assert json.loads(entry.event) == {"type": "StartRequested", "by": "ci"}
    assert [c["type"] for c in json.loads(entry.commands)] == ["EnableTesters", "Notify"]
    batches = [batch(ts=1.0), batch(ts=2.0, errors=3)]
    judge = SequentialJudge(JudgeConfig())
    judge.observe_many(batches)
    assert service.rollouts.save_evidence(rollout, 0, batches, judge.decision(), owner="me") == 2
    assert service.rollouts.evidence(rollout, 0) == batches
    shown = service.rollouts.get(rollout)
    assert shown.evidence == 2
    assert shown.judge is not None
    assert (shown.judge["step"], shown.judge["verdict"]) == (0, str(Verdict.CONTINUE))
