"""``stageless diff show``: the response diff report of a dark launch, in the terminal.

The report comes from a file (the JSON the proxy serves at its admin ``/diff``, saved) or
straight from a running proxy (``--url``; by default ``http://127.0.0.1:9901/diff`` when no
FILE is given). Exit status: 0 no endpoint is critical, 1 at least one endpoint is critical (a
field cleared the noise filter), 2 the report cannot be read (bad usage, unreadable file,
unreachable proxy, invalid report).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import httpx
from rich.console import Console
from rich.table import Table
from rich.text import Text

from stageless.diff import DiffReport, EndpointReport, FieldReport
from stageless.errors import ValidationError

DEFAULT_URL = "http://127.0.0.1:9901/diff"
EXIT_OK = 0
EXIT_CRITICAL = 1
EXIT_UNREADABLE = 2


def fail(message: str) -> SystemExit:
    click.echo(f"error: {message}", err=True)
    return SystemExit(EXIT_UNREADABLE)


def fetch(url: str, timeout: float) -> Any:
    """The JSON document at ``url``."""
    try:
        response = httpx.get(url, timeout=timeout)
    except httpx.HTTPError as exc:
        raise fail(f"cannot reach {url}: {exc}") from exc
    if response.status_code != 200:
        raise fail(f"{url} answered {response.status_code}, expected 200")
    try:
        return response.json()
    except ValueError as exc:
        raise fail(f"{url} did not answer JSON: {exc}") from exc


def read(path: Path) -> Any:
    """The JSON document in ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise fail(f"cannot read {path}: {reason}") from exc
    try:
        return json.loads(text)
    except ValueError as exc:
        raise fail(f"{path} is not JSON: {exc}") from exc


def _percent(value: float) -> str:
    return f"{value:.3g}"


def _kinds(kinds: tuple[tuple[str, int], ...]) -> str:
    if len(kinds) == 1:
        return kinds[0][0]
    return ", ".join(f"{kind} ×{n:,}" for kind, n in kinds)


def _noise(f: FieldReport) -> str:
    """The noise count, and the estimate the filter read where the two differ (noise measured
    on fewer requests than were compared)."""
    if f.noise_estimate == f.noise:
        return f"{f.noise:,}"
    return f"{f.noise:,} (≈{f.noise_estimate:,.0f})"


def _summary(endpoint: EndpointReport) -> Text:
    text = Text()
    text.append(endpoint.endpoint, style="bold")
    text.append(
        f": {endpoint.total:,} compared, {endpoint.differing:,} differing, "
        f"noise measured on {endpoint.noise_sampled:,}"
    )
    if endpoint.untracked_differences:
        text.append(f", {endpoint.untracked_differences:,} differences at untracked paths")
    text.append(" — ")
    if endpoint.critical:
        text.append("CRITICAL", style="bold red")
    else:
        text.append("ok", style="green")
    return text


def render_endpoint(endpoint: EndpointReport, console: Console, show_all: bool) -> None:
    """One endpoint: its summary line and a table of its fields (reported ones only, unless
    ``show_all``), each with its counts, scores and one example."""
    console.print(_summary(endpoint), highlight=False)
    fields = endpoint.fields if show_all else endpoint.reported()
    hidden = len(endpoint.fields) - len(fields)
    if fields:
        table = Table(show_edge=False, pad_edge=False)
        table.add_column("field", overflow="fold")
        table.add_column("kinds", overflow="fold")
        for name in ("raw", "noise", "rel %", "abs %"):
            table.add_column(name, justify="right")
        table.add_column("reported")
        table.add_column("example (primary → candidate)", overflow="fold")
        for f in fields:
            shown = "-"
            if f.examples:
                example = f.examples[0]
                shown = f"{example.primary} → {example.candidate}"
                if example.request:
                    shown = f"{example.request}: {shown}"
            table.add_row(
                Text(f.path, style="bold" if f.reported else "dim"),
                _kinds(f.kinds),
                f"{f.raw:,}",
                _noise(f),
                _percent(f.relative),
                _percent(f.absolute),
                Text("yes", style="red") if f.reported else Text("no", style="dim"),
                Text(shown),
            )
        console.print(table)
    if hidden:
        noun = "field" if hidden == 1 else "fields"
        console.print(f"  {hidden} {noun} below the noise filter (--all lists them)")
    elif not endpoint.fields:
        console.print("  no differences")


def render(report: DiffReport, console: Console, show_all: bool = False) -> None:
    """The whole report: every endpoint, then the thresholds and anything not tracked."""
    if not report.endpoints:
        console.print("No requests compared yet.")
    for endpoint in report.endpoints:
        render_endpoint(endpoint, console, show_all)
        console.print()
    t = report.thresholds
    console.print(
        f"Noise filter: reported when raw > noise, relative > {t.relative:g} % and "
        f"absolute > {t.absolute:g} %.",
        highlight=False,
    )
    if report.untracked_requests:
        console.print(
            f"{report.untracked_requests:,} requests at endpoints beyond the tracking cap.",
            highlight=False,
        )


@click.group()
def diff() -> None:
    """Response diffs of a dark launch (shadowed requests compared with stable)."""


@diff.command()
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--url",
    default=None,
    help=f"Read the report from a running proxy's admin endpoint [default: {DEFAULT_URL}].",
)
@click.option(
    "--all",
    "show_all",
    is_flag=True,
    help="Also list the fields below the noise filter.",
)
@click.option("--timeout", type=float, default=5.0, show_default=True, help="Seconds, for --url.")
def show(file: Path | None, url: str | None, show_all: bool, timeout: float) -> None:
    """Show the diff report in FILE, or the one a running proxy serves at --url."""
    if file is not None and url is not None:
        raise click.UsageError("give FILE or --url, not both")
    data = read(file) if file is not None else fetch(url or DEFAULT_URL, timeout)
    try:
        report = DiffReport.from_json(data)
    except ValidationError as exc:
        raise fail(str(exc)) from exc
    render(report, Console(), show_all)
    raise SystemExit(EXIT_CRITICAL if report.critical else EXIT_OK)


__all__ = ["DEFAULT_URL", "diff", "render", "render_endpoint"]
