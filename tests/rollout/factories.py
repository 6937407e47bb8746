"""Plans for the rollout tests: valid documents to break one field at a time, and a driver that
runs events through the machine."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from stageless.rollout.commands import Command
from stageless.rollout.events import Event
from stageless.rollout.machine import RolloutState, transition
from stageless.rollout.plan import RolloutPlan, validate_plan

SHADOW: dict[str, Any] = {
    "kind": "shadow",
    "share": 10,
    "until": {"compared": 100, "duration_s": 600},
}
TESTERS: dict[str, Any] = {"kind": "testers"}
WEBHOOK: dict[str, Any] = {
    "kind": "testers",
    "approval": "webhook",
    "webhook": {"url": "https://ci.example.com/check", "timeout_s": 60},
}
CANARY: dict[str, Any] = {
    "kind": "canary",
    "weight": 5,
    "min_duration_s": 60,
    "max_duration_s": 600,
}
PROMOTE: dict[str, Any] = {"kind": "promote"}


def document(*steps: dict[str, Any], **top: Any) -> dict[str, Any]:
    """A plan document with these steps (promote appended unless the last one is promote)."""
    listed = [copy.deepcopy(step) for step in steps]
    if not listed or listed[-1].get("kind") != "promote":
        listed.append(dict(PROMOTE))
    return {
        "service": "checkout",
        "stable": {"addresses": ["127.0.0.1:8001"]},
        "candidate": {"addresses": ["127.0.0.1:8002"]},
        "steps": listed,
        **top,
    }


def plan(*steps: dict[str, Any], **top: Any) -> RolloutPlan:
    return validate_plan(document(*steps, **top))


def canary(weight: float = 5, **fields: Any) -> dict[str, Any]:
    return {**CANARY, "weight": weight, **fields}


def run(
    rollout: RolloutPlan, events: Iterable[tuple[float, Event]], start: float = 1000.0
) -> tuple[RolloutState, list[Command], float]:
    """Apply ``(seconds later, event)`` pairs from a new state; the state, the last commands and
    the time of the last event."""
    state = RolloutState(rollout)
    now = start
    commands: list[Command] = []
    for delay, event in events:
        now += delay
        state, commands = transition(state, event, now)
    return state, commands, now
