"""The rollout plan: frozen pydantic models, validated hard, with path-level errors.

A plan (YAML or JSON) names the service, its stable and candidate upstreams, the driver that
moves traffic, and the steps a rollout walks through: ``shadow`` (a share of traffic copied to
the candidate and compared), ``testers`` (tester routing tokens reach the candidate; gated on a
person's approval or a webhook check), ``canary`` (a weight of users, gated on the sequential
judge) and ``promote`` (100 %; the candidate becomes the new stable), which is always last.

:func:`parse_plan` returns a :class:`RolloutPlan` or raises
:class:`~stageless.errors.ValidationError` listing every problem with its path, e.g.
``steps[2].weight: 140 is not between 0 and 100``; unknown keys are errors with a "did you
mean". :func:`plan_schema` is the published JSON Schema (checked in as ``plan.schema.json`` next
to this module; a test keeps the two equal). Pure: reading the file is the caller's job
(``parse_plan(path.read_text(), source=str(path))``). Reference: docs/rollouts.md.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import fields, replace
from functools import cached_property
from typing import Annotated, Any, ClassVar, Literal

import pydantic
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema, model_validator

from stageless.analysis.config import METRICS, JudgeConfig
from stageless.errors import Issue, IssuesError, ValidationError, show, show_number
from stageless.flags.decode import decode_document
from stageless.rollout.checks import (
    Address,
    Duration,
    Name,
    Percent,
    Share,
    Url,
    Weight,
    between,
)
from stageless.rollout.dataplanes import GatewaySettings, HAProxySettings, NginxSettings
from stageless.validation import issues_from

__all__ = [
    "DEFAULT_JUDGE",
    "DRIVERS",
    "DRIVER_SETTINGS",
    "PLAN_SCHEMA_ID",
    "STEP_KINDS",
    "CanaryStep",
    "PromoteStep",
    "RollbackPolicy",
    "RolloutPlan",
    "ShadowStep",
    "ShadowUntil",
    "Step",
    "TestersStep",
    "Upstream",
    "Webhook",
    "WebhookCheck",
    "parse_plan",
    "plan_schema",
    "validate_plan",
]

DEFAULT_JUDGE = "default"
"""The judge settings a canary step uses unless it names others: the judge's defaults, or the
plan's ``judges.default`` when the plan defines it."""
DRIVERS = ("builtin", "haproxy", "nginx", "gateway-api")
STEP_KINDS = ("shadow", "testers", "canary", "promote")
DRIVER_SETTINGS = {"haproxy": "haproxy", "nginx": "nginx", "gateway": "gateway-api"}
"""The plan's settings blocks, each with the driver it belongs to."""
PLAN_SCHEMA_ID = "https://stageless.dev/schemas/rollout-plan.schema.json"
PLAN_FIELDS_FROM_STEP = ("min_duration_s", "max_duration_s", "service")
"""Judge settings a plan's ``judges`` may not set: the canary step and the plan give them."""

Count = Annotated[int, AfterValidator(between(0, 1e12)), Field(json_schema_extra={"minimum": 0})]
PositiveCount = Annotated[
    int, AfterValidator(between(1, 1e12)), Field(json_schema_extra={"minimum": 1})
]
NonNegativeSeconds = Annotated[
    float, AfterValidator(between(0, 1e9)), Field(json_schema_extra={"minimum": 0})
]
FieldPattern = Annotated[str, Field(min_length=1)]


class _Model(BaseModel):
    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        strict=True,  # no "5" for 5 nor 1 for true: YAML already gives real types
        allow_inf_nan=False,
        use_attribute_docstrings=True,  # the docstrings below describe the fields in the schema
    )


class Upstream(_Model):
    """One version of the service (stable or candidate)."""

    addresses: Annotated[tuple[Address, ...], Field(strict=False)]
    """Its `host:port` addresses (one at least)."""

    @model_validator(mode="after")
    def _check(self) -> Upstream:
        if not self.addresses:
            raise ValueError("expected at least one address")
        _raise(_duplicates(self.addresses, "addresses"))
        return self


class ShadowUntil(_Model):
    """When a shadow step ends (whichever comes first); its gates are then checked."""

    compared: PositiveCount | None = 1000
    """Requests compared (stable's and the candidate's answers)."""
    duration_s: Duration | None = 1800.0
    """Seconds since the step started."""

    @model_validator(mode="after")
    def _check(self) -> ShadowUntil:
        if self.compared is None and self.duration_s is None:
            raise ValueError("expected compared, duration_s or both; a shadow step must end")
        return self


