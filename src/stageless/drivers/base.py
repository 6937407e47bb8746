"""The one interface between the rollout runner and a data plane.

The controller (:mod:`stageless.rollout`) decides what the candidate should receive; a
:class:`Driver` makes a data plane do it and reports what the data plane saw. The built-in
proxy is one driver (:mod:`stageless.drivers.builtin`); HAProxy, nginx and the Gateway API are
others. A driver's methods are idempotent: the runner may call :meth:`Driver.apply` again with
the same traffic after a restart, and the data plane ends in the same state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from stageless.analysis.batch import Batch
from stageless.diff.report import DiffReport
from stageless.rollout.commands import Traffic


class DriverError(Exception):
    """The data plane could not be steered (unreachable, refused the change); says why."""


@dataclass(frozen=True, slots=True)
class ShadowReport:
    """The data plane's shadow results since shadowing started for a step.

    ``report``: the diff report (None when the data plane cannot compare answers);
    ``sent``/``failed``: copies that reached the candidate and those that failed there.
    """

    report: DiffReport | None
    sent: int
    failed: int


class Driver(Protocol):
    """Steers one service's traffic between its stable and candidate versions."""

    async def apply(self, traffic: Traffic) -> None:
        """Give the candidate exactly ``traffic``: users' weight, testers, shadow share.

        ``Traffic()`` (all zero) is a rollback: it takes effect in one move.
        Raises :class:`DriverError`.
        """
        ...

    async def promote(self) -> None:
        """Make the candidate the new stable (all users on it). Raises :class:`DriverError`."""
        ...

    async def batches(self, since: float) -> list[Batch]:
        """The service's batches (every route, version and traffic class) whose interval
        started at or after ``since`` (a Unix time), oldest first."""
        ...

    async def shadow_report(self) -> ShadowReport:
        """The shadow results since the last :meth:`apply` that started shadowing."""
        ...

    async def close(self) -> None:
        """Release connections; the data plane keeps its last state."""
        ...


__all__ = ["Driver", "DriverError", "ShadowReport"]
