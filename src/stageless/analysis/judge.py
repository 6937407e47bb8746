"""The sequential judge: anytime-valid tests of errors, latency and tail, and the split check.

Usage (see docs/analysis.md)::

    judge = SequentialJudge(JudgeConfig(alpha=0.05))
    for batch in batches:            # baseline and canary batches, any order
        if judge.observe(batch).final:
            break
    decision = judge.decision()      # verdict, per-metric evidence, one-line summary

After every completed interval each test updates its e-values (O(grid) work, no recomputation
over history). Order of precedence: INVALID (split broken) > FAIL (any metric) > PASS (every
metric within its margin, after the minimum evidence; the fail-only extreme-tail test takes no
part) > INCONCLUSIVE (budget over) > CONTINUE.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from stageless.analysis.config import JudgeConfig
from stageless.analysis.error_rate import ErrorRateTest
from stageless.analysis.latency import LatencyTest, PairedLatencyTest
from stageless.analysis.pairing import Interval, Pairer
from stageless.analysis.protocol import IntervalJudge
from stageless.analysis.srm import SampleRatioTest
from stageless.analysis.tail import EXTREME_SCALE, ExceedanceTest, ExtremeTailTest, TailTest
from stageless.analysis.verdict import Decision, Evidence, Verdict, fmt_count


class MetricTest(Protocol):
    """One sequential test inside the judge."""

    name: str

    @property
    def failed(self) -> bool: ...

    @property
    def passed(self) -> bool: ...

    def add(self, interval: Interval) -> None: ...

    def evidence(self) -> Evidence: ...


def build_tests(config: JudgeConfig, rng: np.random.Generator | None) -> list[MetricTest]:
    """The tests a config asks for, each with its share of alpha."""
    tests: list[MetricTest] = []
    if "errors" in config.metrics:
        tests.append(
            ErrorRateTest(
                config.alpha_for("errors"),
                null_ratio=config.error_null_ratio,
                margin=config.error_margin,
                pass_alpha=config.pass_risk(),
            )
        )
    if "latency" in config.metrics:
        alpha = config.alpha_for("latency")
        paired = PairedLatencyTest(
            alpha,
            null_shift=config.latency_null_shift,
            margin=config.latency_margin,
            rng=rng,
            pass_alpha=config.pass_risk(),
        )
        histogram = ExceedanceTest(
            alpha,
            quantile=0.5,
            margin=1.0 + config.latency_margin,
            warmup_s=config.warmup_s,
            pass_alpha=config.pass_risk(),
        )
        tests.append(LatencyTest(paired, histogram))
    if "tail" in config.metrics:
        tail = ExceedanceTest(
            config.alpha_for("tail"),
            quantile=config.tail_quantile,
            null_ratio=config.tail_null_ratio,
            margin=config.tail_margin,
            threshold_ms=config.tail_threshold_ms,
            warmup_s=config.warmup_s,
            pass_alpha=config.pass_risk(),
        )
        tests.append(TailTest(tail))
        if config.tail_extreme_quantile is not None:
            extreme = ExceedanceTest(
                config.alpha_for("tail_extreme"),
                quantile=config.tail_extreme_quantile,
                null_ratio=config.tail_null_ratio,
                margin=None,
                threshold_ms=config.tail_extreme_threshold_ms,
                warmup_s=config.warmup_s,
                scale=EXTREME_SCALE,
            )
            tests.append(ExtremeTailTest(extreme, tail))
    if config.srm:
        tests.append(SampleRatioTest(config.alpha_for("srm")))
    return tests


class SequentialJudge(IntervalJudge):
    """Anytime-valid judge: may be asked for its verdict after every batch.

    ``rng`` is used only to break latency ties at random (``config.ties == "random"``); without
    one, a fixed seed keeps runs reproducible.
    """

    def __init__(
        self, config: JudgeConfig | None = None, *, rng: np.random.Generator | None = None
    ) -> None:
        self.config = config if config is not None else JudgeConfig()
        pairer = Pairer(self.config.max_lag_s, service=self.config.service, route=self.config.route)
        super().__init__(pairer)
        if self.config.ties == "random" and rng is None:
            rng = np.random.default_rng(0)
        self.tests = build_tests(self.config, rng if self.config.ties == "random" else None)
        self.metrics = [t for t in self.tests if t.name != "srm"]
        # Fail-only tests (the extreme tail) can FAIL the candidate but a PASS never waits for them.
        self.gates = [t for t in self.metrics if not isinstance(t, ExtremeTailTest)]
        self.srm = next((t for t in self.tests if t.name == "srm"), None)

    def judge_interval(self, interval: Interval) -> Verdict:
        for test in self.tests:
            test.add(interval)
        c = self.config
        if self.srm is not None and self.srm.failed:
            return Verdict.INVALID
        if any(t.failed for t in self.metrics):
            return Verdict.FAIL
        if self._minimum_met() and all(t.passed for t in self.gates):
            return Verdict.PASS
        if c.max_duration_s is not None and self.duration_s >= c.max_duration_s:
            self.reason = f"the time budget of {c.max_duration_s:g} s ended"
            return Verdict.INCONCLUSIVE
        if c.max_canary_requests is not None and self.canary_requests >= c.max_canary_requests:
            self.reason = (
                f"the traffic budget of {fmt_count(c.max_canary_requests)} canary requests ended"
            )
            return Verdict.INCONCLUSIVE
        return Verdict.CONTINUE

    def _minimum_met(self) -> bool:
        c = self.config
        return (
            self.canary_requests >= max(1, c.min_canary_requests)
            and self.duration_s >= c.min_duration_s
        )

    def decision(self) -> Decision:
        evidence = tuple(t.evidence() for t in self.tests)
        return self.base_decision(self.current, evidence, self._summary(evidence))

    def _summary(self, evidence: tuple[Evidence, ...]) -> str:
        v = self.current
        n = fmt_count(self.canary_requests)
        minutes = self.duration_s / 60.0
        if v is Verdict.INVALID:
            srm = [e.sentence for e in evidence if e.metric == "srm"]
            return "INVALID: " + "; ".join(srm)
        if v is Verdict.FAIL:
            return "FAIL: " + "; ".join(e.sentence for e in evidence if e.verdict is Verdict.FAIL)
        if v is Verdict.PASS:
            return (
                f"PASS: every metric is within its tolerated margin after {n} canary requests "
                f"({minutes:.1f} min)"
            )
        gates = {t.name for t in self.gates}
        undecided = [
            e.metric for e in evidence if e.verdict is Verdict.CONTINUE and e.metric in gates
        ]
        if self.canary_requests == 0:
            why = "no canary traffic" if self.intervals else "no data"
        else:
            why = f"undecided: {', '.join(undecided)}" if undecided else "minimum evidence not met"
            if undecided and not self._minimum_met():
                why += (
                    f"; minimum evidence {fmt_count(self.config.min_canary_requests)} canary "
                    f"requests over {self.config.min_duration_s / 60:.1f} min"
                )
        if v is Verdict.INCONCLUSIVE:
            return (
                f"INCONCLUSIVE: {self.reason} after {n} canary requests ({minutes:.1f} min); {why}"
            )
        return f"CONTINUE: no decision yet after {n} canary requests ({minutes:.1f} min); {why}"
