"""Typed records of the rollout routes (``/api/v1/rollouts``), read from their JSON bodies."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["RolloutInfo", "RolloutRequestInfo", "TransitionInfo"]


@dataclass(frozen=True, slots=True)
class RolloutInfo:
    """A rollout as ``GET /api/v1/rollouts/{rollout}`` shows it (``raw``: the whole body).

    ``step`` is the step's index in the plan (0 first), ``step_number`` the same counted from 1
    of ``steps``; ``traffic`` is what the candidate receives (``weight``, ``testers``,
    ``shadow``); ``evidence`` counts the batches the current step's judge consumed and
    ``decision`` is its latest decision (``verdict``, ``summary``, ...), if any.
    """

    id: str
    service: str
    phase: str
    finished: bool
    reason: str
    step: int
    step_number: int
    steps: int
    step_description: str
    traffic: Mapping[str, Any]
    evidence: int
    decision: Mapping[str, Any] | None
    created_at: str
    updated_at: str
    raw: Mapping[str, Any]

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> RolloutInfo:
        step = body.get("step") or {}
        evidence = body.get("evidence") or {}
        return cls(
            id=body["id"],
            service=body.get("service", ""),
            phase=body.get("phase", ""),
            finished=bool(body.get("finished", False)),
            reason=body.get("reason", ""),
            step=int(step.get("index", 0)),
            step_number=int(step.get("number", 1)),
            steps=int(step.get("of", 0)),
            step_description=step.get("description", ""),
            traffic=body.get("traffic") or {},
            evidence=int(evidence.get("batches", 0)),
            decision=evidence.get("decision"),
            created_at=body.get("created_at", ""),
            updated_at=body.get("updated_at", ""),
            raw=body,
        )


@dataclass(frozen=True, slots=True)
class RolloutRequestInfo:
    """A recorded request (pause, resume, promote, abort, approve) to a rollout."""

    id: int
    rollout: str
    action: str
    actor: str
    step: int | None
    reason: str
    at: str

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> RolloutRequestInfo:
        return cls(
            id=int(body["id"]),
            rollout=body["rollout"],
            action=body["action"],
            actor=body.get("actor", ""),
            step=body.get("step"),
            reason=body.get("reason", ""),
            at=body.get("at", ""),
        )


@dataclass(frozen=True, slots=True)
class TransitionInfo:
    """One entry of a rollout's history: from which phase to which, at which step, and why;
    ``event`` and ``commands`` as the controller recorded them."""

    seq: int
    at: str
    from_phase: str
    to_phase: str
    step: int
    reason: str
    actor: str
    event: Mapping[str, Any]
    commands: tuple[Mapping[str, Any], ...]

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> TransitionInfo:
        return cls(
            seq=int(body["seq"]),
            at=body.get("at", ""),
            from_phase=body.get("from", ""),
            to_phase=body.get("to", ""),
            step=int(body.get("step", 0)),
            reason=body.get("reason", ""),
            actor=body.get("actor", ""),
            event=body.get("event") or {},
            commands=tuple(body.get("commands") or ()),
        )
