"""Glue between a metric source and a judge: no data is INCONCLUSIVE with the reason, never PASS.

Two ways to use it:

- :func:`judge_window` judges one recorded window at once (fetch, feed both versions, flush);
- :class:`SourceFeed` follows a live rollout: each :meth:`SourceFeed.poll` fetches the batches
  since the previous successful poll and feeds them to the same judge, whose evidence keeps
  accumulating.

Either way a source that fails, or answers with nothing to judge, yields a
:class:`~stageless.analysis.verdict.Decision` whose verdict is INCONCLUSIVE and whose summary
says why (``INCONCLUSIVE: no data: cannot reach Prometheus at http://127.0.0.1:9090: ...``). A
FAIL or INVALID already reached on the data that did arrive stands.
"""

from __future__ import annotations

from dataclasses import replace

from stageless.analysis.protocol import Judge
from stageless.analysis.verdict import Decision, Verdict
from stageless.metrics.source import MetricSource, SourceError, fetch_user_batches


def inconclusive(decision: Decision, reason: str) -> Decision:
    """``decision`` turned INCONCLUSIVE for ``reason``, unless it already is a FAIL or INVALID."""
    if decision.verdict in (Verdict.FAIL, Verdict.INVALID):
        return decision
    return replace(decision, verdict=Verdict.INCONCLUSIVE, summary=f"INCONCLUSIVE: {reason}")


def judge_window(
    judge: Judge, source: MetricSource, service: str, route: str, start: float, end: float
) -> Decision:
    """Feed every user batch of ``[start, end)`` to ``judge`` and return its decision.

    No batch, no batch of one version, no request on one version, or a failing source make the
    decision INCONCLUSIVE with the reason (see :func:`~stageless.metrics.fetch_user_batches`).
    """
    fetched = fetch_user_batches(source, service, route, start, end)
    judge.observe_many(fetched.batches)
    judge.flush()
    decision = judge.decision()
    return decision if fetched.problem is None else inconclusive(decision, fetched.problem)


class SourceFeed:
    """Feeds a judge from a source, window after window, for a live step.

    ``poll(until)`` fetches ``[cursor, until)``; pass ``until`` a little in the past (a scrape
    interval or the proxy's flush delay) so the last batches are complete. The cursor moves only
    when the source answered with batches: after a failure or an empty window the same span is
    asked again next time, and this poll's decision is INCONCLUSIVE with the reason.
    """

    def __init__(
        self, judge: Judge, source: MetricSource, service: str, route: str, start: float
    ) -> None:
        self.judge = judge
        self.source = source
        self.service = service
        self.route = route
        self.cursor = start

    def poll(self, until: float) -> Decision:
        """Feed what arrived since the last poll; the judge's decision, or INCONCLUSIVE why not."""
        if self.judge.verdict().final:
            return self.judge.decision()
        try:
            batches = self.source.fetch_batches(self.service, self.route, self.cursor, until)
        except SourceError as exc:
            return inconclusive(self.judge.decision(), f"no data: {exc}")
        if not batches:
            where = f"{self.service} {self.route}"
            return inconclusive(
                self.judge.decision(),
                f"no data: the source returned no batch for {where} since {self.cursor:.0f}",
            )
        self.judge.observe_many(batches)
        self.cursor = until
        return self.judge.decision()