class ShadowStep(_Model):
    """A dark launch: a share of live requests copied to the candidate, answers compared."""

    kind: Literal["shadow"]
    share: Share = 100.0
    """Percent of requests copied to the candidate (users only ever see stable's answers)."""
    until: ShadowUntil = Field(default_factory=ShadowUntil)
    """When the step ends and its gates are checked."""
    expected_fields: Annotated[tuple[FieldPattern, ...], Field(strict=False)] = ()
    """Field paths expected to differ (`fnmatch` patterns such as `body.version` or
    `headers.x-*`): never counted as unexpected."""
    max_unexpected_fields: Count = 0
    """Differing fields tolerated beyond `expected_fields` (fields the diff report lists after
    its noise filter)."""
    max_error_percent: Percent = 1.0
    """Largest share of the candidate's shadow answers that may be errors (5xx, timeouts,
    refused connections), in percent."""


class WebhookCheck(_Model):
    """An HTTP check of the user's that answers pass or fail."""

    url: Url
    """Where the check is called."""
    timeout_s: Duration = 600.0
    """How long the check may take; with no answer by then the rollout pauses."""


class TestersStep(_Model):
    """Tester routing tokens reach the candidate; the step waits for its gate."""

    __test__: ClassVar[bool] = False  # not a pytest test class despite its name

    kind: Literal["testers"]
    approval: Literal["manual", "webhook"] = "manual"
    """`manual`: a person approves; `webhook`: the `webhook` check decides."""
    webhook: WebhookCheck | None = None
    """The check, when `approval` is `webhook`."""

    @model_validator(mode="after")
    def _check(self) -> TestersStep:
        if self.approval == "webhook" and self.webhook is None:
            _raise([Issue("webhook", "is required when approval is 'webhook'")])
        if self.approval == "manual" and self.webhook is not None:
            _raise([Issue("webhook", "is only used when approval is 'webhook'")])
        return self


class CanaryStep(_Model):
    """A weight of users sent to the candidate, gated on the sequential judge."""

    kind: Literal["canary"]
    weight: Weight
    """Percent of users (sticky) sent to the candidate: above 0, at most 100, steps of 0.001."""
    min_duration_s: NonNegativeSeconds = 300.0
    """The step lasts at least this long, even after the judge says PASS."""
    max_duration_s: Duration = 3600.0
    """When the judge is still undecided at this point, `on_timeout` decides."""
    on_timeout: Literal["pause", "rollback", "proceed"] = "pause"
    """At ``max_duration_s`` without a verdict (or on INCONCLUSIVE): wait for a person,
    roll back, or go on to the next step."""
    judge: Name = DEFAULT_JUDGE
    """Which judge settings (a key of `judges`, or `default`)."""

    @model_validator(mode="after")
    def _check(self) -> CanaryStep:
        if self.min_duration_s > self.max_duration_s:
            _raise(
                [
                    Issue(
                        "min_duration_s",
                        f"{show_number(self.min_duration_s)} is longer than max_duration_s "
                        f"({show_number(self.max_duration_s)})",
                    )
                ]
            )
        return self


class PromoteStep(_Model):
    """100 % of users; the candidate becomes the new stable. Always the last step."""

    kind: Literal["promote"]


Step = Annotated[ShadowStep | TestersStep | CanaryStep | PromoteStep, Field(discriminator="kind")]


class RollbackPolicy(_Model):
    """What happens on evidence that is not a FAIL."""

    on_invalid: Literal["pause", "rollback"] = "pause"
    """A broken traffic split (judge verdict INVALID): pause and alert, or roll back."""


class Webhook(_Model):
    """Where notifications of every transition are sent."""

    url: Url
    """An http:// or https:// URL that receives a POST per transition."""


def _judge_settings_schema() -> dict[str, Any]:
    """The JSON Schema of one ``judges`` entry, from :class:`JudgeConfig`'s fields."""
    types: dict[str, dict[str, Any]] = {
        "float": {"type": "number"},
        "int": {"type": "integer"},
        "bool": {"type": "boolean"},
        "str": {"type": "string"},
        "float | None": {"type": ["number", "null"]},
        "int | None": {"type": ["integer", "null"]},
        "str | None": {"type": ["string", "null"]},
        "tuple[str, ...]": {"type": "array", "items": {"enum": list(METRICS)}},
        "Mapping[str, float]": {"type": "object", "additionalProperties": {"type": "number"}},
    }
    properties = {
        f.name: types[str(f.type)]
        for f in fields(JudgeConfig)
        if f.name not in PLAN_FIELDS_FROM_STEP
    }
    return {
        "type": "object",
        "description": "Settings of the sequential judge (docs/analysis.md); every key optional.",
        "properties": properties,
        "additionalProperties": False,
    }


