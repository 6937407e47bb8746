"""`stageless analyze`: recorded batches in, verdict and explanation out, exit status by verdict."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from stageless.cli import main
from stageless.cli.analyze import CSV_COLUMNS
from tests.analysis.simulate import Scenario, batches


def write_jsonl(path: Path, scenario: Scenario, seed: int = 1, intervals: int = 300) -> Path:
    lines = [json.dumps(b.to_json()) for b in batches(scenario, seed, intervals)]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_csv(path: Path, scenario: Scenario, seed: int = 1, intervals: int = 300) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for b in batches(scenario, seed, intervals):
            raw: dict[str, Any] = b.to_json()
            latency = raw.pop("latency_ms")
            raw["latency_samples"] = " ".join(str(s) for s in latency["samples"])
            raw["histogram_le"] = " ".join(str(x) for x in latency["histogram"]["le"])
            raw["histogram_counts"] = " ".join(str(x) for x in latency["histogram"]["counts"])
            writer.writerow(raw)
    return path


def invoke(*args: str) -> Any:
    return CliRunner().invoke(main, ["analyze", *args])


def test_a_regression_fails_with_exit_status_1_and_an_explanation(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "b.jsonl", Scenario(share=0.10, error_ratio=3.0))
    result = invoke(str(path))
    assert result.exit_code == 1, result.output
    assert "Verdict: FAIL" in result.output
    assert "FAIL: error rate" in result.output
    assert "• latency" in result.output


def test_csv_and_json_lines_give_the_same_decision(tmp_path: Path) -> None:
    scenario = Scenario(share=0.10, histogram=True)
    jsonl = write_jsonl(tmp_path / "b.jsonl", scenario, intervals=200)
    table = write_csv(tmp_path / "b.csv", scenario, intervals=200)
    one = json.loads(invoke(str(jsonl), "--json").output)
    two = json.loads(invoke(str(table), "--json").output)
    assert one == two
    assert one["judge"] == "sequential"


@pytest.mark.parametrize(
    ("scenario", "options", "status", "verdict"),
    [
        (Scenario(share=0.10), (), 0, "PASS"),
        (Scenario(share=0.05, user_share=0.03), (), 3, "INVALID"),
        (Scenario(share=0.05), ("--max-duration", "120"), 4, "INCONCLUSIVE"),
        (Scenario(share=0.05), ("--min-canary-requests", "100000"), 5, "CONTINUE"),
    ],
)
def test_exit_status_follows_the_verdict(
    tmp_path: Path, scenario: Scenario, options: tuple[str, ...], status: int, verdict: str
) -> None:
    path = write_jsonl(tmp_path / "b.jsonl", scenario)
    result = invoke(str(path), "--json", *options)
    assert result.exit_code == status, result.output
    assert json.loads(result.output)["verdict"] == verdict


def test_the_comparison_judges_run_from_the_command_line(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "b.jsonl", Scenario(share=0.01), intervals=120)
    flagger = invoke(str(path), "--judge", "threshold")
    assert flagger.exit_code == 1
    assert "checks failed" in flagger.output
    kayenta = json.loads(invoke(str(path), "--judge", "kayenta", "--json").output)
    assert kayenta["judge"] == "kayenta"
    assert kayenta["verdict"] == "CONTINUE"  # its first judgment comes after an hour


def test_bad_input_names_the_line_and_the_field(tmp_path: Path) -> None:
    good = next(iter(batches(Scenario(), 1, 1))).to_json()
    bad = {**good, "requests": -3}
    path = tmp_path / "b.jsonl"
    path.write_text("\n".join([json.dumps(good), "{not json", json.dumps(bad)]) + "\n")
    result = invoke(str(path))
    assert result.exit_code == 2
    assert "line 2: not valid JSON" in result.output
    assert "line 3.requests: -3 is not a count; expected a whole number >= 0" in result.output


def test_bad_csv_cells_and_missing_columns_are_reported(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "b.csv", Scenario(), intervals=2)
    rows = path.read_text().splitlines()
    rows[2] = rows[2].replace(",user,", ",robot,")
    path.write_text("\n".join(rows) + "\n")
    result = invoke(str(path))
    assert result.exit_code == 2
    assert "line 3.traffic_class: 'robot' is not one of" in result.output
    headless = tmp_path / "h.csv"
    headless.write_text("ts,requests\n1,2\n")
    result = invoke(str(headless))
    assert result.exit_code == 2
    assert "line 1: missing CSV columns" in result.output


def test_bad_options_and_unreadable_files_exit_2(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "b.jsonl", Scenario(), intervals=2)
    result = invoke(str(path), "--alpha", "1.5")
    assert result.exit_code == 2
    assert "analysis.alpha: 1.5 is out of range; expected 0 < alpha < 1" in result.output
    result = invoke(str(tmp_path / "missing.jsonl"))
    assert result.exit_code == 2
    assert "cannot read" in result.output


def test_a_settings_file_configures_the_judge_and_options_override_it(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "b.jsonl", Scenario(share=0.10), intervals=60)
    settings = tmp_path / "judge.yaml"
    settings.write_text("tail_extreme_quantile: null\nerror_margin: 2.0\nmin_canary_requests: 50\n")

    def metrics(*args: str) -> dict[str, Any]:
        decision = json.loads(invoke(str(path), "--json", *args).output)
        return {m["metric"]: m for m in decision["metrics"]}

    default = metrics()
    from_file = metrics("--config", str(settings))
    overridden = metrics("--config", str(settings), "--error-margin", "1.2")

    assert "tail_extreme" in default and "tail_extreme" not in from_file
    assert (default["errors"]["margin"], from_file["errors"]["margin"]) == (1.5, 2.0)
    assert overridden["errors"]["margin"] == 1.2
    assert "tail_extreme" not in overridden  # the rest of the file still applies


def test_a_bad_settings_file_names_the_file_and_the_key(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "b.jsonl", Scenario(), intervals=2)
    settings = tmp_path / "judge.json"
    settings.write_text('{"alhpa": 0.1}')
    result = invoke(str(path), "--config", str(settings))
    assert result.exit_code == 2
    assert f"{settings}:" in result.output
    assert "analysis.alhpa: unknown setting" in result.output
    settings.write_text('{"tail_extreme_quantile": 0.5}')
    result = invoke(str(path), "--config", str(settings))
    assert result.exit_code == 2
    assert "analysis.tail_extreme_quantile: 0.5 is out of range" in result.output
    settings.write_text("[1, 2]")
    result = invoke(str(path), "--config", str(settings))
    assert result.exit_code == 2
    assert "expected a mapping of analysis settings" in result.output
    result = invoke(str(path), "--config", str(tmp_path / "missing.yaml"))
    assert result.exit_code == 2
    assert f"cannot read {tmp_path / 'missing.yaml'}" in result.output
