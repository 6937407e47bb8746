"""The rollout plan: every validation message with its exact path, defaults, the judge settings
each canary step gets, the shipped example, and the published JSON Schema."""

from __future__ import annotations

import copy
import json
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from stageless.analysis.config import JudgeConfig
from stageless.errors import ValidationError
from stageless.rollout.plan import (
    CanaryStep,
    ShadowStep,
    TestersStep,
    parse_plan,
    plan_schema,
    validate_plan,
)
from tests.rollout.factories import CANARY, PROMOTE, SHADOW, TESTERS, WEBHOOK, document

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "src/stageless/rollout/plan.schema.json"
REGENERATE = (
    ".venv/bin/python -c 'import json; from stageless.rollout.plan import plan_schema; "
    "print(json.dumps(plan_schema(), indent=2))' > src/stageless/rollout/plan.schema.json"
)


def example_text() -> str:
    return (resources.files("stageless") / "examples" / "rollout-plan.yaml").read_text()


def issues(data: Any) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        validate_plan(data)
    return [str(issue) for issue in caught.value.issues]


def test_the_shipped_example_is_a_valid_plan() -> None:
    plan = parse_plan(example_text(), source="rollout-plan.yaml")
    assert plan.service == "checkout"
    assert [step.kind for step in plan.steps] == [
        "shadow",
        "testers",
        "canary",
        "canary",
        "promote",
    ]
    shadow, testers, first, second, _ = plan.steps
    assert isinstance(shadow, ShadowStep) and shadow.until.compared == 2000
    assert isinstance(testers, TestersStep) and testers.webhook is not None
    assert isinstance(first, CanaryStep) and first.judge == "default"
    assert isinstance(second, CanaryStep) and second.on_timeout == "rollback"
    assert plan.judge_configs[3].alpha == 0.01
    assert plan.judge_configs[3].error_margin == 1.2
    assert plan.webhooks[0].url == "https://hooks.example.com/stageless"


def test_defaults() -> None:
    plan = validate_plan(
        document({"kind": "shadow"}, {"kind": "testers"}, {"kind": "canary", "weight": 1})
    )
    shadow, testers, canary, _ = plan.steps
    assert plan.driver == "builtin"
    assert plan.rollback.on_invalid == "pause"
    assert plan.webhooks == ()
    assert plan.judges == {}
    assert isinstance(shadow, ShadowStep)
    assert (shadow.share, shadow.until.compared, shadow.until.duration_s) == (100.0, 1000, 1800.0)
    assert (shadow.expected_fields, shadow.max_unexpected_fields, shadow.max_error_percent) == (
        (),
        0,
        1.0,
    )
    assert isinstance(testers, TestersStep)
    assert (testers.approval, testers.webhook) == ("manual", None)
    assert isinstance(canary, CanaryStep)
    assert (canary.min_duration_s, canary.max_duration_s) == (300.0, 3600.0)
    assert (canary.on_timeout, canary.judge) == ("pause", "default")


def test_each_canary_step_gets_its_judge_settings_with_the_steps_durations() -> None:
    plan = validate_plan(
        document(
            {**CANARY, "judge": "strict", "min_duration_s": 120, "max_duration_s": 900},
            {**CANARY, "weight": 50},
            judges={"strict": {"alpha": 0.01, "metrics": ["errors"]}, "default": {"k": 10}},
        )
    )
    strict, default = plan.judge_configs[0], plan.judge_configs[1]
    assert set(plan.judge_configs) == {0, 1}
    assert (strict.alpha, strict.metrics, strict.k) == (0.01, ("errors",), JudgeConfig().k)
    assert (strict.min_duration_s, strict.max_duration_s, strict.service) == (120, 900, "checkout")
    assert (default.alpha, default.k) == (JudgeConfig().alpha, 10)
    assert (default.min_duration_s, default.max_duration_s) == (60, 600)


def broken(path: str, value: Any, *, remove: bool = False) -> dict[str, Any]:
    """The base document with ``path`` (dotted, list indexes as numbers) set to ``value``."""
    data = document(SHADOW, WEBHOOK, CANARY, judges={"strict": {"alpha": 0.01}})
    *parents, last = path.split(".")
    target: Any = data
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    key: Any = int(last) if last.isdigit() else last
    if remove:
        del target[key]
    else:
        target[key] = value
    return data


