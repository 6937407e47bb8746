"""The phases a rollout goes through (docs/rollouts.md has the diagram's table)."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ACTIVE", "STEP_PHASES", "TERMINAL", "Phase"]


class Phase(StrEnum):
    """Where a rollout is.

    ``PENDING``: created, not started. ``SHADOWING``, ``TESTING``, ``CANARY``: running a shadow,
    testers or canary step. ``PAUSED``: held by a person or by a policy; traffic stays as it was.
    ``PROMOTING``: 100 % sent and the promotion asked of the driver. ``ROLLING_BACK``: the
    rollback asked of the driver. ``PROMOTED``, ``ROLLED_BACK``, ``ABORTED``: over.
    """

    PENDING = "PENDING"
    SHADOWING = "SHADOWING"
    TESTING = "TESTING"
    CANARY = "CANARY"
    PAUSED = "PAUSED"
    PROMOTING = "PROMOTING"
    PROMOTED = "PROMOTED"
    ROLLING_BACK = "ROLLING_BACK"
    ROLLED_BACK = "ROLLED_BACK"
    ABORTED = "ABORTED"

    @property
    def terminal(self) -> bool:
        """True once the rollout is over (promoted, rolled back or aborted)."""
        return self in TERMINAL


TERMINAL = frozenset({Phase.PROMOTED, Phase.ROLLED_BACK, Phase.ABORTED})
ACTIVE = (Phase.SHADOWING, Phase.TESTING, Phase.CANARY)
"""Phases that run a step with gates."""
STEP_PHASES = {
    "shadow": Phase.SHADOWING,
    "testers": Phase.TESTING,
    "canary": Phase.CANARY,
    "promote": Phase.PROMOTING,
}
"""The phase each kind of step runs in."""
