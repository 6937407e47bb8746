"""The conformance run is what docs/conformance.md says it is, scenario for scenario.

A fresh ``pytest --collect-only`` of this directory writes the per-feature counts (see
``conftest.py``); they must equal the table in docs/conformance.md, cover every feature file of
the testbed, and add up, feature by feature, to the scenarios the official Gherkin compiler
finds (one per example row). So a feature that stops collecting, a scenario lost to a name
clash, or a deselection that is not documented fails here instead of passing silently.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest
from gherkin.parser import Parser
from gherkin.pickles.compiler import Compiler
from gherkin.token_scanner import TokenScanner

from tests.flags.conformance.conftest import REPORT_ENV
from tests.flags.conformance.testbed import DESELECTED, REPO_ROOT, TESTBED

if TYPE_CHECKING:
    from gherkin.pickles.compiler import GherkinDocumentWithURI

DOCS = REPO_ROOT / "docs" / "conformance.md"
HERE = Path(__file__).resolve().parent
_ROW = re.compile(
    r"^\| `(?P<feature>[^`]+\.feature)` \| (?P<executed>\d+) \| (?P<v3>\d+) \| "
    r"(?P<deselected>\d+) \| (?P<why>.*) \|$"
)


def documented() -> dict[str, dict[str, Any]]:
    rows = {}
    for line in DOCS.read_text(encoding="utf-8").splitlines():
        match = _ROW.match(line)
        if match:
            rows[match["feature"]] = {
                "executed": int(match["executed"]),
                "executed_v3": int(match["v3"]),
                "deselected": int(match["deselected"]),
                "why": match["why"],
            }
    return rows


def gherkin_scenarios(feature: Path) -> int:
    document = Parser().parse(TokenScanner(feature.read_text(encoding="utf-8")))
    with_uri = cast("GherkinDocumentWithURI", {**document, "uri": str(feature)})
    return len(Compiler().compile(with_uri))


@pytest.fixture(scope="module")
def collected(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    report = tmp_path_factory.mktemp("conformance") / "report.json"
    command = [
        sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
        str(HERE / "test_evaluator.py"), str(HERE / "test_daemon.py"),
    ]  # fmt: skip
    env = {**os.environ, REPORT_ENV: str(report)}
    done = subprocess.run(  # noqa: S603  # our own interpreter and arguments
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result: dict[str, dict[str, Any]] = json.loads(report.read_text(encoding="utf-8"))
    return result


def test_every_testbed_feature_is_collected(collected: dict[str, dict[str, Any]]) -> None:
    features = {path.relative_to(TESTBED).as_posix() for path in TESTBED.rglob("*.feature")}
    assert set(collected) == features


def test_each_feature_collects_every_scenario_of_its_file(
    collected: dict[str, dict[str, Any]],
) -> None:
    for feature, counts in collected.items():
        expected = gherkin_scenarios(TESTBED / feature)
        assert counts["executed"] + counts["deselected"] == expected, feature


def test_counts_match_the_docs(collected: dict[str, dict[str, Any]]) -> None:
    docs = documented()
    assert set(docs) == set(collected)
    for feature, counts in collected.items():
        row = docs[feature]
        for column in ("executed", "executed_v3", "deselected"):
            assert row[column] == counts[column], (feature, column, row, counts)
        for reason in counts["reasons"]:
            assert reason in row["why"], (feature, reason)


def test_totals_match_the_docs(collected: dict[str, dict[str, Any]]) -> None:
    executed = sum(counts["executed"] for counts in collected.values())
    deselected = sum(counts["deselected"] for counts in collected.values())
    text = DOCS.read_text(encoding="utf-8")
    assert f"**{executed} scenarios run**" in text
    assert f"**{deselected} are deselected**" in text


def test_every_deselection_rule_is_used_and_documented(
    collected: dict[str, dict[str, Any]],
) -> None:
    used = {reason for counts in collected.values() for reason in counts["reasons"]}
    text = DOCS.read_text(encoding="utf-8")
    for rule in DESELECTED:
        assert rule.reason in used, f"rule deselects nothing: {rule}"
        assert rule.reason in text, f"rule not in docs/conformance.md: {rule}"
