"""`stageless rollout start|status|pause|resume|promote|abort|approve|history` against a real
control plane (uvicorn on loopback, its runner driving a scripted driver)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from stageless.cli import main
from stageless.cli.remote import EXIT_NOT_FOUND, EXIT_REFUSED, EXIT_UNAUTHORIZED, EXIT_USAGE
from tests.controller.support import ControlPlane, Drivers, control_plane

PLAN = """\
service: shop
stable: {addresses: ["127.0.0.1:9001"]}
candidate: {addresses: ["127.0.0.1:9002"]}
steps:
  - {kind: testers}
  - {kind: canary, weight: 10, min_duration_s: 30, max_duration_s: 86400}
  - {kind: promote}
judges: {default: {min_canary_requests: 200, warmup_s: 0}}
"""


@pytest.fixture
def cp(tmp_path: Path) -> Iterator[ControlPlane]:
    with control_plane(tmp_path / "server", Drivers()) as running:
        yield running


def run(cp: ControlPlane, *args: str, who: str = "write") -> Result:
    env = {"STAGELESS_SERVER": cp.url, "STAGELESS_TOKEN": cp.tokens[who]}
    return CliRunner().invoke(main, ["rollout", *args], env=env)


def started(cp: ControlPlane, tmp_path: Path) -> str:
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN)
    result = run(cp, "start", "-f", str(plan), "--json")
    assert result.exit_code == 0, result.output
    rollout: str = json.loads(result.stdout)["id"]
    return rollout


def test_start_status_approve_pause_resume_abort_history(cp: ControlPlane, tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN)
    result = run(cp, "start", "-f", str(plan))
    assert result.exit_code == 0, result.output
    rollout = result.stdout.split(":")[0]
    assert result.stdout == f"{rollout}: started (shop, 3 steps)\n"
    cp.wait_until(rollout, lambda i: i.phase == "TESTING")
    shown = run(cp, "status", rollout, who="read")
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.splitlines()[:3] == [
        f"{rollout}: TESTING, service shop",
        "  step 1 of 3: testers, manual approval",
        "  candidate traffic: weight 0%, testers",
    ]
    listed = run(cp, "status", who="read")
    assert listed.stdout.splitlines()[1].split() == [
        rollout,
        "TESTING",
        "1/3",
        "weight",
        "0%,",
        "testers",
    ]
    assert run(cp, "approve", rollout).exit_code == 0
    cp.wait_until(rollout, lambda i: i.phase == "CANARY")
    paused = run(cp, "pause", rollout, "-m", "dashboards first")
    assert paused.stdout == f"{rollout}: pause requested (the runner acts on it within a second)\n"
    cp.wait_until(rollout, lambda i: i.phase == "PAUSED")
    assert run(cp, "resume", rollout).exit_code == 0
    cp.wait_until(rollout, lambda i: i.phase == "CANARY")
    aborted = run(cp, "abort", rollout, "--json")
    assert json.loads(aborted.stdout)["request"]["action"] == "abort"
    cp.wait_until(rollout, lambda i: i.finished)
    history = run(cp, "history", rollout, who="read")
    assert history.exit_code == 0, history.output
    moves = [line.split()[2:5] for line in history.stdout.splitlines() if line[:4].strip()]
    assert ["PENDING", "->", "TESTING"] in moves
    assert ["CANARY", "->", "PAUSED"] in moves
    assert "pause requested by write-" in history.stdout
    assert moves[-1] == ["ROLLING_BACK", "->", "ABORTED"]
    as_json = json.loads(run(cp, "history", rollout, "--json", who="read").stdout)
    assert as_json["transitions"][0]["event"] == {
        "type": "StartRequested",
        "by": as_json["transitions"][0]["actor"],
    }
    everything = run(cp, "status", "--all", "--json", who="read")
    assert [r["phase"] for r in json.loads(everything.stdout)["rollouts"]] == ["ABORTED"]
    assert run(cp, "status", who="read").stdout == "no running rollouts\n"


def test_promote_skips_to_the_end(cp: ControlPlane, tmp_path: Path) -> None:
    rollout = started(cp, tmp_path)
    cp.wait_until(rollout, lambda i: i.phase == "TESTING")
    assert run(cp, "promote", rollout).exit_code == 0
    assert cp.wait_until(rollout, lambda i: i.finished).phase == "PROMOTED"
    shown = json.loads(run(cp, "status", rollout, "--json").stdout)
    assert shown["phase"] == "PROMOTED"


def test_an_invalid_plan_is_refused_with_every_path(cp: ControlPlane, tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"service": "shop", "steps": [{"kind": "canary", "weight": 140}]}))
    result = run(cp, "start", "-f", str(plan))
    assert result.exit_code == EXIT_REFUSED
    assert "steps[0].weight:" in result.stderr
    assert "stable:" in result.stderr


def test_refusals_have_their_exit_statuses(cp: ControlPlane, tmp_path: Path) -> None:
    missing = run(cp, "start", "-f", str(tmp_path / "nope.yaml"))
    assert missing.exit_code == EXIT_USAGE
    assert "cannot read" in missing.stderr
    rollout = started(cp, tmp_path)
    again = run(cp, "start", "-f", str(tmp_path / "plan.yaml"))
    assert again.exit_code == EXIT_REFUSED
    assert "already has a rollout running" in again.stderr
    assert run(cp, "status", "no-such-rollout").exit_code == EXIT_NOT_FOUND
    assert run(cp, "pause", rollout, who="read").exit_code == EXIT_UNAUTHORIZED
    cp.wait_until(rollout, lambda i: i.phase == "TESTING")
    run(cp, "abort", rollout)
    cp.wait_until(rollout, lambda i: i.finished)
    late = run(cp, "approve", rollout)
    assert late.exit_code == EXIT_REFUSED
    assert "is not waiting for an approval" in late.stderr
