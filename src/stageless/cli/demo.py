"""``stageless demo``: the whole story on loopback.

Without options it runs :mod:`stageless.demo.story`: a shop's stable and candidate versions,
the proxy, the control plane and thousands of simulated users; a candidate with a regression is
rolled back by itself and a good one promoted. ``--flags [FILE]`` instead evaluates a flag file
(by default the example shipped inside the package, ``stageless/examples/flags.yaml``) for a few
sample users, through the same provider an application would use.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from stageless.cli.flags import load_or_exit
from stageless.flags import Reason, Resolution

SAMPLE_USERS: tuple[Mapping[str, Any], ...] = (
    {"targetingKey": "user-1", "email": "ann@example.com", "plan": "enterprise"},
    {"targetingKey": "user-2", "email": "bo@gmail.com", "plan": "free"},
    {"targetingKey": "user-3", "email": "cy@proton.me", "plan": "pro"},
    {"targetingKey": "user-4", "email": "di@fastmail.com", "plan": "free"},
    {"targetingKey": "user-5", "email": "ed@outlook.com", "plan": "free"},
)


def example_flags_path() -> Path:
    """The example flag file shipped inside the package (works from any directory)."""
    with resources.as_file(resources.files("stageless") / "examples" / "flags.yaml") as path:
        return Path(path)


def _value(resolution: Resolution) -> str:
    if resolution.value is None:
        return "(code default)"
    return json.dumps(resolution.value, separators=(", ", ": "))


_REASON_STYLE = {
    Reason.TARGETING_MATCH: "green",
    Reason.STATIC: "cyan",
    Reason.DEFAULT: "cyan",
    Reason.DISABLED: "yellow",
    Reason.ERROR: "red",
}


@click.command()
@click.option(
    "--flags",
    "flags_file",
    is_flag=False,
    flag_value="",
    default=None,
    metavar="[FILE]",
    help="Instead of the rollout story: evaluate a flag file for sample users "
    "(without FILE: the example shipped with Stageless).",
)
def demo(flags_file: str | None) -> None:
    """Show Stageless at work: a rollout on live traffic, rolled back and then promoted."""
    if flags_file is None:
        raise SystemExit(_story())
    _flags_table(Path(flags_file) if flags_file else None)


def _story() -> int:
    import asyncio
    import signal

    import uvloop

    from stageless.demo.story import run

    async def main() -> int:
        task = asyncio.current_task()
        assert task is not None  # noqa: S101
        # SIGTERM stops the demo like Ctrl-C: everything it started is stopped first.
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        return await run(Console())

    try:
        return uvloop.run(main())
    except (KeyboardInterrupt, asyncio.CancelledError):
        Console().print("[yellow]stopped; everything the demo started has been stopped")
        return 130


def _flags_table(flags_file: Path | None) -> None:
    path = flags_file or example_flags_path()
    flag_set = load_or_exit(path)
    console = Console()
    table = Table(title=f"Flags from {path}", show_lines=False)
    table.add_column("user")
    table.add_column("flag", no_wrap=True)
    table.add_column("value", overflow="fold")
    table.add_column("variant")
    table.add_column("reason", no_wrap=True)
    keys = list(flag_set.keys())
    example = "KEY"  # a targeted flag, for the closing hint
    for user in SAMPLE_USERS:
        label = f"{user['targetingKey']}\n{user.get('email', '')}".strip()
        for key in keys:
            resolution = flag_set.evaluate(key, user)
            if resolution.reason is Reason.TARGETING_MATCH and example == "KEY":
                example = key
            style = _REASON_STYLE.get(resolution.reason, "")
            table.add_row(
                label,
                key,
                _value(resolution),
                resolution.variant or "-",
                f"[{style}]{resolution.reason}[/]" if style else str(resolution.reason),
            )
            label = ""
        table.add_section()
    console.print(table)
    if example == "KEY" and keys:
        example = keys[0]
    console.print(
        "Every row is one in-process evaluation, no network. TARGETING_MATCH rows come from a rule"
        " (staff at example.com, paying plans) or from a stable percentage split keyed on the"
        " user id, so the same user gets the same answer on every run; DISABLED flags fall back"
        " to the application's code default.\n"
        f"Try: stageless flags eval {path} {example} --context"
        ' \'{"targetingKey": "user-9"}\''
    )