CASES = [
    ("steps.2.weight", 140, "steps[2].weight: 140 is not between 0 and 100"),
    ("steps.2.weight", 0, "steps[2].weight: 0 is not above 0"),
    ("steps.2.weight", 2.0005, "steps[2].weight: 2.0005 is not a multiple of 0.001"),
    ("steps.2.weight", "5", "steps[2].weight: expected a number, got '5'"),
    ("steps.2.weight", True, "steps[2].weight: expected a number, got true"),
    ("steps.2.min_duration_s", -1, "steps[2].min_duration_s: -1 is not between 0 and 1000000000"),
    (
        "steps.2.max_duration_s",
        0,
        "steps[2].max_duration_s: 0 is not positive; expected a number of seconds > 0",
    ),
    (
        "steps.2.max_duration_s",
        30,
        "steps[2].min_duration_s: 60 is longer than max_duration_s (30)",
    ),
    (
        "steps.2.on_timeout",
        "wait",
        "steps[2].on_timeout: 'wait' is not one of 'pause', 'rollback', 'proceed'",
    ),
    (
        "steps.2.judge",
        "lenient",
        "steps[2].judge: 'lenient' is not defined; expected one of "
        "default, strict (judges are defined under judges)",
    ),
    ("steps.2.wieght", 5, "steps[2].wieght: unknown key; did you mean 'weight'?"),
    ("steps.0.share", 0, "steps[0].share: 0 is not above 0"),
    ("steps.0.share", 100.5, "steps[0].share: 100.5 is not between 0 and 100"),
    (
        "steps.0.until",
        {"compared": None, "duration_s": None},
        "steps[0].until: expected compared, duration_s or both; a shadow step must end",
    ),
    (
        "steps.0.until",
        {"compared": 0},
        "steps[0].until.compared: 0 is not between 1 and 1000000000000",
    ),
    ("steps.0.max_error_percent", 101, "steps[0].max_error_percent: 101 is not between 0 and 100"),
    (
        "steps.0.max_unexpected_fields",
        -1,
        "steps[0].max_unexpected_fields: -1 is not between 0 and 1000000000000",
    ),
    (
        "steps.0.expected_fields",
        "body.x",
        "steps[0].expected_fields: expected a list, got 'body.x'",
    ),
    ("steps.1.webhook", None, "steps[1].webhook: is required when approval is 'webhook'"),
    (
        "steps.1.webhook",
        {"url": "ftp://x"},
        "steps[1].webhook.url: 'ftp://x' is not an http:// or https:// URL with a host",
    ),
    (
        "steps.1.webhook",
        {"url": "https://ci", "timeout_s": -5},
        "steps[1].webhook.timeout_s: -5 is not positive; expected a number of seconds > 0",
    ),
    ("steps.1.approval", "auto", "steps[1].approval: 'auto' is not one of 'manual', 'webhook'"),
    (
        "steps.1.kind",
        "testing",
        "steps[1].kind: 'testing' is not one of shadow, testers, canary, promote",
    ),
    (
        "steps.1",
        {"weight": 5},
        "steps[1].kind: is required; expected one of shadow, testers, canary, promote",
    ),
    ("steps.1", 5, "steps[1]: expected a mapping, got 5"),
    ("steps", [], "steps: expected at least one step, the last one promote"),
    ("steps", None, "steps: expected a list, got null"),
    ("steps", None, "steps: is required"),
    ("steps.3", CANARY, "steps[3].kind: 'canary': the last step must be promote"),
    ("steps.0", PROMOTE, "steps[0].kind: promote must be the last step"),
    (
        "service",
        "check out",
        "service: 'check out' is not a valid name; expected 1-63 letters, "
        "digits, '.', '_' or '-', starting with a letter or digit",
    ),
    ("service", None, "service: is required"),
    (
        "driver",
        "envoy",
        "driver: 'envoy' is not one of 'builtin', 'haproxy', 'nginx', 'gateway-api'",
    ),
    ("stable", {"addresses": []}, "stable: expected at least one address"),
    (
        "stable",
        {"addresses": ["10.0.0.1"]},
        "stable.addresses[0]: '10.0.0.1' is not host:port, e.g. 10.0.0.11:8000",
    ),
    (
        "stable",
        {"addresses": ["10.0.0.1:99999"]},
        "stable.addresses[0]: '10.0.0.1:99999' has "
        "port '99999'; expected a number between 1 and 65535",
    ),
    (
        "stable",
        {"addresses": ["a b:80"]},
        "stable.addresses[0]: 'a b:80': 'a b' is not a "
        "hostname or IP address (IPv6 goes in brackets)",
    ),
    ("stable", {"addresses": ["a:1", "a:1"]}, "stable.addresses[1]: 'a:1' is used twice"),
    (
        "candidate",
        {"addresses": ["127.0.0.1:8001"]},
        "candidate.addresses[0]: '127.0.0.1:8001' is also a stable address",
    ),
    ("stable", {"adresses": ["a:1"]}, "stable.adresses: unknown key; did you mean 'addresses'?"),
    (
        "rollback",
        {"on_invalid": "proceed"},
        "rollback.on_invalid: 'proceed' is not one of 'pause', 'rollback'",
    ),
    (
        "webhooks",
        [{"url": "hooks.example.com"}],
        "webhooks[0].url: 'hooks.example.com' is not an http:// or https:// URL with a host",
    ),
    (
        "judges",
        {"strict": {"alpha": 2}},
        "judges.strict.alpha: 2 is out of range; expected 0 < alpha < 1",
    ),
    (
        "judges",
        {"strict": {"alhpa": 0.1}},
        "judges.strict.alhpa: unknown key; did you mean 'alpha'?",
    ),
    (
        "judges",
        {"strict": {"min_duration_s": 10}},
        "judges.strict.min_duration_s: is set by the "
        "plan, not here: min_duration_s and max_duration_s on the canary step, service at the top",
    ),
    (
        "judges",
        {"my judge": {}},
        "judges['my judge']: 'my judge' is not a valid name; expected "
        "1-63 letters, digits, '.', '_' or '-', starting with a letter or digit",
    ),
    ("judges", {"strict": 5}, "judges.strict: expected a mapping, got 5"),
    (
        "steps.2.extra",
        1,
        "steps[2].extra: unknown key; expected one of kind, weight, "
        "min_duration_s, max_duration_s, on_timeout, judge",
    ),
    (
        "nonsense",
        1,
        "nonsense: unknown key; expected one of service, stable, candidate, driver, "
        "proxy_config, haproxy, nginx, gateway, steps, judges, rollback, webhooks",
    ),
]


