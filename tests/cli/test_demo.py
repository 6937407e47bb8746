"""`stageless demo --flags`: evaluates the example flags for sample users, from any directory.

The rollout story that `stageless demo` runs without options is tested in tests/demo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from stageless.cli import main
from stageless.cli.demo import SAMPLE_USERS, example_flags_path
from stageless.sdk import load_flag_file

STAGELESS = Path(sys.executable).with_name("stageless")


def test_the_packaged_example_is_valid_and_realistic() -> None:
    flags = load_flag_file(example_flags_path())
    assert not flags.warnings
    reasons = {
        str(flags.evaluate(key, user).reason) for user in SAMPLE_USERS for key in list(flags.keys())
    }
    assert {"STATIC", "TARGETING_MATCH", "DEFAULT", "DISABLED"} <= reasons
    split = {flags.evaluate("checkout-flow", user).value for user in SAMPLE_USERS[1:]}
    assert split == {"classic", "one-page"}, "the sample users should show both sides of the split"


def test_demo_prints_a_table_for_every_user_and_flag() -> None:
    result = CliRunner().invoke(main, ["demo", "--flags"])
    assert result.exit_code == 0, result.output
    for user in SAMPLE_USERS:
        assert str(user["targetingKey"]) in result.output
    for key in ("payments-enabled", "checkout-flow", "search-settings", "dark-mode"):
        assert key in result.output
    assert "TARGETING_MATCH" in result.output
    assert "DISABLED" in result.output


def test_demo_with_another_file(tmp_path: Path) -> None:
    path = tmp_path / "mine.json"
    path.write_text(
        json.dumps(
            {"flags": {"solo": {"state": "ENABLED", "variants": {"x": "x"}, "defaultVariant": "x"}}}
        )
    )
    result = CliRunner().invoke(main, ["demo", "--flags", str(path)])
    assert result.exit_code == 0, result.output
    assert "solo" in result.output


def test_demo_with_a_missing_file_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["demo", "--flags", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "cannot read flag file" in result.stderr


def test_the_console_script_runs_the_demo_from_any_directory(tmp_path: Path) -> None:
    result = subprocess.run(  # noqa: S603 - our own console script, fixed arguments
        [str(STAGELESS), "demo", "--flags"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={**os.environ, "COLUMNS": "160"},
    )
    assert result.returncode == 0, result.stderr
    assert "checkout-flow" in result.stdout
    assert "ann@example.com" in result.stdout