JudgeSettings = Annotated[dict[str, Any], WithJsonSchema(_judge_settings_schema())]


class RolloutPlan(_Model):
    """A rollout plan: what to roll out and the steps to walk through."""

    service: Name
    """The service, as the driver knows it (the proxy's `services[].name`)."""
    stable: Upstream
    """The version users get today."""
    candidate: Upstream
    """The new version, deployed beside stable."""
    driver: Literal["builtin", "haproxy", "nginx", "gateway-api"] = "builtin"
    """What moves the traffic: Stageless's own proxy or another data plane."""
    proxy_config: Name | None = None
    """With `driver: builtin`: the proxy config on the control plane that holds the service
    (default: the one named like the service)."""
    haproxy: HAProxySettings | None = None
    """With `driver: haproxy` (required there): the HAProxy it steers (docs/drivers.md)."""
    nginx: NginxSettings | None = None
    """With `driver: nginx` (required there): the nginx configuration it writes."""
    gateway: GatewaySettings | None = None
    """With `driver: gateway-api` (required there): the HTTPRoute it writes."""
    steps: Annotated[tuple[Step, ...], Field(strict=False)]
    """The steps in order; the last one is `promote`."""
    judges: Annotated[
        dict[Name, JudgeSettings],
        Field(strict=False, json_schema_extra={"additionalProperties": False}),
    ] = Field(default_factory=dict)
    """Named judge settings that canary steps refer to by `judge`."""
    rollback: RollbackPolicy = Field(default_factory=RollbackPolicy)
    """What to do on evidence that is not a FAIL."""
    webhooks: Annotated[tuple[Webhook, ...], Field(strict=False)] = ()
    """Notification endpoints."""

    @model_validator(mode="after")
    def _check(self) -> RolloutPlan:
        issues = self._step_issues()
        issues += self._driver_issues()
        issues += _duplicates(
            self.candidate.addresses, "candidate.addresses", set(self.stable.addresses)
        )
        for name, settings in self.judges.items():
            issues += _judge_issues(name, settings)
        _raise(issues)
        _ = self.judge_configs
        return self

    def _step_issues(self) -> list[Issue]:
        if not self.steps:
            return [Issue("steps", "expected at least one step, the last one promote")]
        issues: list[Issue] = []
        last = len(self.steps) - 1
        previous: tuple[int, float] | None = None
        for index, step in enumerate(self.steps):
            if step.kind == "promote" and index != last:
                issues.append(Issue(f"steps[{index}].kind", "promote must be the last step"))
            if isinstance(step, CanaryStep):
                if previous is not None and step.weight < previous[1]:
                    issues.append(
                        Issue(
                            f"steps[{index}].weight",
                            f"{show_number(step.weight)} is lower than steps[{previous[0]}]'s "
                            f"{show_number(previous[1])}; a canary's weight only goes up",
                        )
                    )
                previous = (index, step.weight)
                if step.judge != DEFAULT_JUDGE and step.judge not in self.judges:
                    known = sorted({DEFAULT_JUDGE, *self.judges})
                    issues.append(
                        Issue(
                            f"steps[{index}].judge",
                            f"{step.judge!r} is not defined; expected one of {', '.join(known)} "
                            "(judges are defined under judges)",
                        )
                    )
        if self.steps[last].kind != "promote":
            issues.append(
                Issue(
                    f"steps[{last}].kind",
                    f"{self.steps[last].kind!r}: the last step must be promote",
                )
            )
        return issues

    def _driver_issues(self) -> list[Issue]:
        """Each settings block belongs to its driver; a driver's needs are met by its block."""
        issues: list[Issue] = []
        for block, driver in DRIVER_SETTINGS.items():
            present = getattr(self, block) is not None
            if present and driver != self.driver:
                issues.append(
                    Issue(
                        block,
                        f"is only used with driver: {driver} (this plan's driver is {self.driver})",
                    )
                )
            elif not present and driver == self.driver:
                issues.append(Issue(block, f"is required with driver: {driver}"))
        settings = self.driver_settings
        if settings is None:
            return issues
        block = next(b for b, d in DRIVER_SETTINGS.items() if d == self.driver)
        for index, step in enumerate(self.steps):
            if step.kind == "shadow" and self.driver == "haproxy":
                issues.append(
                    Issue(
                        f"steps[{index}].kind",
                        "'shadow' needs a data plane that copies requests; HAProxy has no "
                        "request mirroring (use driver builtin, nginx or gateway-api, or drop "
                        "the step)",
                    )
                )
            if step.kind == "testers" and settings.testers is None:
                issues.append(
                    Issue(
                        f"{block}.testers",
                        f"is required: steps[{index}] is a testers step, and driver "
                        f"{self.driver} needs the tester tokens to route",
                    )
                )
        if isinstance(settings, HAProxySettings) and settings.testers and not settings.testers_acl:
            issues.append(Issue("haproxy.testers_acl", "is required with haproxy.testers"))
        return issues

    @property
    def driver_settings(self) -> HAProxySettings | NginxSettings | GatewaySettings | None:
        """The settings block of the plan's driver (None for the built-in proxy)."""
        return {"haproxy": self.haproxy, "nginx": self.nginx, "gateway-api": self.gateway}.get(
            self.driver
        )

    @cached_property
    def judge_configs(self) -> Mapping[int, JudgeConfig]:
        """The sequential judge's settings of each canary step, by step index: the named
        settings with the step's ``min_duration_s``/``max_duration_s`` and the plan's service."""
        configs: dict[int, JudgeConfig] = {}
        for index, step in enumerate(self.steps):
            if isinstance(step, CanaryStep):
                base = JudgeConfig.from_mapping(self.judges.get(step.judge, {}), where="judge")
                configs[index] = replace(
                    base,
                    min_duration_s=step.min_duration_s,
                    max_duration_s=step.max_duration_s,
                    service=self.service,
                )
        return configs


