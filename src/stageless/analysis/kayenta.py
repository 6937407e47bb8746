"""A Kayenta-style fixed-horizon judge (NetflixACAJudge-v1.0), for comparison and for users.

Per metric, one point per step (60 s by default) and arm: the error rate, latency p50, latency
p99. At each judgment (every ``judgment_interval_s`` up to ``lifetime_s``, on the window from the
start) every metric is classified by the Mann-Whitney interval of the canary-minus-baseline
shift (98 %, :mod:`stageless.analysis.mannwhitney`) and an effect-size gate (mean ratio), then
scored: a group's score is 100·#Pass / #(Pass, High, Low, NodataFail), the summary the weighted
sum of groups. A judgment at or below ``marginal`` fails fast; the last one passes at ``pass_score``
or above. A non-Pass critical metric scores 0. One deviation: when half the metrics have no data,
Kayenta scores 0 (a FAIL); here the verdict is INCONCLUSIVE with that reason.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from stageless.analysis.mannwhitney import shift_interval
from stageless.analysis.pairing import Interval, Pairer
from stageless.analysis.protocol import IntervalJudge
from stageless.analysis.steps import Aggregate, Steps
from stageless.analysis.verdict import Decision, Evidence, Verdict, fmt_ratio

_CONFIDENCE = 0.98  # a literal in Kayenta's classifyMetric
_EFFECT_FRACTION = 0.25  # likewise


@dataclass(frozen=True, slots=True)
class KayentaMetric:
    """One metric: how to read a step, its group and Kayenta's per-metric settings."""

    name: str
    group: str
    read: Callable[[Aggregate], float]
    direction: str = "increase"  # increase | decrease | either
    critical: bool = False
    nan_strategy: str = "remove"  # remove | replace (NaN -> 0.0)
    allowed_increase: float = 1.0
    allowed_decrease: float = 1.0
    critical_increase: float = 1.0
    critical_decrease: float = 1.0


DEFAULT_METRICS: tuple[KayentaMetric, ...] = (
    KayentaMetric(
        "error_rate", "errors", lambda a: a.error_rate, critical=True, nan_strategy="replace"
    ),
    KayentaMetric("latency_p50", "latency", lambda a: a.quantile(0.5)),
    KayentaMetric("latency_p99", "latency", lambda a: a.quantile(0.99)),
)


@dataclass(frozen=True, slots=True)
class KayentaConfig:
    """Settings of :class:`KayentaJudge` (defaults follow the reference notes' suggestions)."""

    step_s: float = 60.0
    lifetime_s: float = 10_800.0
    judgment_interval_s: float = 3_600.0
    marginal: float = 75.0
    pass_score: float = 95.0
    metrics: tuple[KayentaMetric, ...] = DEFAULT_METRICS
    group_weights: Mapping[str, float] = field(
        default_factory=lambda: {"errors": 50.0, "latency": 50.0}
    )
    max_lag_s: float = 30.0
    service: str | None = None
    route: str | None = None


@dataclass(frozen=True, slots=True)
class Classification:
    """One metric's result at a judgment."""

    metric: str
    outcome: str  # Pass | High | Low | Nodata | NodataFail | Error
    lower: float | None = None
    estimate: float | None = None
    upper: float | None = None
    mean_ratio: float | None = None
    critical_failure: bool = False
    points: int = 0


def classify(
    metric: KayentaMetric, canary: NDArray[np.float64], baseline: NDArray[np.float64]
) -> Classification:
    """Kayenta's per-metric classification of two per-step series (canary, baseline)."""
    if metric.nan_strategy == "replace":
        canary, baseline = np.nan_to_num(canary, nan=0.0), np.nan_to_num(baseline, nan=0.0)
    else:
        canary, baseline = canary[~np.isnan(canary)], baseline[~np.isnan(baseline)]
    points = int(min(canary.size, baseline.size))
    if canary.size == 0 or baseline.size == 0:
        return Classification(metric.name, "Nodata", points=points)
    if np.array_equal(np.sort(canary), np.sort(baseline)):
        return Classification(metric.name, "Pass", points=points)
    if np.unique(np.concatenate([canary, baseline])).size == 1:
        return Classification(metric.name, "Pass", points=points)
    if np.ptp(canary) == 0 and np.ptp(baseline) == 0:
        rng = np.random.default_rng(0)
        canary = canary + rng.normal(0.0, 1.0, canary.size) * 1e-5 * abs(canary[0])
        baseline = baseline + rng.normal(0.0, 1.0, baseline.size) * 1e-5 * abs(baseline[0])
    interval = shift_interval(canary, baseline, _CONFIDENCE)
    if interval is None:
        return Classification(metric.name, "Error", points=points)
    mean_b = float(np.mean(baseline))
    mean_c = float(np.mean(canary))
    ratio = mean_c / mean_b if mean_b != 0 and mean_c != 0 else math.nan
    threshold = _EFFECT_FRACTION * abs(interval.estimate)
    high = (
        metric.direction in ("increase", "either")
        and interval.lower > threshold
        and (math.isnan(ratio) or ratio >= metric.allowed_increase)
    )
    low = (
        metric.direction in ("decrease", "either")
        and interval.upper < -threshold
        and (math.isnan(ratio) or ratio <= metric.allowed_decrease)
    )
    outcome = "High" if high else "Low" if low else "Pass"
    critical = metric.critical and (
        (high and (math.isnan(ratio) or ratio >= metric.critical_increase))
        or (low and (math.isnan(ratio) or ratio <= metric.critical_decrease))
    )
    return Classification(
        metric.name,
        outcome,
        interval.lower,
        interval.estimate,
        interval.upper,
        ratio,
        critical,
        points,
    )


