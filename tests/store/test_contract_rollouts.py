"""The store contract for rollouts and proxy reports, against every backend: one unfinished
rollout per service, requests recorded and handled, leases taken by one owner at a time,
transitions and evidence written only by the lease holder, history, audit, retention."""

from __future__ import annotations

import json

import pytest

from stageless.clock import FakeClock
from stageless.errors import ConflictError, NotFoundError, ValidationError
from stageless.store import (
    AuditAction,
    LeaseLostError,
    NewRollout,
    RolloutAction,
    SqlStore,
    TransitionWrite,
    rollout_target,
)
from tests.store.conftest import Database
from tests.store.support import race

PLAN = "service: shop\nsteps: [{kind: promote}]\n"


def new(rollout_id: str = "shop-1", service: str = "shop") -> NewRollout:
    return NewRollout(rollout_id, service, PLAN, '{"phase": "PENDING"}', "PENDING")


def write(phase: str, step: int = 0, **changes: object) -> TransitionWrite:
    values: dict[str, object] = {
        "state": json.dumps({"phase": phase, "step": step}),
        "phase": phase,
        "step": step,
        "event": '{"type": "Tick"}',
        "commands": "[]",
        "reason": f"now {phase}",
        "actor": "controller",
    }
    values.update(changes)
    return TransitionWrite(**values)  # type: ignore[arg-type]


def test_a_rollout_is_created_read_listed_and_audited(store: SqlStore, clock: FakeClock) -> None:
    created = store.create_rollout(new(), actor="alice")
    assert (created.id, created.service, created.plan, created.phase, created.step) == (
        "shop-1",
        "shop",
        PLAN,
        "PENDING",
        0,
    )
    assert (created.seq, created.judge, created.created_by, created.finished) == (
        0,
        None,
        "alice",
        False,
    )
    assert store.get_rollout("shop-1") == created
    clock.advance(1)
    store.create_rollout(new("web-1", "web"), actor="bob")
    assert [r.id for r in store.list_rollouts()] == ["web-1", "shop-1"]  # newest first
    assert [r.id for r in store.list_rollouts(limit=1)] == ["web-1"]
    assert [r.id for r in store.list_rollouts(unfinished=False)] == []
    (entry,) = store.list_audit(target=rollout_target("shop-1"))
    assert (entry.action, entry.actor) == (AuditAction.ROLLOUT_CREATE, "alice")
    assert entry.after is not None
    assert json.loads(entry.after)["plan"] == PLAN
    with pytest.raises(NotFoundError, match="rollout 'nope' not found"):
        store.get_rollout("nope")
    with pytest.raises(ValidationError, match="id"):
        store.create_rollout(new("bad id!"), actor="alice")


def test_a_service_has_one_unfinished_rollout_at_a_time(store: SqlStore) -> None:
    store.create_rollout(new(), actor="alice")
    with pytest.raises(
        ConflictError, match=r"service 'shop' already has a rollout running \(shop-1\)"
    ):
        store.create_rollout(new("shop-2"), actor="bob")
    with pytest.raises(ConflictError):
        store.create_rollout(new("shop-1", "other"), actor="bob")  # the same id
    assert store.acquire_rollout_lease("shop-1", "a", ttl_s=10)
    store.record_rollout_transition("shop-1", write("ABORTED", finished=True), owner="a")
    second = store.create_rollout(new("shop-2"), actor="bob")
    assert [r.id for r in store.list_rollouts(unfinished=True)] == [second.id]
    assert [r.id for r in store.list_rollouts(unfinished=False)] == ["shop-1"]


def test_concurrent_starts_for_one_service_let_exactly_one_win(shared_store: SqlStore) -> None:
    results = race(5, lambda i: shared_store.create_rollout(new(f"shop-{i}"), actor="ci"))
    winners = [r for r in results if not isinstance(r, Exception)]
    assert len(winners) == 1, results
    assert all(isinstance(r, ConflictError) for r in results if r not in winners), results


def test_requests_are_recorded_audited_and_handled_by_a_transition(store: SqlStore) -> None:
    store.create_rollout(new(), actor="alice")
    pause = store.add_rollout_request("shop-1", RolloutAction.PAUSE, actor="bob", reason="lunch")
    approve = store.add_rollout_request("shop-1", RolloutAction.APPROVE, actor="carol", step=1)
    assert (pause.action, pause.actor, pause.reason, pause.step, pause.handled_at) == (
        RolloutAction.PAUSE,
        "bob",
        "lunch",
        None,
        None,
    )
    assert approve.id > pause.id
    assert store.pending_rollout_requests("shop-1") == [pause, approve]
    actions = [e.action for e in store.list_audit(target=rollout_target("shop-1"))]
    assert actions == [
        AuditAction.ROLLOUT_CREATE,
        AuditAction.ROLLOUT_PAUSE,
        AuditAction.ROLLOUT_APPROVE,
    ]
    assert store.acquire_rollout_lease("shop-1", "a", ttl_s=10)
    store.record_rollout_transition("shop-1", write("PAUSED", handled=(pause.id,)), owner="a")
    assert store.pending_rollout_requests("shop-1") == [approve]
    with pytest.raises(NotFoundError):
        store.add_rollout_request("nope", RolloutAction.ABORT, actor="bob")