@pytest.mark.parametrize(("path", "value", "expected"), CASES, ids=[c[2][:60] for c in CASES])
def test_each_problem_names_its_path(path: str, value: Any, expected: str) -> None:
    remove = expected.endswith(": is required")
    assert expected in issues(broken(path, value, remove=remove))


def test_canary_weights_only_go_up() -> None:
    data = document(CANARY, {**CANARY, "weight": 25}, {**CANARY, "weight": 10})
    assert issues(data) == [
        "steps[2].weight: 10 is lower than steps[1]'s 25; a canary's weight only goes up"
    ]
    validate_plan(document(CANARY, CANARY, {**CANARY, "weight": 100}))  # equal is fine


def test_every_problem_is_reported_at_once() -> None:
    data = document({**CANARY, "weight": 140}, {**SHADOW, "share": -1}, {"kind": "what"})
    assert issues(data) == [
        "steps[0].weight: 140 is not between 0 and 100",
        "steps[1].share: -1 is not between 0 and 100",
        "steps[2].kind: 'what' is not one of shadow, testers, canary, promote",
    ]


def test_manual_approval_takes_no_webhook() -> None:
    step = {**TESTERS, "webhook": {"url": "https://ci.example.com"}}
    assert issues(document(step)) == ["steps[0].webhook: is only used when approval is 'webhook'"]


