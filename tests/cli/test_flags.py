"""`stageless flags validate` and `stageless flags eval`, through CliRunner and a real process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from stageless.cli import main

STAGELESS = Path(sys.executable).with_name("stageless")

GOOD: dict[str, Any] = {
    "metadata": {"flagSetId": "shop"},
    "flags": {
        "new-checkout": {
            "state": "ENABLED",
            "variants": {"on": True, "off": False},
            "defaultVariant": "off",
            "targeting": {"if": [{"ends_with": [{"var": "email"}, "@example.com"]}, "on", None]},
        },
        "theme": {"state": "ENABLED", "variants": {"light": "light"}, "defaultVariant": "light"},
        "odd": {
            "state": "ENABLED",
            "variants": {"on": True, "off": False},
            "defaultVariant": "off",
            "targeting": {"no-such-operator": []},
        },
    },
}

BAD: dict[str, Any] = {
    "flags": {
        "new-checkout": {
            "state": "ENABLED",
            "variants": {"on": True, "off": False},
            "defaultVariant": "blue",
        },
        "theme": {"state": "MAYBE", "variants": {"light": "light"}, "defaultVariant": "light"},
    }
}


@pytest.fixture
def good(tmp_path: Path) -> Path:
    path = tmp_path / "flags.json"
    path.write_text(json.dumps(GOOD))
    return path


@pytest.fixture
def bad(tmp_path: Path) -> Path:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(BAD))
    return path


def run(*args: str) -> Any:
    return CliRunner().invoke(main, list(args))


def test_validate_a_good_file(good: Path) -> None:
    result = run("flags", "validate", str(good))
    assert result.exit_code == 0, result.output
    assert "valid, 3 flags, 1 warning" in result.output
    assert "new-checkout" in result.output
    assert "flags.odd.targeting" in result.output  # the warning names its path


def test_validate_a_bad_file_lists_every_error_with_its_path(bad: Path) -> None:
    result = run("flags", "validate", str(bad))
    assert result.exit_code == 1
    assert "invalid" in result.stderr
    assert "flags.new-checkout.defaultVariant" in result.stderr
    assert "flags.theme.state" in result.stderr


def test_validate_an_unreadable_file_exits_2_plainly(tmp_path: Path) -> None:
    result = run("flags", "validate", str(tmp_path / "missing.yaml"))
    assert result.exit_code == 2
    assert "cannot read flag file" in result.stderr
    assert "Traceback" not in result.output


def test_validate_a_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "flags.yaml"
    path.write_text(
        'flags:\n  beta:\n    state: ENABLED\n    variants: {"on": true}\n'
        '    defaultVariant: "on"\n'
    )
    result = run("flags", "validate", str(path))
    assert result.exit_code == 0, result.output
    assert "1 flag," in result.output


def test_eval_prints_the_resolution_as_json(good: Path) -> None:
    context = json.dumps({"targetingKey": "u-1", "email": "ann@example.com"})
    result = run("flags", "eval", str(good), "new-checkout", "--context", context)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "key": "new-checkout",
        "value": True,
        "variant": "on",
        "reason": "TARGETING_MATCH",
        "errorCode": None,
        "errorMessage": None,
        "metadata": {"flagSetId": "shop"},
    }


def test_eval_without_context(good: Path) -> None:
    result = run("flags", "eval", str(good), "new-checkout")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["reason"] == "DEFAULT"


def test_eval_with_a_type_reports_a_mismatch(good: Path) -> None:
    result = run("flags", "eval", str(good), "theme", "--type", "boolean")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["errorCode"] == "TYPE_MISMATCH"


def test_eval_of_an_unknown_flag(good: Path) -> None:
    result = run("flags", "eval", str(good), "nope")
    assert result.exit_code == 1
    resolution = json.loads(result.stdout)
    assert (resolution["errorCode"], resolution["value"]) == ("FLAG_NOT_FOUND", None)


@pytest.mark.parametrize("context", ["{not json", "[1, 2]"])
def test_eval_with_bad_context_names_the_option(good: Path, context: str) -> None:
    result = run("flags", "eval", str(good), "theme", "--context", context)
    assert result.exit_code == 2
    assert "--context" in result.stderr


def test_eval_of_a_bad_file_exits_1_with_the_errors(bad: Path) -> None:
    result = run("flags", "eval", str(bad), "theme")
    assert result.exit_code == 1
    assert "flags.theme.state" in result.stderr


def test_eval_fractional_version_option(good: Path) -> None:
    for version in ("2", "3"):
        result = run("flags", "eval", str(good), "theme", "--fractional-version", version)
        assert result.exit_code == 0, result.output
    assert run("flags", "eval", str(good), "theme", "--fractional-version", "4").exit_code == 2


def test_the_installed_console_script(good: Path, bad: Path) -> None:
    ok = subprocess.run(  # noqa: S603 - our own console script, fixed arguments
        [str(STAGELESS), "flags", "eval", str(good), "theme", "--context", "{}"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["value"] == "light"
    failed = subprocess.run(  # noqa: S603 - our own console script, fixed arguments
        [str(STAGELESS), "flags", "validate", str(bad)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert failed.returncode == 1
    assert "flags.new-checkout.defaultVariant" in failed.stderr