def test_a_finished_rollout_takes_no_requests(store: SqlStore) -> None:
    store.create_rollout(new(), actor="alice")
    assert store.acquire_rollout_lease("shop-1", "a", ttl_s=10)
    store.record_rollout_transition("shop-1", write("PROMOTED", finished=True), owner="a")
    with pytest.raises(ConflictError, match=r"rollout 'shop-1' has finished \(PROMOTED\)"):
        store.add_rollout_request("shop-1", RolloutAction.ABORT, actor="bob")


def test_a_lease_has_one_owner_until_it_expires(store: SqlStore, clock: FakeClock) -> None:
    store.create_rollout(new(), actor="alice")
    assert store.acquire_rollout_lease("shop-1", "a", ttl_s=10)
    assert not store.acquire_rollout_lease("shop-1", "b", ttl_s=10)
    clock.advance(5)
    assert store.acquire_rollout_lease("shop-1", "a", ttl_s=10)  # renewed until t+15
    clock.advance(9)
    assert not store.acquire_rollout_lease("shop-1", "b", ttl_s=10)
    record = store.get_rollout("shop-1")
    assert (record.lease_owner, record.lease_expires) == ("a", clock.now() + 1)
    clock.advance(2)
    assert store.acquire_rollout_lease("shop-1", "b", ttl_s=10)  # a's lease expired
    with pytest.raises(LeaseLostError, match="not leased to 'a' \\(held by 'b'\\)"):
        store.record_rollout_transition("shop-1", write("CANARY"), owner="a")
    with pytest.raises(LeaseLostError):
        store.add_rollout_evidence("shop-1", 0, ["{}"], judge=None, owner="a")
    store.release_rollout_lease("shop-1", "a")  # not a's: changes nothing
    assert store.get_rollout("shop-1").lease_owner == "b"
    store.release_rollout_lease("shop-1", "b")
    assert store.get_rollout("shop-1").lease_owner is None
    assert store.acquire_rollout_lease("shop-1", "a", ttl_s=10)
    with pytest.raises(NotFoundError):
        store.record_rollout_transition("nope", write("CANARY"), owner="a")
    assert not store.acquire_rollout_lease("nope", "a", ttl_s=10)


def test_owners_racing_for_a_lease_get_it_once(shared_store: SqlStore) -> None:
    shared_store.create_rollout(new(), actor="alice")
    results = race(5, lambda i: shared_store.acquire_rollout_lease("shop-1", f"o{i}", ttl_s=30))
    assert results.count(True) == 1, results


def test_transitions_are_numbered_kept_in_order_and_audited_when_asked(
    store: SqlStore, clock: FakeClock
) -> None:
    store.create_rollout(new(), actor="alice")
    assert store.acquire_rollout_lease("shop-1", "a", ttl_s=10)
    clock.advance(1)
    first = store.record_rollout_transition("shop-1", write("SHADOWING"), owner="a")
    clock.advance(1)
    store.record_rollout_transition("shop-1", write("SHADOWING", audit=False), owner="a")
    last = store.record_rollout_transition("shop-1", write("CANARY", step=1), owner="a")
    assert (first.seq, first.phase, first.updated_at) == (1, "SHADOWING", clock.now() - 1)
    assert (last.seq, last.phase, last.step) == (3, "CANARY", 1)
    assert store.get_rollout("shop-1") == last
    history = store.list_rollout_transitions("shop-1")
    assert [(t.seq, t.from_phase, t.to_phase, t.step) for t in history] == [
        (1, "PENDING", "SHADOWING", 0),
        (2, "SHADOWING", "SHADOWING", 0),
        (3, "SHADOWING", "CANARY", 1),
    ]
    assert (history[0].event, history[0].commands, history[0].reason, history[0].actor) == (
        '{"type": "Tick"}',
        "[]",
        "now SHADOWING",
        "controller",
    )
    assert [t.seq for t in store.list_rollout_transitions("shop-1", after_seq=1, limit=1)] == [2]
    audited = [
        (e.action, json.loads(e.before or "null"), json.loads(e.after or "null"))
        for e in store.list_audit(target=rollout_target("shop-1"))
        if e.action is AuditAction.ROLLOUT_TRANSITION
    ]
    assert audited == [
        (
            AuditAction.ROLLOUT_TRANSITION,
            {"phase": "PENDING", "step": 0},
            {"phase": "SHADOWING", "reason": "now SHADOWING", "step": 0},
        ),
        (
            AuditAction.ROLLOUT_TRANSITION,
            {"phase": "SHADOWING", "step": 0},
            {"phase": "CANARY", "reason": "now CANARY", "step": 1},
        ),
    ]
    with pytest.raises(NotFoundError):
        store.list_rollout_transitions("nope")


