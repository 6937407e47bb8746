"""The judge protocol, and the interval bookkeeping every judge shares.

A judge takes batches one at a time (baseline and canary, any order), pairs them by interval
(:mod:`stageless.analysis.pairing`) and, after every completed interval, updates its verdict.
Once the verdict is final (anything but CONTINUE) the judge stops listening: later batches are
counted and ignored, and :meth:`Judge.decision` describes the moment of the decision.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from stageless.analysis.batch import Batch
from stageless.analysis.pairing import Interval, Pairer
from stageless.analysis.verdict import Decision, Evidence, Verdict


@runtime_checkable
class Judge(Protocol):
    """What the sequential, Kayenta-style and threshold judges have in common."""

    def observe(self, batch: Batch) -> Verdict:
        """Take one batch; return the verdict after it (cheap: no confidence sequences)."""
        ...

    def observe_many(self, batches: Iterable[Batch]) -> Verdict:
        """Take batches in order, stopping early at a final verdict; return the verdict."""
        ...

    def flush(self) -> Verdict:
        """Judge the intervals still waiting for a partner batch (call at the end of the data)."""
        ...

    def verdict(self) -> Verdict:
        """The current verdict (cheap)."""
        ...

    def decision(self) -> Decision:
        """The verdict with its evidence and explanation (computes confidence sequences)."""
        ...


class IntervalJudge:
    """Base of the judges: pairing, request and interval counts, the sticky final verdict."""

    def __init__(self, pairer: Pairer) -> None:
        self.pairer = pairer
        self.current = Verdict.CONTINUE
        self.reason = ""
        self.canary_requests = 0
        self.baseline_requests = 0
        self.intervals = 0
        self.batches_after_decision = 0
        self.first_ts: float | None = None
        self.end_ts: float | None = None

    @property
    def duration_s(self) -> float:
        if self.first_ts is None or self.end_ts is None:
            return 0.0
        return self.end_ts - self.first_ts

    def observe(self, batch: Batch) -> Verdict:
        if self.current.final:
            self.batches_after_decision += 1
            return self.current
        self._take(self.pairer.add(batch))
        return self.current

    def observe_many(self, batches: Iterable[Batch]) -> Verdict:
        for batch in batches:
            if self.observe(batch).final:
                break
        return self.current

    def flush(self) -> Verdict:
        if not self.current.final:
            self._take(self.pairer.flush())
        return self.current

    def verdict(self) -> Verdict:
        return self.current

    def _take(self, intervals: list[Interval]) -> None:
        for interval in intervals:
            if self.current.final:
                return
            self.intervals += 1
            if interval.canary is not None:
                self.canary_requests += interval.canary.requests
            if interval.baseline is not None:
                self.baseline_requests += interval.baseline.requests
            end = interval.ts + interval.interval_s
            self.first_ts = (
                interval.ts if self.first_ts is None else min(self.first_ts, interval.ts)
            )
            self.end_ts = end if self.end_ts is None else max(self.end_ts, end)
            self.current = self.judge_interval(interval)

    def judge_interval(self, interval: Interval) -> Verdict:
        """Update with one interval and return the verdict (subclasses)."""
        raise NotImplementedError

    def base_decision(
        self, verdict: Verdict, metrics: tuple[Evidence, ...], summary: str
    ) -> Decision:
        """A :class:`Decision` with this judge's counts."""
        return Decision(
            verdict=verdict,
            metrics=metrics,
            summary=summary,
            canary_requests=self.canary_requests,
            baseline_requests=self.baseline_requests,
            batches=self.pairer.batches,
            ignored_batches=self.pairer.ignored,
            intervals=self.intervals,
            duration_s=self.duration_s,
        )
