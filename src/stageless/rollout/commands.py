"""What the controller asks for: commands (imperative, as in mitmproxy), and the candidate's
traffic they add up to.

The runner carries commands out in order, through the driver (traffic), the judge and the
webhook checks, and the notifiers. :class:`Traffic` folds the traffic commands, so the
controller always knows what the candidate receives, and tests can check it independently.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from stageless.analysis.config import JudgeConfig
from stageless.rollout.phases import Phase

__all__ = [
    "Command",
    "EnableTesters",
    "Log",
    "Notify",
    "Promote",
    "RollBack",
    "RunCheck",
    "SetWeight",
    "StartJudge",
    "StartShadow",
    "StopJudge",
    "StopShadow",
    "Traffic",
]


@dataclass(frozen=True, slots=True)
class Command:
    """Something the controller asks the runner to do."""


@dataclass(frozen=True, slots=True)
class SetWeight(Command):
    """Send ``weight`` percent of users (sticky) to the candidate."""

    weight: float


@dataclass(frozen=True, slots=True)
class EnableTesters(Command):
    """Let signed tester routing tokens reach the candidate."""


@dataclass(frozen=True, slots=True)
class StartShadow(Command):
    """Copy ``share`` percent of requests to the candidate, with a fresh diff report for
    ``step``."""

    share: float
    step: int


@dataclass(frozen=True, slots=True)
class StopShadow(Command):
    """Stop copying requests to the candidate."""


@dataclass(frozen=True, slots=True)
class RollBack(Command):
    """In one move: candidate weight 0, tester routing off, shadowing off."""


@dataclass(frozen=True, slots=True)
class Promote(Command):
    """Make the candidate the new stable (follows ``SetWeight(100)``); the driver confirms with
    ``PromotionCompleted``."""


@dataclass(frozen=True, slots=True)
class StartJudge(Command):
    """Start a fresh judge for canary step ``step`` (no evidence carried over) and report its
    verdicts as ``JudgeReported(step, ...)``."""

    step: int
    config: JudgeConfig


@dataclass(frozen=True, slots=True)
class StopJudge(Command):
    """Stop the judge of step ``step``."""

    step: int


@dataclass(frozen=True, slots=True)
class RunCheck(Command):
    """Call a testers step's webhook check and report ``CheckPassed``/``CheckFailed``."""

    step: int
    url: str
    timeout_s: float


@dataclass(frozen=True, slots=True)
class Notify(Command):
    """The rollout moved (from ``previous`` to ``phase``, at step ``step``): tell the audit log
    and the webhooks why."""

    previous: Phase
    phase: Phase
    step: int
    reason: str


@dataclass(frozen=True, slots=True)
class Log(Command):
    """A line for the runner's log: an event that was ignored, and why."""

    message: str
    level: Literal["info", "warning", "error"] = "info"


@dataclass(frozen=True, slots=True)
class Traffic:
    """What the candidate receives: a weight of users (percent), testers, a shadow share."""

    weight: float = 0.0
    testers: bool = False
    shadow: float = 0.0

    @property
    def any(self) -> bool:
        """Whether the candidate gets any traffic at all."""
        return self.weight > 0 or self.testers or self.shadow > 0

    def after(self, command: Command) -> Traffic:
        """The traffic once ``command`` is carried out (commands that move none: unchanged)."""
        if isinstance(command, SetWeight):
            return Traffic(command.weight, self.testers, self.shadow)
        if isinstance(command, EnableTesters):
            return Traffic(self.weight, True, self.shadow)
        if isinstance(command, StartShadow):
            return Traffic(self.weight, self.testers, command.share)
        if isinstance(command, StopShadow):
            return Traffic(self.weight, self.testers, 0.0)
        if isinstance(command, RollBack):
            return Traffic()
        return self
