"""``stageless rollout start | status | pause | resume | promote | abort | approve | history``.

Presentation only, over :class:`stageless.client.ControlPlaneClient`: a rollout is started from
a plan file on a running control plane, whose runner carries it out; the other commands read it
or ask it something (the runner acts within a second). Each command takes ``--server``,
``--token`` and ``--json`` like the other remote commands (``stageless.cli.remote``), with the
same exit statuses: 0 success; 1 refused (an invalid plan, with every path; the service has a
rollout running; a finished rollout); 2 usage error or unreadable file; 3 the server cannot be
reached; 4 no valid token, or the token may not do this; 5 no such rollout.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

import click

from stageless.cli.remote import EXIT_USAGE, connected, echo_json, remote_options
from stageless.client import RolloutInfo, RolloutRequestInfo

_FILE = click.Path(dir_okay=False, path_type=Path)
Action = Literal["pause", "resume", "promote", "abort", "approve"]


def _traffic(info: RolloutInfo) -> str:
    t = info.traffic
    parts = [f"weight {float(t.get('weight', 0)):g}%"]
    if t.get("testers"):
        parts.append("testers")
    if t.get("shadow"):
        parts.append(f"shadow {float(t['shadow']):g}%")
    return ", ".join(parts)


def _show(info: RolloutInfo) -> None:
    click.echo(f"{info.id}: {info.phase}, service {info.service}")
    click.echo(f"  step {info.step_number} of {info.steps}: {info.step_description}")
    click.echo(f"  candidate traffic: {_traffic(info)}")
    if info.evidence or info.decision:
        line = f"  evidence: {info.evidence} batches"
        if info.decision:
            line += f"; judge: {info.decision.get('summary') or info.decision.get('verdict')}"
        click.echo(line)
    click.echo(f"  {info.reason}")


@click.group()
def rollout() -> None:
    """Run rollouts on a control plane: start from a plan, watch, pause, promote, abort."""


@rollout.command("start")
@click.option("-f", "--file", "file", type=_FILE, required=True, help="The plan (YAML or JSON).")
@remote_options
def start(file: Path, server: str, token: str | None, as_json: bool) -> None:
    """Start a rollout from the plan in FILE; the server validates it (every bad path)."""
    try:
        content = file.read_bytes()
    except OSError as exc:
        click.echo(f"error: cannot read {file}: {exc.strerror or exc}", err=True)
        raise SystemExit(EXIT_USAGE) from exc
    kind: Literal["json", "yaml"] = "json" if file.suffix.lower() == ".json" else "yaml"
    with connected(server, token) as client:
        info = client.start_rollout(content, format=kind)
    if as_json:
        echo_json(dict(info.raw))
        return
    click.echo(f"{info.id}: started ({info.service}, {info.steps} steps)")


@rollout.command("status")
@click.argument("rollout_id", metavar="[ID]", required=False)
@click.option("--all", "show_all", is_flag=True, help="Without ID: finished rollouts too.")
@remote_options
def status(
    rollout_id: str | None, show_all: bool, server: str, token: str | None, as_json: bool
) -> None:
    """Show rollout ID, or without ID the running rollouts (--all: every one)."""
    with connected(server, token) as client:
        if rollout_id is not None:
            info = client.get_rollout(rollout_id)
            rows = [info]
        else:
            rows = client.list_rollouts(status=None if show_all else "running")
    if as_json:
        if rollout_id is not None:
            echo_json(dict(rows[0].raw))
        else:
            echo_json({"rollouts": [dict(row.raw) for row in rows]})
        return
    if rollout_id is not None:
        _show(rows[0])
        return
    if not rows:
        click.echo("no running rollouts" if not show_all else "no rollouts")
        return
    width = max(len("ID"), *(len(row.id) for row in rows))
    click.echo(f"{'ID':<{width}}  {'PHASE':<12}  STEP  TRAFFIC")
    for row in rows:
        step = f"{row.step_number}/{row.steps}"
        click.echo(f"{row.id:<{width}}  {row.phase:<12}  {step:<4}  {_traffic(row)}")


def _request(action: Action, rollout_id: str, **options: Any) -> RolloutRequestInfo:
    with connected(options["server"], options["token"]) as client:
        request = client.request_rollout(rollout_id, action, message=options.get("message"))
    if options["as_json"]:
        echo_json({"request": dataclasses.asdict(request)})
    else:
        click.echo(f"{rollout_id}: {action} requested (the runner acts on it within a second)")
    return request


def _action_command(action: Action, help_text: str) -> click.Command:
    @click.argument("rollout_id", metavar="ID")
    @click.option("-m", "--message", default=None, help="Why (kept in the rollout's history).")
    @remote_options
    def command(rollout_id: str, **options: Any) -> None:
        _request(action, rollout_id, **options)

    command.__doc__ = help_text
    return click.command(action)(command)


for _action, _help in (
    ("pause", "Pause rollout ID where it is (weights stay; a FAIL still rolls back)."),
    ("resume", "Resume paused rollout ID."),
    ("promote", "Promote rollout ID now, skipping its remaining steps and gates."),
    ("abort", "Abort rollout ID: the candidate loses all traffic in one move."),
    ("approve", "Approve the testers step rollout ID waits on."),
):
    rollout.add_command(_action_command(_action, _help))  # type: ignore[arg-type]


@rollout.command("history")
@click.argument("rollout_id", metavar="ID")
@click.option(
    "--limit", default=100, show_default=True, type=click.IntRange(1, 1000), help="At most N."
)
@remote_options
def history(rollout_id: str, limit: int, server: str, token: str | None, as_json: bool) -> None:
    """Show rollout ID's transitions, oldest first: when, from, to, who, why."""
    with connected(server, token) as client:
        entries = client.rollout_history(rollout_id, limit=limit)
    if as_json:
        echo_json({"transitions": [dataclasses.asdict(e) for e in entries]})
        return
    for entry in entries:
        move = (
            entry.to_phase
            if entry.from_phase == entry.to_phase
            else f"{entry.from_phase} -> {entry.to_phase}"
        )
        click.echo(f"{entry.seq:>4}  {entry.at}  {move}  [{entry.actor}]")
        click.echo(f"      {entry.reason}")


__all__ = ["rollout"]
