"""The evidence a shadow step is gated on, and the gate itself (pure).

The runner turns the proxy's diff report and its counts of the candidate's shadow answers into
a :class:`DiffSummary` (:meth:`DiffSummary.from_report`) and hands it to the controller in a
``DiffReported`` event; :func:`shadow_gate` decides, when the step ends, whether the step passed.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from stageless.diff.report import DiffReport
from stageless.rollout.plan import ShadowStep

__all__ = ["DiffSummary", "GateResult", "shadow_gate", "unexpected_fields"]


@dataclass(frozen=True, slots=True)
class DiffSummary:
    """What a shadow step has seen so far.

    ``compared``: requests whose stable and candidate answers were compared; ``fields``: the
    differing field paths the diff report lists (after its noise filter), each once;
    ``candidate_requests``/``candidate_errors``: shadow copies sent to the candidate and those
    that failed (5xx, timeouts, refused connections).
    """

    compared: int
    fields: tuple[str, ...] = ()
    candidate_requests: int = 0
    candidate_errors: int = 0

    @classmethod
    def from_report(
        cls, report: DiffReport, *, candidate_requests: int, candidate_errors: int
    ) -> DiffSummary:
        """The summary of a diff report (every endpoint) and the candidate's shadow counts."""
        paths = {f.path for endpoint in report.endpoints for f in endpoint.reported()}
        return cls(
            compared=sum(endpoint.total for endpoint in report.endpoints),
            fields=tuple(sorted(paths)),
            candidate_requests=candidate_requests,
            candidate_errors=candidate_errors,
        )

    @property
    def error_percent(self) -> float:
        """The candidate's failed shadow answers, in percent (0 with none sent)."""
        if self.candidate_requests <= 0:
            return 0.0
        return 100.0 * self.candidate_errors / self.candidate_requests


@dataclass(frozen=True, slots=True)
class GateResult:
    """A gate's answer: ``passed`` is ``None`` when there is no evidence to decide on."""

    passed: bool | None
    reason: str


def unexpected_fields(step: ShadowStep, summary: DiffSummary) -> tuple[str, ...]:
    """The differing fields that match none of the step's ``expected_fields`` patterns."""
    return tuple(
        path
        for path in summary.fields
        if not any(fnmatchcase(path, pattern) for pattern in step.expected_fields)
    )


def shadow_gate(step: ShadowStep, summary: DiffSummary | None) -> GateResult:
    """Whether a shadow step passed: something was compared, at most ``max_unexpected_fields``
    unexpected differing fields, the candidate's errors at most ``max_error_percent``."""
    if summary is None or summary.compared <= 0:
        return GateResult(None, "no request was compared")
    problems: list[str] = []
    unexpected = unexpected_fields(step, summary)
    if len(unexpected) > step.max_unexpected_fields:
        shown = ", ".join(unexpected[:5]) + (", ..." if len(unexpected) > 5 else "")
        problems.append(
            f"{len(unexpected)} unexpected differing field(s) ({shown}); "
            f"{step.max_unexpected_fields} tolerated"
        )
    if summary.error_percent > step.max_error_percent:
        problems.append(
            f"the candidate failed {summary.candidate_errors} of {summary.candidate_requests} "
            f"shadow requests ({summary.error_percent:.2f}%); at most "
            f"{step.max_error_percent:g}% tolerated"
        )
    if problems:
        return GateResult(False, "; ".join(problems))
    return GateResult(
        True,
        f"{summary.compared} requests compared, {len(unexpected)} unexpected differing field(s), "
        f"candidate errors {summary.error_percent:.2f}%",
    )
