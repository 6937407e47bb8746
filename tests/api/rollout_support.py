"""Rollouts for the API tests: a small plan, and rollouts put in a given state through the
service (held by a test lease, so that the app's own runner leaves them alone)."""

from __future__ import annotations

from dataclasses import replace

from stageless.rollout.events import AbortRequested
from stageless.rollout.phases import Phase
from stageless.service import RolloutService
from stageless.store import SqlStore

PLAN = """\
service: checkout
stable: {addresses: ["127.0.0.1:8001"]}
candidate: {addresses: ["127.0.0.1:8002"]}
steps:
  - {kind: testers}
  - {kind: canary, weight: 5, min_duration_s: 60, max_duration_s: 600}
  - {kind: promote}
"""
TEST_OWNER = "api-test"


def held_rollout(store: SqlStore, plan: str = PLAN) -> str:
    """A pending rollout whose lease a test holds for an hour: the app does not run it."""
    view = RolloutService(store).start(plan, actor="test")
    assert store.acquire_rollout_lease(view.record.id, TEST_OWNER, ttl_s=3600)
    return view.record.id


def finished_rollout(store: SqlStore, plan: str = PLAN) -> str:
    """A rollout that was aborted before it started."""
    rollouts = RolloutService(store)
    rollout = held_rollout(store, plan)
    before = rollouts.get(rollout).state
    after = replace(before, phase=Phase.ABORTED, reason="aborted by test")
    rollouts.save_transition(
        rollout, before, after, AbortRequested("test"), [], owner=TEST_OWNER, actor="test"
    )
    return rollout
