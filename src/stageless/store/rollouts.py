"""Rollouts and proxy reports: the SQL behind the rollout runner's durable state.

A rollout's row holds its plan, its controller state and its lease. The instance running a
rollout writes every transition in one transaction with its history row, the requests it
handled and its audit entry, and appends the judge's evidence, each under a check that it still
holds the lease (``lease_owner``), so that after a takeover the old holder's writes fail with
``LeaseLostError`` instead of interleaving. Leases are taken and renewed with one conditional
UPDATE (free, expired or already ours), atomic on both databases.

Proxy reports are telemetry: appended, read by time, deleted after their retention period.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Row, Select, and_, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from stageless.clock import Clock
from stageless.errors import ConflictError, NotFoundError
from stageless.store.backend import Backend
from stageless.store.base import (
    AuditAction,
    LeaseLostError,
    NewRollout,
    ProxyReport,
    RolloutAction,
    RolloutRecord,
    RolloutRequest,
    RolloutTransition,
    TransitionWrite,
    check_name,
)
from stageless.store.schema import (
    proxy_reports,
    rollout_evidence,
    rollout_requests,
    rollout_transitions,
    rollouts,
)

#: Appends an audit entry: (conn, action, target, before, after, actor).
AuditWriter = Callable[[Connection, AuditAction, str, str | None, str | None, str], None]

__all__ = ["ProxyReports", "Rollouts", "rollout_target"]


def rollout_target(rollout_id: str) -> str:
    """The audit ``target`` of a rollout."""
    return f"rollout:{rollout_id}"


class Rollouts:
    """The rollout tables over one backend; the store supplies the clock and the audit log."""

    def __init__(self, backend: Backend, clock: Clock, audit: AuditWriter) -> None:
        self._backend = backend
        self._clock = clock
        self._audit = audit

    def create(self, rollout: NewRollout, *, actor: str) -> RolloutRecord:
        check_name("id", rollout.id)
        now = self._clock.now()
        values = {
            "id": rollout.id,
            "service": rollout.service,
            "plan": rollout.plan,
            "state": rollout.state,
            "phase": rollout.phase,
            "step": rollout.step,
            "seq": 0,
            "judge": None,
            "created_by": actor,
            "created_at": now,
            "updated_at": now,
            "finished_at": None,
            "lease_owner": None,
            "lease_expires": None,
        }
        with self._backend.transaction(write=True) as conn:
            running = conn.execute(
                select(rollouts.c.id).where(
                    rollouts.c.service == rollout.service, rollouts.c.finished_at.is_(None)
                )
            ).first()
            if running is not None:
                raise ConflictError(
                    f"service {rollout.service!r} already has a rollout running ({running.id}); "
                    "abort it or wait for it to finish"
                )
            try:
                conn.execute(insert(rollouts).values(**values))
            except IntegrityError as exc:  # the same id, or a concurrent start won the race
                raise ConflictError(
                    f"rollout {rollout.id!r} or another rollout of {rollout.service!r} exists"
                ) from exc
            after = _json_object(service=rollout.service, phase=rollout.phase, plan=rollout.plan)
            self._audit(
                conn, AuditAction.ROLLOUT_CREATE, rollout_target(rollout.id), None, after, actor
            )
        return _record(values)

    def get(self, rollout_id: str) -> RolloutRecord:
        with self._backend.transaction(write=False) as conn:
            return _record(self._row(conn, rollout_id)._mapping)

    def get_with_evidence(self, rollout_id: str) -> tuple[RolloutRecord, int]:
        query = select(rollouts, _EVIDENCE_NOW).where(rollouts.c.id == rollout_id)
        with self._backend.transaction(write=False) as conn:
            row = conn.execute(query).first()
        if row is None:
            raise NotFoundError(f"rollout {rollout_id!r} not found")
        return _record(row._mapping), int(row.evidence)

    def list_all(self, *, unfinished: bool | None, limit: int) -> list[RolloutRecord]:
        query = _listing(select(rollouts), unfinished=unfinished, limit=limit)
        with self._backend.transaction(write=False) as conn:
            return [_record(row._mapping) for row in conn.execute(query).all()]

    def list_with_evidence(
        self, *, unfinished: bool | None, limit: int
    ) -> list[tuple[RolloutRecord, int]]:
        query = _listing(select(rollouts, _EVIDENCE_NOW), unfinished=unfinished, limit=limit)
        with self._backend.transaction(write=False) as conn:
            return [(_record(row._mapping), int(row.evidence)) for row in conn.execute(query).all()]

    def add_request(
        self,
        rollout_id: str,
        action: RolloutAction,
        *,
        actor: str,
        step: int | None,
        reason: str,
    ) -> RolloutRequest:
        action = RolloutAction(action)
        now = self._clock.now()
        with self._backend.transaction(write=True) as conn:
            row = self._row(conn, rollout_id, lock=True)
            if row.finished_at is not None:
                raise ConflictError(
                    f"rollout {rollout_id!r} has finished ({row.phase}); nothing to {action}"
                )
            values = {
                "rollout_id": rollout_id,
                "action": str(action),
                "actor": actor,
                "step": step,
                "reason": reason,
                "at": now,
                "handled_at": None,
            }
            result = conn.execute(insert(rollout_requests).values(**values))
            (request_id,) = result.inserted_primary_key or (0,)
            after = _json_object(action=str(action), step=step, reason=reason)
            self._audit(conn, action.audit_action, rollout_target(rollout_id), None, after, actor)
        return _request({"id": int(request_id), **values})

    def pending_requests(self, rollout_id: str) -> list[RolloutRequest]:
        query = (
            select(rollout_requests)
            .where(
                rollout_requests.c.rollout_id == rollout_id,
                rollout_requests.c.handled_at.is_(None),
            )
            .order_by(rollout_requests.c.id)
        )
        with self._backend.transaction(write=False) as conn:
            return [_request(row._mapping) for row in conn.execute(query).all()]

    def acquire_lease(self, rollout_id: str, owner: str, *, ttl_s: float) -> bool:
        now = self._clock.now()
        with self._backend.transaction(write=True) as conn:
            result = conn.execute(
                update(rollouts)
                .where(
                    rollouts.c.id == rollout_id,
                    rollouts.c.finished_at.is_(None),
                    or_(
                        rollouts.c.lease_owner.is_(None),
                        rollouts.c.lease_owner == owner,
                        rollouts.c.lease_expires < now,
                    ),
                )
                .values(lease_owner=owner, lease_expires=now + ttl_s)
            )
            return result.rowcount == 1

    def release_lease(self, rollout_id: str, owner: str) -> None:
        with self._backend.transaction(write=True) as conn:
            conn.execute(
                update(rollouts)
                .where(rollouts.c.id == rollout_id, rollouts.c.lease_owner == owner)
                .values(lease_owner=None, lease_expires=None)
            )

    def record_transition(
        self, rollout_id: str, write: TransitionWrite, *, owner: str
    ) -> RolloutRecord:
        now = self._clock.now()
        with self._backend.transaction(write=True) as conn:
            row = self._owned(conn, rollout_id, owner)
            seq = row.seq + 1
            changes: dict[str, Any] = {
                "state": write.state,
                "phase": write.phase,
                "step": write.step,
                "seq": seq,
                "updated_at": now,
            }
            if write.step != row.step:
                changes["judge"] = None
            if write.finished:
                changes.update(finished_at=now, lease_owner=None, lease_expires=None)
            conn.execute(update(rollouts).where(rollouts.c.id == rollout_id).values(**changes))
            conn.execute(
                insert(rollout_transitions).values(
                    rollout_id=rollout_id,
                    seq=seq,
                    at=now,
                    from_phase=row.phase,
                    to_phase=write.phase,
                    step=write.step,
                    event=write.event,
                    commands=write.commands,
                    reason=write.reason,
                    actor=write.actor,
                )
            )
            if write.handled:
                conn.execute(
                    update(rollout_requests)
                    .where(
                        rollout_requests.c.rollout_id == rollout_id,
                        rollout_requests.c.id.in_(write.handled),
                        rollout_requests.c.handled_at.is_(None),
                    )
                    .values(handled_at=now)
                )
            if write.audit:
                self._audit(
                    conn,
                    AuditAction.ROLLOUT_TRANSITION,
                    rollout_target(rollout_id),
                    _json_object(phase=row.phase, step=row.step),
                    _json_object(phase=write.phase, step=write.step, reason=write.reason),
                    write.actor,
                )
        return _record({**row._mapping, **changes})

    def transitions(
        self, rollout_id: str, *, after_seq: int, limit: int
    ) -> list[RolloutTransition]:
        query = (
            select(rollout_transitions)
            .where(
                rollout_transitions.c.rollout_id == rollout_id,
                rollout_transitions.c.seq > after_seq,
            )
            .order_by(rollout_transitions.c.seq)
            .limit(limit)
        )
        with self._backend.transaction(write=False) as conn:
            self._row(conn, rollout_id)
            rows = conn.execute(query).all()
        return [RolloutTransition(**row._mapping) for row in rows]

    def add_evidence(
        self, rollout_id: str, step: int, batches: list[str], *, judge: str | None, owner: str
    ) -> int:
        now = self._clock.now()
        with self._backend.transaction(write=True) as conn:
            row = self._owned(conn, rollout_id, owner)
            if batches:
                conn.execute(
                    insert(rollout_evidence),
                    [
                        {"rollout_id": rollout_id, "step": step, "at": now, "batch": batch}
                        for batch in batches
                    ],
                )
            if judge is not None and step == row.step:
                conn.execute(
                    update(rollouts).where(rollouts.c.id == rollout_id).values(judge=judge)
                )
            return _count_evidence(conn, rollout_id, step)

    def evidence(self, rollout_id: str, step: int) -> list[str]:
        query = (
            select(rollout_evidence.c.batch)
            .where(rollout_evidence.c.rollout_id == rollout_id, rollout_evidence.c.step == step)
            .order_by(rollout_evidence.c.id)
        )
        with self._backend.transaction(write=False) as conn:
            return [str(batch) for batch in conn.execute(query).scalars()]

    def count_evidence(self, rollout_id: str, step: int) -> int:
        with self._backend.transaction(write=False) as conn:
            return _count_evidence(conn, rollout_id, step)

    def _row(self, conn: Connection, rollout_id: str, *, lock: bool = False) -> Row[Any]:
        query = select(rollouts).where(rollouts.c.id == rollout_id)
        row = conn.execute(query.with_for_update() if lock else query).first()
        if row is None:
            raise NotFoundError(f"rollout {rollout_id!r} not found")
        return row

    def _owned(self, conn: Connection, rollout_id: str, owner: str) -> Row[Any]:
        row = self._row(conn, rollout_id, lock=True)
        if row.lease_owner != owner:
            holder = "nobody" if row.lease_owner is None else repr(row.lease_owner)
            raise LeaseLostError(
                f"rollout {rollout_id!r} is not leased to {owner!r} (held by {holder})"
            )
        return row


class ProxyReports:
    """The proxy reports table over one backend."""

    def __init__(self, backend: Backend, clock: Clock) -> None:
        self._backend = backend
        self._clock = clock

    def add(
        self, proxy_config: str, batches: str, diff: str | None, *, keep_s: float
    ) -> ProxyReport:
        now = self._clock.now()
        values: dict[str, Any] = {
            "proxy_config": proxy_config,
            "received_at": now,
            "batches": batches,
            "diff": diff,
        }
        with self._backend.transaction(write=True) as conn:
            result = conn.execute(insert(proxy_reports).values(**values))
            (report_id,) = result.inserted_primary_key or (0,)
            conn.execute(delete(proxy_reports).where(proxy_reports.c.received_at < now - keep_s))
        return ProxyReport(id=int(report_id), **values)

    def since(self, proxy_config: str, *, since: float) -> list[ProxyReport]:
        query = (
            select(proxy_reports)
            .where(
                and_(
                    proxy_reports.c.proxy_config == proxy_config,
                    proxy_reports.c.received_at >= since,
                )
            )
            .order_by(proxy_reports.c.id)
        )
        with self._backend.transaction(write=False) as conn:
            return [ProxyReport(**row._mapping) for row in conn.execute(query).all()]


# A rollout's evidence count for its current step, read in the same statement as the row: a
# reader never sees evidence whose judge decision (written with it) is missing, on PostgreSQL's
# READ COMMITTED too, where two statements of one transaction may see different commits.
_EVIDENCE_NOW = (
    select(func.count())
    .where(
        rollout_evidence.c.rollout_id == rollouts.c.id,
        rollout_evidence.c.step == rollouts.c.step,
    )
    .scalar_subquery()
    .label("evidence")
)


def _listing(query: Select[Any], *, unfinished: bool | None, limit: int) -> Select[Any]:
    """``query`` over rollouts, newest first; ``unfinished`` True: running only, False: ended."""
    if unfinished is True:
        query = query.where(rollouts.c.finished_at.is_(None))
    elif unfinished is False:
        query = query.where(rollouts.c.finished_at.is_not(None))
    return query.order_by(rollouts.c.created_at.desc(), rollouts.c.id).limit(limit)


def _count_evidence(conn: Connection, rollout_id: str, step: int) -> int:
    query = select(func.count()).where(
        rollout_evidence.c.rollout_id == rollout_id, rollout_evidence.c.step == step
    )
    return int(conn.execute(query).scalar_one())


def _record(values: Any) -> RolloutRecord:
    return RolloutRecord(**{name: values[name] for name in RolloutRecord.__dataclass_fields__})


def _request(values: Any) -> RolloutRequest:
    return RolloutRequest(
        id=int(values["id"]),
        rollout_id=values["rollout_id"],
        action=RolloutAction(values["action"]),
        actor=values["actor"],
        step=values["step"],
        reason=values["reason"],
        at=values["at"],
        handled_at=values["handled_at"],
    )


def _json_object(**values: Any) -> str:
    return json.dumps(values, sort_keys=True, ensure_ascii=False)
