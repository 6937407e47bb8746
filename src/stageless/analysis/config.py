"""The sequential judge's settings, validated with path-level errors.

Every field has a default; :meth:`JudgeConfig.from_mapping` builds one from a plain mapping (a
YAML or JSON document's ``analysis`` section) and reports every bad key at once, e.g.
``analysis.alpha: 1.5 is out of range; expected 0 < alpha < 1``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from stageless.errors import Issue, ValidationError

#: The metrics the sequential judge can test, and the split check.
METRICS = ("errors", "latency", "tail")
TESTS = (*METRICS, "srm")

#: How the false-FAIL budget alpha is shared (Bonferroni) among the tests that are switched on:
#: each test gets alpha · weight / (sum of the weights of the enabled tests).
DEFAULT_ALPHA_WEIGHTS: Mapping[str, float] = {
    "errors": 0.45,
    "latency": 0.3,
    "tail": 0.15,
    "srm": 0.1,
}

#: The part of the tail share that the fail-only extreme-tail test takes when it is on (the
#: p99 test keeps the rest): the two tail tests split the tail's alpha evenly, so switching the
#: extreme test on or off changes neither the errors, latency nor split-check shares.
TAIL_EXTREME_SHARE = 0.5


@dataclass(frozen=True, slots=True)
class JudgeConfig:
    """Settings of :class:`~stageless.analysis.judge.SequentialJudge` (see docs/analysis.md)."""

    alpha: float = 0.05
    alpha_weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_ALPHA_WEIGHTS))
    pass_alpha: float | None = None
    metrics: tuple[str, ...] = METRICS
    srm: bool = True
    error_null_ratio: float = 1.0
    error_margin: float = 1.5
    latency_null_shift: float = 0.0
    latency_margin: float = 0.10
    tail_null_ratio: float = 1.0
    tail_margin: float = 1.5
    tail_quantile: float = 0.99
    tail_threshold_ms: float | None = None
    tail_extreme_quantile: float | None = 0.999
    tail_extreme_threshold_ms: float | None = None
    warmup_s: float = 60.0
    min_canary_requests: int = 500
    min_duration_s: float = 300.0
    max_duration_s: float | None = 7200.0
    max_canary_requests: int | None = None
    max_lag_s: float = 30.0
    ties: str = "half"
    # Formerly the Beta prior concentration of the latency sign test; the latency test now bets
    # (see latency.py) and no test reads it. Still accepted, so that plans that set it load.
    k: float = 30.0
    service: str | None = None
    route: str | None = None

    def __post_init__(self) -> None:
        issues = _check(self)
        if issues:
            raise ValidationError([Issue(f"analysis.{i.path}", i.message) for i in issues])

    @classmethod
    def from_mapping(cls, raw: Any, *, where: str = "analysis") -> JudgeConfig:
        """Build a config from a mapping of field names; unknown or mistyped keys are errors."""
        if not isinstance(raw, Mapping):
            raise ValidationError([Issue(where, "expected a mapping of analysis settings")])
        known = {f.name: f for f in fields(cls)}
        issues: list[Issue] = []
        values: dict[str, Any] = {}
        for key, value in raw.items():
            path = f"{where}.{key}"
            if key not in known:
                issues.append(Issue(path, f"unknown setting; expected one of {sorted(known)}"))
            elif key == "metrics":
                if not isinstance(value, list | tuple) or not all(
                    isinstance(v, str) for v in value
                ):
                    issues.append(Issue(path, f"{value!r} is not a list of metric names"))
                else:
                    values[key] = tuple(value)
            else:
                values[key] = value
        try:
            config = replace(cls(), **values)
        except ValidationError as exc:  # the known keys' values: reported with the unknown keys
            prefix = len("analysis.")
            issues += [Issue(f"{where}.{i.path[prefix:]}", i.message) for i in exc.issues]
            raise ValidationError(issues) from exc
        except TypeError as exc:  # pragma: no cover - replace() with known keys does not raise
            raise ValidationError([Issue(where, str(exc))]) from exc
        if issues:
            raise ValidationError(issues)
        return config

    def enabled_tests(self) -> tuple[str, ...]:
        """The tests this config runs, in report order."""
        return tuple(m for m in METRICS if m in self.metrics) + (("srm",) if self.srm else ())

    @property
    def tail_extreme(self) -> bool:
        """True when the fail-only extreme-tail test runs (with the tail metric, unless its
        quantile is set to ``None``)."""
        return "tail" in self.metrics and self.tail_extreme_quantile is not None

    def alpha_for(self, test: str) -> float:
        """The share of ``alpha`` given to one test (Bonferroni over the enabled tests).

        ``"tail_extreme"`` (the fail-only extreme-tail test) has no weight of its own: it takes
        :data:`TAIL_EXTREME_SHARE` of the tail's share, and ``"tail"`` (the p99 test) the rest.
        """
        enabled = self.enabled_tests()
        total = sum(self.alpha_weights.get(t, 0.0) for t in enabled)
        weighted = self.alpha / total
        if test == "tail_extreme":
            if not self.tail_extreme:
                return 0.0
            return weighted * self.alpha_weights.get("tail", 0.0) * TAIL_EXTREME_SHARE
        share = weighted * self.alpha_weights.get(test, 0.0)
        if test == "tail" and self.tail_extreme:
            share *= 1.0 - TAIL_EXTREME_SHARE
        return share

    def pass_risk(self) -> float:
        """The level of every metric's PASS test: ``pass_alpha``, or ``alpha`` when unset.

        Not split among the metrics: a PASS needs every metric's, so a candidate beyond its
        margin on some metric passes only if that metric's test errs, which it does with
        probability at most this level (an intersection-union test; Berger, 1982). The split
        that FAIL needs, where any one test's error is a false rollback, does not apply.
        """
        return self.alpha if self.pass_alpha is None else self.pass_alpha


def _number(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value)


def _check(c: JudgeConfig) -> list[Issue]:
    issues: list[Issue] = []

    def need(ok: bool, name: str, value: Any, expected: str) -> None:
        if not ok:
            issues.append(Issue(name, f"{value!r} is out of range; expected {expected}"))

    def number(
        name: str, low: float, high: float, expected: str, *, optional: bool = False
    ) -> None:
        value = getattr(c, name)
        if optional and value is None:
            return
        if not _number(value):
            issues.append(Issue(name, f"{value!r} is not a number; expected {expected}"))
            return
        need(low < value < high, name, value, expected)

    number("alpha", 0.0, 1.0, "0 < alpha < 1")
    number("pass_alpha", 0.0, 1.0, "0 < pass_alpha < 1", optional=True)
    number("error_null_ratio", 0.0, 32.0, "0 < error_null_ratio < 32")
    number("error_margin", 0.0, 32.0, "0 < error_margin < 32")
    number("latency_null_shift", -1.0, 10.0, "-1 < latency_null_shift < 10")
    number("latency_margin", -1.0, 10.0, "-1 < latency_margin < 10")
    number("tail_null_ratio", 0.0, 32.0, "0 < tail_null_ratio < 32")
    number("tail_margin", 0.0, 32.0, "0 < tail_margin < 32")
    number("tail_quantile", 0.0, 1.0, "0 < tail_quantile < 1")
    number("tail_threshold_ms", 0.0, math.inf, "a latency > 0 in ms", optional=True)
    number(
        "tail_extreme_quantile",
        0.0,
        1.0,
        "tail_quantile < tail_extreme_quantile < 1, or none to switch the test off",
        optional=True,
    )
    number("tail_extreme_threshold_ms", 0.0, math.inf, "a latency > 0 in ms", optional=True)
    number("warmup_s", -1e-9, math.inf, "warmup_s >= 0")
    number("min_duration_s", -1e-9, math.inf, "min_duration_s >= 0")
    number("max_duration_s", 0.0, math.inf, "max_duration_s > 0", optional=True)
    number("max_lag_s", -1e-9, math.inf, "max_lag_s >= 0")
    number("k", 0.0, math.inf, "k > 0")
    for name in ("min_canary_requests", "max_canary_requests"):
        value = getattr(c, name)
        optional_none = value is None and name == "max_canary_requests"
        if not optional_none and (
            type(value) is not int or value < (0 if name[:3] == "min" else 1)
        ):
            issues.append(Issue(name, f"{value!r} is not a count; expected a whole number"))
    if not isinstance(c.metrics, tuple) or not all(m in METRICS for m in c.metrics):
        issues.append(Issue("metrics", f"{c.metrics!r}: expected a subset of {list(METRICS)}"))
    elif not c.metrics:
        issues.append(
            Issue("metrics", f"no metric to judge; expected at least one of {list(METRICS)}")
        )
    if not isinstance(c.srm, bool):
        issues.append(Issue("srm", f"{c.srm!r} is not true or false"))
    if c.ties not in ("half", "random"):
        issues.append(Issue("ties", f"{c.ties!r} is not one of ['half', 'random']"))
    if not isinstance(c.alpha_weights, Mapping):
        issues.append(Issue("alpha_weights", "expected a mapping of test name to weight"))
    else:
        for name, weight in c.alpha_weights.items():
            if name not in TESTS:
                issues.append(
                    Issue(f"alpha_weights.{name}", f"unknown test; expected one of {list(TESTS)}")
                )
            elif not _number(weight) or weight < 0:
                issues.append(Issue(f"alpha_weights.{name}", f"{weight!r} is not a weight >= 0"))
        if not issues and isinstance(c.metrics, tuple):
            issues.extend(
                Issue(f"alpha_weights.{test}", "an enabled test needs a weight > 0")
                for test in c.enabled_tests()
                if c.alpha_weights.get(test, 0.0) <= 0
            )
    if _number(c.error_margin) and _number(c.error_null_ratio) and c.error_margin <= 1.0:
        need(False, "error_margin", c.error_margin, "a tolerated ratio > 1")
    if _number(c.tail_margin) and c.tail_margin <= 1.0:
        need(False, "tail_margin", c.tail_margin, "a tolerated ratio > 1")
    extreme = c.tail_extreme_quantile
    if (
        extreme is not None
        and _number(extreme)
        and _number(c.tail_quantile)
        and 0.0 < extreme <= c.tail_quantile
    ):
        need(
            False,
            "tail_extreme_quantile",
            extreme,
            f"a quantile above tail_quantile ({c.tail_quantile:g}) and below 1",
        )
    if c.tail_extreme_threshold_ms is not None and c.tail_extreme_quantile is None:
        issues.append(
            Issue(
                "tail_extreme_threshold_ms",
                f"{c.tail_extreme_threshold_ms!r} is set but the extreme-tail test is off "
                "(tail_extreme_quantile is none); expected none, or a tail_extreme_quantile",
            )
        )
    if _number(c.latency_margin) and c.latency_margin <= 0.0:
        need(False, "latency_margin", c.latency_margin, "a tolerated slowdown > 0 (0.10 = 10%)")
    for name in ("service", "route"):
        value = getattr(c, name)
        if value is not None and (not isinstance(value, str) or not value):
            issues.append(Issue(name, f"{value!r} is not a name; expected a non-empty string"))
    return issues
