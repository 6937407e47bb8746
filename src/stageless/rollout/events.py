"""What happens to a rollout: the events the controller reacts to (past tense, as in mitmproxy).

Requests from people (``...Requested``, ``ApprovalGiven``), evidence (``JudgeReported``,
``DiffReported``, ``CheckPassed``/``CheckFailed``), the driver's answers (``DriverFailed``,
``PromotionCompleted``, ``RollbackCompleted``) and the passing of time (``Tick``; the time itself
is the ``now`` argument of :func:`~stageless.rollout.machine.transition`).

Evidence names the step it belongs to (``step``, an index into the plan's steps): evidence for
another step than the current one (a late verdict from the previous step's judge, say) is
ignored, never applied to the wrong step.
"""

from __future__ import annotations

from dataclasses import dataclass

from stageless.analysis.verdict import Decision, Verdict
from stageless.rollout.gates import DiffSummary

__all__ = [
    "AbortRequested",
    "ApprovalGiven",
    "CheckFailed",
    "CheckPassed",
    "DiffReported",
    "DriverFailed",
    "Event",
    "JudgeReported",
    "PauseRequested",
    "PromoteRequested",
    "PromotionCompleted",
    "ResumeRequested",
    "RollbackCompleted",
    "StartRequested",
    "Tick",
]


@dataclass(frozen=True, slots=True)
class Event:
    """Something the controller is told."""


@dataclass(frozen=True, slots=True)
class StartRequested(Event):
    """A person (or CI) started the rollout."""

    by: str = ""


@dataclass(frozen=True, slots=True)
class PauseRequested(Event):
    """Hold the rollout where it is: weights stay, gates stop advancing it (a FAIL still rolls
    back)."""

    by: str = ""


@dataclass(frozen=True, slots=True)
class ResumeRequested(Event):
    """Go on from where the rollout was paused."""

    by: str = ""


@dataclass(frozen=True, slots=True)
class PromoteRequested(Event):
    """Promote now, skipping the remaining steps and gates."""

    by: str = ""


@dataclass(frozen=True, slots=True)
class AbortRequested(Event):
    """Stop the rollout: the candidate loses all traffic in one move."""

    by: str = ""
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ApprovalGiven(Event):
    """A person approved a testers step with a manual gate."""

    step: int
    by: str = ""


@dataclass(frozen=True, slots=True)
class CheckPassed(Event):
    """A testers step's webhook check answered pass."""

    step: int
    detail: str = ""


@dataclass(frozen=True, slots=True)
class CheckFailed(Event):
    """A testers step's webhook check answered fail."""

    step: int
    detail: str = ""


@dataclass(frozen=True, slots=True)
class DiffReported(Event):
    """The shadow step's evidence so far (cumulative since the step started)."""

    step: int
    summary: DiffSummary


@dataclass(frozen=True, slots=True)
class JudgeReported(Event):
    """The canary step's judge gave a verdict (``summary``: its one-line explanation)."""

    step: int
    verdict: Verdict
    summary: str = ""

    @classmethod
    def from_decision(cls, step: int, decision: Decision) -> JudgeReported:
        return cls(step=step, verdict=decision.verdict, summary=decision.summary)


@dataclass(frozen=True, slots=True)
class Tick(Event):
    """Time passed (timers are checked against ``now``)."""


@dataclass(frozen=True, slots=True)
class DriverFailed(Event):
    """The driver could not apply the last commands (the data plane may not be as intended)."""

    reason: str


@dataclass(frozen=True, slots=True)
class PromotionCompleted(Event):
    """The driver applied ``Promote``: the candidate is the new stable."""


@dataclass(frozen=True, slots=True)
class RollbackCompleted(Event):
    """The driver applied ``RollBack``: the candidate has no traffic."""
