"""Rollout use cases: start one from a plan, read them, ask them to pause, resume, promote,
abort or be approved, read their history; and what the runner needs to run them durably.

A rollout starts ``PENDING`` with its plan stored as given (validated first by
:func:`~stageless.rollout.plan.parse_plan`: a bad plan raises ``ValidationError`` naming every
path, and nothing is stored). People's requests are recorded (and audited) in the store, not
carried out here: the instance running the rollout (``stageless.controller``) picks them up,
feeds them to the state machine and records the transition. Only the holder of a rollout's
lease may record its transitions and evidence (``LeaseLostError`` otherwise).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from stageless.analysis.batch import Batch, parse_batch
from stageless.analysis.verdict import Decision
from stageless.errors import ConflictError
from stageless.rollout.commands import Command
from stageless.rollout.events import Event
from stageless.rollout.machine import RolloutState
from stageless.rollout.phases import Phase
from stageless.rollout.plan import RolloutPlan, TestersStep, parse_plan
from stageless.service.rolloutstate import state_from_json, state_to_json, to_json
from stageless.store import (
    LeaseLostError,
    NewRollout,
    RolloutAction,
    RolloutRecord,
    RolloutRequest,
    RolloutTransition,
    Store,
    TransitionWrite,
)

__all__ = [
    "LeaseLostError",
    "RolloutAction",
    "RolloutRecord",
    "RolloutRequest",
    "RolloutService",
    "RolloutTransition",
    "RolloutView",
    "new_rollout_id",
]

SOURCE = "plan"


def new_rollout_id(service: str) -> str:
    """``<service>-<8 hex digits>``: readable, and unique enough to never collide in practice."""
    return f"{service[:110]}-{secrets.token_hex(4)}"


@dataclass(frozen=True, slots=True)
class RolloutView:
    """A rollout as stored, with its plan and state decoded, its current step's evidence count
    and the latest judge decision of that step (JSON, or ``None``)."""

    record: RolloutRecord
    plan: RolloutPlan
    state: RolloutState
    evidence: int
    judge: dict[str, Any] | None


class RolloutService:
    """Rollout use cases over a ``Store``; thread-safe (called from worker threads)."""

    def __init__(self, store: Store, *, new_id: Callable[[str], str] = new_rollout_id) -> None:
        self._store = store
        self._new_id = new_id

    # --- people -------------------------------------------------------------------------

    def start(self, source: str | bytes, *, actor: str) -> RolloutView:
        """Validate the plan (YAML or JSON) and create a rollout; the runner starts it.

        ``ConflictError`` if the plan's service already has an unfinished rollout.
        """
        text = source.decode() if isinstance(source, bytes) else source
        plan = parse_plan(text, source=SOURCE)
        state = RolloutState(plan)
        created = self._store.create_rollout(
            NewRollout(
                id=self._new_id(plan.service),
                service=plan.service,
                plan=text,
                state=_dumps(state_to_json(state)),
                phase=str(state.phase),
                step=state.step,
            ),
            actor=actor,
        )
        return RolloutView(created, plan, state, 0, None)

    def get(self, rollout_id: str) -> RolloutView:
        """The rollout; ``NotFoundError`` if there is none with that id."""
        return self.view(*self._store.get_rollout_with_evidence(rollout_id))

    def list_all(self, *, unfinished: bool | None = None, limit: int = 100) -> list[RolloutView]:
        """Newest first (``unfinished``: True only running ones, False only finished ones)."""
        return [
            self.view(record, evidence)
            for record, evidence in self._store.list_rollouts_with_evidence(
                unfinished=unfinished, limit=limit
            )
        ]

    def request(
        self, rollout_id: str, action: RolloutAction | str, *, actor: str, reason: str = ""
    ) -> RolloutRequest:
        """Record a request for the runner. ``ConflictError`` if the rollout has finished, or,
        for an approval, if its current step is not a testers step with a manual gate."""
        action = RolloutAction(action)
        step: int | None = None
        if action is RolloutAction.APPROVE:
            view = self.get(rollout_id)
            current = view.plan.steps[view.state.step]
            if (
                view.state.running is not Phase.TESTING
                or not isinstance(current, TestersStep)
                or current.approval != "manual"
            ):
                raise ConflictError(
                    f"rollout {rollout_id!r} is not waiting for an approval: it is "
                    f"{view.state.phase} at step {view.state.step + 1} ({current.kind})"
                )
            step = view.state.step
        return self._store.add_rollout_request(
            rollout_id, action, actor=actor, step=step, reason=reason
        )

    def history(
        self, rollout_id: str, *, after_seq: int = 0, limit: int = 100
    ) -> list[RolloutTransition]:
        """Its transitions, oldest first; ``NotFoundError`` for an unknown rollout."""
        return self._store.list_rollout_transitions(rollout_id, after_seq=after_seq, limit=limit)

    def view(self, record: RolloutRecord, evidence: int) -> RolloutView:
        """``record`` decoded, with ``evidence`` (its step's count, read with it)."""
        plan = parse_plan(record.plan, source=f"rollout {record.id}")
        state = state_from_json(json.loads(record.state), plan)
        judge = None if record.judge is None else json.loads(record.judge)
        return RolloutView(record, plan, state, evidence, judge)

    # --- the runner -----------------------------------------------------------------------

    def unfinished(self) -> list[RolloutRecord]:
        """Every rollout not finished yet (for the runner to pick up)."""
        return self._store.list_rollouts(unfinished=True, limit=10_000)

    def acquire(self, rollout_id: str, owner: str, *, ttl_s: float) -> bool:
        """Take or renew the rollout's lease; False if another instance holds it."""
        return self._store.acquire_rollout_lease(rollout_id, owner, ttl_s=ttl_s)

    def release(self, rollout_id: str, owner: str) -> None:
        self._store.release_rollout_lease(rollout_id, owner)

    def pending(self, rollout_id: str) -> list[RolloutRequest]:
        return self._store.pending_rollout_requests(rollout_id)

    def save_transition(  # noqa: PLR0913 - one transition's parts, all recorded together
        self,
        rollout_id: str,
        before: RolloutState,
        after: RolloutState,
        event: Event,
        commands: Sequence[Command],
        *,
        owner: str,
        actor: str,
        handled: Sequence[int] = (),
        reason: str | None = None,
    ) -> RolloutRecord:
        """Record one transition (state, history row, handled requests; an audit entry when
        the phase or step changed) before its commands are carried out. ``reason`` replaces the
        state's reason in the history row (for an event the machine ignored, say)."""
        moved = after.phase is not before.phase or after.step != before.step
        write = TransitionWrite(
            state=_dumps(state_to_json(after)),
            phase=str(after.phase),
            step=after.step,
            event=_dumps(to_json(event)),
            commands=_dumps(to_json(list(commands))),
            reason=after.reason if reason is None else reason,
            actor=actor,
            finished=after.phase.terminal,
            handled=tuple(handled),
            audit=moved,
        )
        return self._store.record_rollout_transition(rollout_id, write, owner=owner)

    def save_evidence(
        self,
        rollout_id: str,
        step: int,
        batches: Sequence[Batch],
        decision: Decision | None,
        *,
        owner: str,
    ) -> int:
        """Append batches the judge of ``step`` consumed, with its latest decision; return the
        step's evidence count."""
        judge = None if decision is None else _dumps({"step": step, **decision.to_json()})
        rows = [_dumps(batch.to_json()) for batch in batches]
        return self._store.add_rollout_evidence(rollout_id, step, rows, judge=judge, owner=owner)

    def evidence(self, rollout_id: str, step: int) -> list[Batch]:
        """The batches the judge of ``step`` consumed, in order (to rebuild it)."""
        return [
            parse_batch(json.loads(row), where=f"evidence[{index}]")
            for index, row in enumerate(self._store.list_rollout_evidence(rollout_id, step))
        ]


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
