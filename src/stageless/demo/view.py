"""What the demo shows: a live panel while a rollout runs, and a report when it ends (rich)."""

from __future__ import annotations

from datetime import datetime
from types import TracebackType
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from stageless.demo.traffic import Shoppers

_PHASE_STYLE = {
    "SHADOWING": "cyan",
    "TESTING": "magenta",
    "CANARY": "yellow",
    "PAUSED": "bold yellow",
    "PROMOTING": "green",
    "PROMOTED": "bold green",
    "ROLLING_BACK": "bold red",
    "ROLLED_BACK": "bold red",
    "ABORTED": "bold red",
}


class LiveView:
    """A panel redrawn twice a second: step, traffic, answers per version, the judge."""

    def __init__(self, console: Console, title: str, shoppers: Shoppers) -> None:
        self.console = console
        self.title = title
        self.shoppers = shoppers
        self.live = Live(console=console, refresh_per_second=4, transient=False)
        self.status: dict[str, Any] | None = None
        self.elapsed = 0.0

    def __enter__(self) -> LiveView:
        self.live.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.live.__exit__(exc_type, exc, tb)

    def update(self, status: dict[str, Any], elapsed: float) -> None:
        self.status = status
        self.elapsed = elapsed
        self.live.update(self.render())

    def render(self) -> Panel:
        status = self.status or {}
        phase = str(status.get("phase", "PENDING"))
        step = status.get("step", {})
        traffic = status.get("traffic", {})
        head = Text.assemble(
            (f"{phase}", _PHASE_STYLE.get(phase, "")),
            f"   step {step.get('number', '?')}/{step.get('of', '?')}: ",
            str(step.get("description", "")),
            f"   {self.elapsed:5.1f} s",
        )
        moves = Text(
            f"candidate gets: {traffic.get('weight', 0):g} % of users"
            f" · testers {'on' if traffic.get('testers') else 'off'}"
            f" · shadow {traffic.get('shadow', 0):g} % of requests"
        )
        answers = Table(box=None, pad_edge=False, show_header=True)
        for column in ("version", "answers", "ok", "5xx", "error rate"):
            answers.add_column(column, justify="right" if column != "version" else "left")
        tally = self.shoppers.tally
        for version in ("stable", "candidate"):
            total = tally.total(version)
            errors = tally.errors(version)
            rate = f"{errors / total:.2%}" if total else "-"
            ok = tally.answers[version, "ok"]
            answers.add_row(version, f"{total:,}", f"{ok:,}", f"{errors:,}", rate)
        parts: list[Any] = [head, moves, answers]
        decision = (status.get("evidence") or {}).get("decision")
        if decision:
            parts.append(Text(f"judge: {decision.get('summary', '')}", style="italic"))
        shadow = status.get("shadow")
        if shadow:
            parts.append(
                Text(
                    f"shadow: {shadow.get('compared', 0):,} compared, differing fields: "
                    f"{', '.join(shadow.get('fields', [])) or 'none'}"
                )
            )
        if status.get("reason"):
            parts.append(Text(f"why: {status['reason']}", style="dim"))
        return Panel(Group(*parts), title=self.title, border_style=_PHASE_STYLE.get(phase, "blue"))


def final_report(
    console: Console,
    status: dict[str, Any],
    history: dict[str, Any],
    diff: dict[str, Any] | None,
    shoppers: Shoppers,
    elapsed: float,
) -> None:
    """What happened in one run, after the live panel."""
    phase = str(status.get("phase"))
    table = Table(title="transitions", show_lines=False)
    table.add_column("at (s)", justify="right")
    table.add_column("from")
    table.add_column("to")
    table.add_column("why")
    transitions = history.get("transitions", [])
    first = transitions[0]["at"] if transitions else None
    for row in transitions:
        at = row.get("at")
        offset = "" if first is None or at is None else f"{_seconds(at) - _seconds(first):.1f}"
        table.add_row(offset, str(row.get("from")), str(row.get("to")), str(row.get("reason", "")))
    console.print(table)
    if diff and diff.get("endpoints"):
        fields = Table(title="shadow diff: fields the candidate answers differently")
        for column in ("endpoint", "field", "candidate differs", "noise", "reported"):
            fields.add_column(column)
        for name, endpoint in diff["endpoints"].items():
            for path, info in endpoint.get("fields", {}).items():
                fields.add_row(
                    name,
                    path,
                    f"{info.get('raw', 0)} of {endpoint.get('total', 0)}",
                    f"{info.get('noise', 0)} of {endpoint.get('noise_sampled', 0)}",
                    "yes" if info.get("reported") else "no (noise)",
                )
        console.print(fields)
    tally = shoppers.tally
    served = tally.total("candidate")
    total = served + tally.total("stable")
    share = served / total if total else 0.0
    decision = (status.get("evidence") or {}).get("decision") or {}
    console.print(
        f"[bold]{phase}[/bold] after {elapsed:.1f} s: the candidate served {served:,} of "
        f"{total:,} user answers ({share:.2%}); users saw {tally.errors('candidate'):,} candidate "
        f"and {tally.errors('stable'):,} stable 5xx; {tally.failed} requests failed in the proxy."
    )
    if decision.get("summary"):
        console.print(f"judge: {decision['summary']}")
    if status.get("reason"):
        console.print(f"why: {status['reason']}")
    console.print()


def _seconds(value: Any) -> float:
    if isinstance(value, int | float):
        return float(value)
    return datetime.fromisoformat(str(value)).timestamp()  # Python 3.11 reads the "Z"


__all__ = ["LiveView", "final_report"]