def test_the_end_of_a_rollout_releases_its_lease(store: SqlStore, clock: FakeClock) -> None:
    store.create_rollout(new(), actor="alice")
    assert store.acquire_rollout_lease("shop-1", "a", ttl_s=10)
    ended = store.record_rollout_transition(
        "shop-1", write("ROLLED_BACK", finished=True), owner="a"
    )
    assert (ended.finished_at, ended.lease_owner, ended.lease_expires) == (clock.now(), None, None)
    assert not store.acquire_rollout_lease("shop-1", "a", ttl_s=10)


def test_evidence_is_kept_per_step_in_order_with_the_latest_decision(store: SqlStore) -> None:
    store.create_rollout(new(), actor="alice")
    assert store.acquire_rollout_lease("shop-1", "a", ttl_s=10)
    store.record_rollout_transition("shop-1", write("CANARY", step=2), owner="a")
    assert (
        store.add_rollout_evidence("shop-1", 2, ['{"n": 1}', '{"n": 2}'], judge=None, owner="a")
        == 2
    )
    decision = '{"verdict": "CONTINUE"}'
    assert store.add_rollout_evidence("shop-1", 2, ['{"n": 3}'], judge=decision, owner="a") == 3
    assert store.add_rollout_evidence("shop-1", 2, [], judge=decision, owner="a") == 3
    assert store.list_rollout_evidence("shop-1", 2) == ['{"n": 1}', '{"n": 2}', '{"n": 3}']
    assert store.count_rollout_evidence("shop-1", 2) == 3
    assert store.count_rollout_evidence("shop-1", 1) == 0
    assert store.get_rollout("shop-1").judge == decision
    store.record_rollout_transition("shop-1", write("CANARY", step=3), owner="a")
    assert store.get_rollout("shop-1").judge is None  # a new step has no decision yet
    assert store.list_rollout_evidence("shop-1", 2) == ['{"n": 1}', '{"n": 2}', '{"n": 3}']


def test_a_rollout_is_read_with_its_current_steps_evidence_count(store: SqlStore) -> None:
    store.create_rollout(new(), actor="alice")
    assert store.get_rollout_with_evidence("shop-1") == (store.get_rollout("shop-1"), 0)
    assert store.acquire_rollout_lease("shop-1", "a", ttl_s=10)
    store.record_rollout_transition("shop-1", write("CANARY", step=2), owner="a")
    store.add_rollout_evidence("shop-1", 2, ['{"n": 1}', '{"n": 2}'], judge="{}", owner="a")
    store.add_rollout_evidence("shop-1", 1, ['{"n": 0}'], judge=None, owner="a")  # another step
    record, evidence = store.get_rollout_with_evidence("shop-1")
    assert (record, evidence) == (store.get_rollout("shop-1"), 2)
    assert record.judge == "{}"
    assert store.list_rollouts_with_evidence() == [(record, 2)]
    assert store.list_rollouts_with_evidence(unfinished=False) == []
    store.record_rollout_transition("shop-1", write("CANARY", step=3), owner="a")
    assert store.get_rollout_with_evidence("shop-1")[1] == 0  # the new step's count
    with pytest.raises(NotFoundError):
        store.get_rollout_with_evidence("nope")


def test_acknowledged_rollout_writes_are_read_by_another_store(
    shared_store: SqlStore, shared_database: Database
) -> None:
    shared_store.create_rollout(new(), actor="alice")
    assert shared_store.acquire_rollout_lease("shop-1", "a", ttl_s=10)
    shared_store.record_rollout_transition("shop-1", write("CANARY", step=1), owner="a")
    shared_store.add_rollout_evidence("shop-1", 1, ['{"n": 1}'], judge="{}", owner="a")
    shared_store.add_proxy_report("edge", "[]", None, keep_s=60)
    with shared_database.open() as other:
        assert other.get_rollout("shop-1") == shared_store.get_rollout("shop-1")
        assert other.list_rollout_evidence("shop-1", 1) == ['{"n": 1}']
        assert len(other.list_proxy_reports("edge", since=0)) == 1


def test_proxy_reports_are_read_by_config_and_time_and_expire(
    store: SqlStore, clock: FakeClock
) -> None:
    start = clock.now()
    first = store.add_proxy_report("edge", '[{"n": 1}]', '{"endpoints": {}}', keep_s=100)
    clock.advance(10)
    second = store.add_proxy_report("edge", '[{"n": 2}]', None, keep_s=100)
    store.add_proxy_report("other", "[]", None, keep_s=100)
    assert (first.proxy_config, first.received_at, first.batches, first.diff) == (
        "edge",
        start,
        '[{"n": 1}]',
        '{"endpoints": {}}',
    )
    assert store.list_proxy_reports("edge", since=start) == [first, second]
    assert store.list_proxy_reports("edge", since=start + 5) == [second]
    clock.advance(95)  # the first is now 105 s old, the second 95 s
    store.add_proxy_report("other", "[]", None, keep_s=100)
    assert store.list_proxy_reports("edge", since=0) == [second]
