"""A rollout's controller state, events and commands as JSON, for the store and the API.

The state is stored without its plan (the plan text has its own column and is parsed again on
load): :func:`state_to_json` / :func:`state_from_json` round-trip every other field of
:class:`~stageless.rollout.machine.RolloutState`. Events and commands are written to the history
as ``{"type": "JudgeReported", "step": 2, "verdict": "FAIL", ...}`` (:func:`to_json`); they are
never read back into objects.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from enum import Enum
from typing import Any

from stageless.errors import Issue, ValidationError
from stageless.rollout.commands import Command, Traffic
from stageless.rollout.events import Event
from stageless.rollout.gates import DiffSummary
from stageless.rollout.machine import RolloutState
from stageless.rollout.phases import Phase
from stageless.rollout.plan import RolloutPlan

__all__ = ["state_from_json", "state_to_json", "to_json"]


def state_to_json(state: RolloutState) -> dict[str, Any]:
    """Every field of ``state`` but its plan, JSON-ready."""
    out: dict[str, Any] = {}
    for field in dataclasses.fields(state):
        if field.name != "plan":
            out[field.name] = to_json(getattr(state, field.name))
    return out


def state_from_json(raw: Mapping[str, Any], plan: RolloutPlan) -> RolloutState:
    """The state ``raw`` (from :func:`state_to_json`) describes, for ``plan``."""
    try:
        traffic = raw.get("traffic") or {}
        diff = raw.get("diff")
        paused_from = raw.get("paused_from")
        return RolloutState(
            plan=plan,
            phase=Phase(raw["phase"]),
            step=int(raw["step"]),
            step_started_at=_optional_float(raw.get("step_started_at")),
            paused_from=None if paused_from is None else Phase(paused_from),
            paused_at=_optional_float(raw.get("paused_at")),
            restart_on_resume=bool(raw.get("restart_on_resume", False)),
            passed=bool(raw.get("passed", False)),
            diff=None
            if diff is None
            else DiffSummary(
                compared=int(diff["compared"]),
                fields=tuple(str(path) for path in diff.get("fields", ())),
                candidate_requests=int(diff.get("candidate_requests", 0)),
                candidate_errors=int(diff.get("candidate_errors", 0)),
            ),
            traffic=Traffic(
                weight=float(traffic.get("weight", 0.0)),
                testers=bool(traffic.get("testers", False)),
                shadow=float(traffic.get("shadow", 0.0)),
            ),
            reason=str(raw.get("reason", "")),
            aborted=bool(raw.get("aborted", False)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValidationError(
            [Issue("state", f"a stored rollout state cannot be read: {exc!r}")]
        ) from exc


def to_json(value: Any) -> Any:
    """``value`` as plain JSON data: a dataclass becomes an object (events and commands get
    their class name as ``type``), enums their value, infinities and NaN ``null``."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {}
        if isinstance(value, Event | Command):
            out["type"] = type(value).__name__
        for field in dataclasses.fields(value):
            out[field.name] = to_json(getattr(value, field.name))
        return out
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(key): to_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)