def score(results: list[Classification], config: KayentaConfig) -> tuple[float, str]:
    """(summary score 0-100, reason for an override or "")."""
    if not results:
        return 0.0, "no metrics"
    nodata = sum(r.outcome == "Nodata" for r in results)
    if nodata * 2 >= len(results):
        return 0.0, "no data"
    if any(r.critical_failure for r in results):
        return 0.0, "a critical metric failed"
    groups = {m.group for m in config.metrics}
    configured = {g: w for g, w in config.group_weights.items() if g in groups}
    unweighted = [g for g in groups if g not in configured]
    share = (100.0 - sum(configured.values())) / len(unweighted) if unweighted else 0.0
    weights = {**configured, **dict.fromkeys(unweighted, share)}
    by_name = {m.name: m.group for m in config.metrics}
    total = 0.0
    for group, weight in weights.items():
        members = [r for r in results if by_name[r.metric] == group]
        counted = [r for r in members if r.outcome in ("Pass", "High", "Low", "NodataFail")]
        passed = sum(r.outcome == "Pass" for r in counted)
        total += (100.0 * passed / len(counted) if counted else 100.0) * weight / 100.0
    return round(total, 2), ""


class KayentaJudge(IntervalJudge):
    """Judges at fixed times on per-step series; fail fast at or below ``marginal``."""

    def __init__(self, config: KayentaConfig | None = None) -> None:
        self.config = config if config is not None else KayentaConfig()
        c = self.config
        super().__init__(Pairer(c.max_lag_s, service=c.service, route=c.route))
        self.steps = Steps(c.step_s)
        self.next_judgment = c.judgment_interval_s
        self.judgments: list[tuple[float, list[Classification]]] = []
        self.last_reason = ""

    def judge_interval(self, interval: Interval) -> Verdict:
        self.steps.add(interval)
        c = self.config
        elapsed = self.duration_s
        if elapsed + 1e-9 < min(self.next_judgment, c.lifetime_s):
            return Verdict.CONTINUE
        self.next_judgment += c.judgment_interval_s
        results = self.classify_all()
        value, override = score(results, c)
        self.judgments.append((value, results))
        self.last_reason = override
        final = elapsed + 1e-9 >= c.lifetime_s
        if override == "no data":
            return Verdict.INCONCLUSIVE if final else Verdict.CONTINUE
        if value <= c.marginal or (final and value < c.pass_score):
            return Verdict.FAIL
        return Verdict.PASS if final else Verdict.CONTINUE

    def classify_all(self) -> list[Classification]:
        """Classify every metric on all completed steps so far."""
        end = self.end_ts if self.end_ts is not None else 0.0
        pairs = self.steps.pairs(0, self.steps.completed(end))
        results = []
        for metric in self.config.metrics:
            base = np.asarray([metric.read(b) for b, _ in pairs], dtype=np.float64)
            canary = np.asarray([metric.read(c) for _, c in pairs], dtype=np.float64)
            results.append(classify(metric, canary, base))
        return results

    def decision(self) -> Decision:
        results = self.judgments[-1][1] if self.judgments else self.classify_all()
        value = self.judgments[-1][0] if self.judgments else None
        evidence = tuple(_evidence(r) for r in results)
        c = self.config
        where = f"judgment {len(self.judgments)} of {int(c.lifetime_s // c.judgment_interval_s)}"
        if value is None:
            summary = f"{self.current}: no judgment yet ({self.duration_s / 60:.1f} min of data)"
        else:
            why = f" ({self.last_reason})" if self.last_reason else ""
            summary = (
                f"{self.current}: score {value:g}{why} at {where} (marginal {c.marginal:g}, "
                f"pass {c.pass_score:g}) after {self.canary_requests:,} canary requests"
            )
        return self.base_decision(self.current, evidence, summary)


def _evidence(r: Classification) -> Evidence:
    verdict = {"Pass": Verdict.PASS, "High": Verdict.FAIL, "Low": Verdict.FAIL}.get(
        r.outcome, Verdict.INCONCLUSIVE
    )
    if r.estimate is None:
        sentence = f"{r.metric}: {r.outcome} ({r.points} points)"
    else:
        sentence = (
            f"{r.metric}: {r.outcome}, shift {r.estimate:.4g} (98% CI {r.lower:.4g} to "
            f"{r.upper:.4g}), mean ratio {fmt_ratio(r.mean_ratio)} over {r.points} points"
        )
    return Evidence(
        metric=r.metric,
        verdict=verdict,
        effect="shift",
        estimate=r.estimate,
        lower=r.lower,
        upper=r.upper,
        level=_CONFIDENCE,
        margin=None,
        e_value=None,
        threshold=None,
        p_value=None,
        canary=float(r.points),
        baseline=float(r.points),
        canary_n=float(r.points),
        baseline_n=float(r.points),
        sentence=sentence,
    )