@pytest.mark.parametrize(
    ("address", "ok"),
    [
        ("[::1]:8000", True),
        ("localhost:1", True),
        ("svc.namespace.svc.cluster.local:80", True),
        (":80", False),
        ("[::1]", False),
        ("host:0", False),
        ("host:８０", False),
    ],
)
def test_addresses(address: str, ok: bool) -> None:
    data = document(CANARY)
    data["stable"] = {"addresses": [address]}
    if ok:
        assert validate_plan(data).stable.addresses == (address,)
    else:
        assert issues(data)[0].startswith("stable.addresses[0]: ")


def test_text_errors_name_the_source() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_plan("service: a\nservice: b\n", source="plan.yaml")
    assert caught.value.source == "plan.yaml"
    assert "duplicate key 'service'" in str(caught.value)
    for text, got in [("", "an empty document"), ("- 1\n", "a list"), ("5", "5")]:
        with pytest.raises(ValidationError) as caught:
            parse_plan(text, source="p.yaml")
        assert [str(i) for i in caught.value.issues] == [
            f"expected a mapping with service, stable, candidate and steps, got {got}"
        ]
    with pytest.raises(ValidationError) as caught:
        parse_plan(yaml.safe_dump(broken("steps.2.weight", 140)), source="p.yaml")
    assert str(caught.value) == "p.yaml: 1 problem\n  steps[2].weight: 140 is not between 0 and 100"


def test_json_text_is_a_plan_too() -> None:
    plan = parse_plan(json.dumps(document(CANARY)))
    assert plan.steps[0].kind == "canary"


def test_plans_are_frozen() -> None:
    plan = validate_plan(document(CANARY))
    with pytest.raises(Exception, match="frozen"):
        plan.service = "other"


# -- the JSON Schema ---------------------------------------------------------------------------


def test_the_checked_in_schema_is_the_generated_one() -> None:
    generated = json.dumps(plan_schema(), indent=2) + "\n"
    assert SCHEMA_FILE.read_text() == generated, f"plan.schema.json is stale; run: {REGENERATE}"


def test_the_schema_is_shipped_in_the_package() -> None:
    shipped = (resources.files("stageless") / "rollout" / "plan.schema.json").read_text()
    assert json.loads(shipped) == plan_schema()


def validator() -> jsonschema.Draft202012Validator:
    schema = plan_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_the_example_and_the_test_plans_validate_against_the_schema() -> None:
    check = validator()
    check.validate(yaml.safe_load(example_text()))
    for data in (
        document(SHADOW, WEBHOOK, CANARY, judges={"strict": {"alpha": 0.01}}),
        document({"kind": "shadow"}, TESTERS, {"kind": "canary", "weight": 0.001}),
    ):
        check.validate(data)
        validate_plan(data)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("steps.2.weight", 140),
        ("steps.2.weight", 0),
        ("steps.2.on_timeout", "wait"),
        ("steps.0.share", 0),
        ("steps.0.until", {"compared": 0}),
        ("steps.1.kind", "testing"),
        ("steps.1.webhook", {"url": "ftp://x"}),
        ("driver", "envoy"),
        ("nonsense", 1),
        ("judges", {"strict": {"alhpa": 0.1}}),
        ("judges", {"strict": {"min_duration_s": 10}}),
        ("judges", {"strict": {"alpha": "x"}}),
        ("service", "check out"),
        ("judges", {"my judge": {}}),
    ],
)
def test_the_schema_refuses_what_the_models_refuse(path: str, value: Any) -> None:
    data = broken(path, value)
    assert issues(data)
    assert list(validator().iter_errors(data)), f"the schema accepts {path}={value!r}"


def test_the_judge_settings_schema_lists_every_judge_setting_but_the_plans() -> None:
    judges = plan_schema()["properties"]["judges"]
    assert judges["additionalProperties"] is False
    (judge,) = judges["patternProperties"].values()
    names = set(JudgeConfig.__dataclass_fields__)
    assert set(judge["properties"]) == names - {"min_duration_s", "max_duration_s", "service"}


def test_a_plan_document_round_trips_through_the_models() -> None:
    data = yaml.safe_load(example_text())
    plan = validate_plan(data)
    again = validate_plan(json.loads(json.dumps(plan.model_dump(mode="json"))))
    assert again == plan
    assert copy.deepcopy(plan) == plan
