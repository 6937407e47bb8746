"""Judge settings: defaults, and errors that name the setting and what was expected."""

from __future__ import annotations

import pytest

from stageless.analysis import JudgeConfig
from stageless.errors import ValidationError


def messages(exc: ValidationError) -> list[str]:
    return [str(issue) for issue in exc.issues]


def test_alpha_out_of_range_names_the_setting() -> None:
    with pytest.raises(ValidationError) as info:
        JudgeConfig(alpha=1.5)
    assert messages(info.value) == ["analysis.alpha: 1.5 is out of range; expected 0 < alpha < 1"]


def test_every_bad_setting_is_reported_at_once() -> None:
    with pytest.raises(ValidationError) as info:
        JudgeConfig.from_mapping(
            {
                "alpha": "high",
                "error_margin": 0.9,
                "metrics": ["errors", "cpu"],
                "ties": "coin",
                "min_canary_requests": -1,
            },
            where="plan.steps[2].analysis",
        )
    assert sorted(messages(info.value)) == [
        "plan.steps[2].analysis.alpha: 'high' is not a number; expected 0 < alpha < 1",
        "plan.steps[2].analysis.error_margin: 0.9 is out of range; expected a tolerated ratio > 1",
        "plan.steps[2].analysis.metrics: ('errors', 'cpu'): expected a subset of "
        "['errors', 'latency', 'tail']",
        "plan.steps[2].analysis.min_canary_requests: -1 is not a count; expected a whole number",
        "plan.steps[2].analysis.ties: 'coin' is not one of ['half', 'random']",
    ]


def test_unknown_keys_and_non_mappings_are_errors() -> None:
    with pytest.raises(ValidationError) as info:
        JudgeConfig.from_mapping({"alpah": 0.1})
    assert messages(info.value)[0].startswith("analysis.alpah: unknown setting; expected one of")
    with pytest.raises(ValidationError) as info:
        JudgeConfig.from_mapping([1, 2])
    assert messages(info.value) == ["analysis: expected a mapping of analysis settings"]


def test_unknown_keys_and_bad_values_are_reported_together() -> None:
    with pytest.raises(ValidationError) as info:
        JudgeConfig.from_mapping({"alpah": 0.1, "tail_margin": 0.5, "metrics": "errors"})
    found = messages(info.value)
    assert len(found) == 3
    assert found[0].startswith("analysis.alpah: unknown setting; expected one of")
    assert "analysis.metrics: 'errors' is not a list of metric names" in found
    assert "analysis.tail_margin: 0.5 is out of range; expected a tolerated ratio > 1" in found


def test_alpha_weights_are_checked() -> None:
    with pytest.raises(ValidationError) as info:
        JudgeConfig(alpha_weights={"errors": 1.0, "latency": 0.0, "tail": 1.0, "srm": 1.0})
    assert messages(info.value) == [
        "analysis.alpha_weights.latency: an enabled test needs a weight > 0"
    ]
    with pytest.raises(ValidationError) as info:
        JudgeConfig(alpha_weights={"errors": 1.0, "cpu": 1.0})
    assert "analysis.alpha_weights.cpu: unknown test" in messages(info.value)[0]


def test_a_mapping_builds_the_config() -> None:
    config = JudgeConfig.from_mapping(
        {"alpha": 0.01, "metrics": ["errors", "latency"], "srm": False, "max_duration_s": None}
    )
    assert config.alpha == 0.01
    assert config.enabled_tests() == ("errors", "latency")
    assert config.max_duration_s is None
    assert config.alpha_for("errors") + config.alpha_for("latency") == pytest.approx(0.01)


def test_the_pass_level_defaults_to_alpha_and_is_checked() -> None:
    assert JudgeConfig().pass_risk() == 0.05
    assert JudgeConfig(alpha=0.01).pass_risk() == 0.01
    assert JudgeConfig(alpha=0.01, pass_alpha=0.1).pass_risk() == 0.1
    with pytest.raises(ValidationError) as info:
        JudgeConfig.from_mapping({"pass_alpha": 0}, where="plan.judges.default")
    assert messages(info.value) == [
        "plan.judges.default.pass_alpha: 0 is out of range; expected 0 < pass_alpha < 1"
    ]