def _judge_issues(name: str, settings: Mapping[str, Any]) -> list[Issue]:
    where = f"judges.{name}" if name.isidentifier() else f"judges[{name!r}]"
    allowed = [f.name for f in fields(JudgeConfig) if f.name not in PLAN_FIELDS_FROM_STEP]
    issues: list[Issue] = []
    for key in settings:
        if key in PLAN_FIELDS_FROM_STEP:
            issues.append(
                Issue(
                    f"{where}.{key}",
                    "is set by the plan, not here: min_duration_s and max_duration_s on the "
                    "canary step, service at the top",
                )
            )
        elif key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
            hint = (
                f"did you mean {close[0]!r}?" if close else f"expected one of {', '.join(allowed)}"
            )
            issues.append(Issue(f"{where}.{key}", f"unknown key; {hint}"))
    if issues:
        return issues
    try:
        JudgeConfig.from_mapping(settings, where=where)
    except ValidationError as exc:
        return list(exc.issues)
    return []


def _duplicates(values: tuple[str, ...], path: str, taken: set[str] | None = None) -> list[Issue]:
    """An issue for each repeat of an earlier value, or of a value already ``taken``."""
    seen: set[str] = set()
    issues = []
    for index, value in enumerate(values):
        if taken is not None and value in taken:
            issues.append(Issue(f"{path}[{index}]", f"{value!r} is also a stable address"))
        elif value in seen:
            issues.append(Issue(f"{path}[{index}]", f"{value!r} is used twice"))
        seen.add(value)
    return issues


def _raise(issues: list[Issue]) -> None:
    if issues:
        raise IssuesError(issues)


def parse_plan(text: str, *, source: str = "<plan>") -> RolloutPlan:
    """Validate a plan's YAML (or JSON) ``text``; ``source`` names it in errors (a file name,
    ``<api>``...). Raises :class:`~stageless.errors.ValidationError` naming every bad path."""
    try:
        data = decode_document(text, "yaml")
    except ValidationError as exc:
        raise ValidationError(exc.issues, source=source) from None
    if not isinstance(data, Mapping):
        got = "an empty document" if data is None else show(data)
        raise ValidationError(
            [Issue("", f"expected a mapping with service, stable, candidate and steps, got {got}")],
            source=source,
        )
    return validate_plan(data, source=source)


def validate_plan(data: Mapping[str, Any], *, source: str = "<plan>") -> RolloutPlan:
    """Validate an already decoded plan (a JSON body, say)."""
    try:
        return RolloutPlan.model_validate(data)
    except pydantic.ValidationError as exc:
        raise ValidationError(issues_from(exc, RolloutPlan), source=source) from None


def plan_schema() -> dict[str, Any]:
    """The plan's JSON Schema (draft 2020-12), as published in ``plan.schema.json``."""
    schema = RolloutPlan.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": PLAN_SCHEMA_ID,
        **schema,
        "title": "Stageless rollout plan",
    }
