"""Verdicts, per-metric evidence and the decision every judge returns."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any


class Verdict(StrEnum):
    """What a judge says about the candidate.

    ``PASS``: after the minimum evidence, every metric is shown within its tolerated margin.
    ``FAIL``: some metric is shown worse than stable (beyond its tolerated null).
    ``CONTINUE``: not enough evidence yet either way; keep the step running.
    ``INVALID``: the comparison cannot be trusted (the traffic split is broken).
    ``INCONCLUSIVE``: the time or traffic budget ended without a decision, or there was no data.
    """

    PASS = "PASS"  # noqa: S105 - a verdict, not a password
    FAIL = "FAIL"
    CONTINUE = "CONTINUE"
    INVALID = "INVALID"
    INCONCLUSIVE = "INCONCLUSIVE"

    @property
    def final(self) -> bool:
        """True for every verdict except CONTINUE: the judge has decided and stops listening."""
        return self is not Verdict.CONTINUE


@dataclass(frozen=True, slots=True)
class Evidence:
    """One metric's evidence, in numbers and in one sentence.

    ``estimate`` is the effect (``effect`` says which: a rate ratio, a relative latency shift, a
    Kayenta score...), ``lower``/``upper`` its confidence-sequence bounds at ``level``; ``margin``
    the largest effect tolerated for a PASS. ``e_value`` is the current e-value of the FAIL (or,
    for ``srm``, INVALID) test, ``threshold`` = 1/alpha share, ``p_value`` the always-valid
    p-value (1 / the largest e-value so far, capped at 1). ``canary``/``baseline`` count the
    events behind the test, ``canary_n``/``baseline_n`` the exposure (requests, samples, pairs,
    users). Fields a judge does not compute are ``None``.
    """

    metric: str
    verdict: Verdict
    effect: str
    estimate: float | None
    lower: float | None
    upper: float | None
    level: float | None
    margin: float | None
    e_value: float | None
    threshold: float | None
    p_value: float | None
    canary: float
    baseline: float
    canary_n: float
    baseline_n: float
    sentence: str

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict (infinities and NaN become ``None``)."""
        return {key: _finite(value) for key, value in asdict(self).items()}


@dataclass(frozen=True, slots=True)
class Decision:
    """A judge's verdict with the evidence behind it."""

    verdict: Verdict
    metrics: tuple[Evidence, ...]
    summary: str
    canary_requests: int
    baseline_requests: int
    batches: int
    ignored_batches: int = 0
    intervals: int = 0
    duration_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": str(self.verdict),
            "summary": self.summary,
            "canary_requests": self.canary_requests,
            "baseline_requests": self.baseline_requests,
            "batches": self.batches,
            "ignored_batches": self.ignored_batches,
            "intervals": self.intervals,
            "duration_s": self.duration_s,
            "metrics": [evidence.to_json() for evidence in self.metrics],
        }


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Verdict):
        return str(value)
    return value


def fmt_count(value: float) -> str:
    """``1240`` -> ``"1,240"``."""
    return f"{round(value):,}"


def fmt_ratio(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "∞"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def fmt_percent(value: float | None, digits: int = 1) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    return f"{100 * value:.{digits}f}%"


def fmt_shift(value: float | None) -> str:
    """A relative shift: ``0.123`` -> ``"+12.3%"``."""
    if value is None or math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "+∞" if value > 0 else "-∞"
    return f"{100 * value:+.1f}%"


def fmt_level(level: float | None) -> str:
    if level is None:
        return ""
    text = f"{100 * level:.2f}".rstrip("0").rstrip(".")
    return f"{text}%"
