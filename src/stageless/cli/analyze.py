"""``stageless analyze FILE``: judge recorded batches and explain the verdict.

FILE holds batches (docs/analysis.md): JSON lines (one batch object per line), or CSV with a
header row and the same fields flattened (``latency_samples``, ``histogram_le`` and
``histogram_counts`` are space-separated lists). Exit status: 0 PASS, 1 FAIL, 2 bad usage or
bad input (each error names its line and field), 3 INVALID, 4 INCONCLUSIVE, 5 CONTINUE (the
data ended before a decision).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource
from rich.console import Console
from rich.table import Table

from stageless.analysis import (
    Batch,
    Decision,
    Judge,
    JudgeConfig,
    KayentaConfig,
    KayentaJudge,
    SequentialJudge,
    ThresholdConfig,
    ThresholdJudge,
    Verdict,
    parse_batch,
)
from stageless.errors import Issue, ValidationError
from stageless.flags.decode import decode_document

EXIT_STATUS = {
    Verdict.PASS: 0,
    Verdict.FAIL: 1,
    Verdict.INVALID: 3,
    Verdict.INCONCLUSIVE: 4,
    Verdict.CONTINUE: 5,
}
EXIT_BAD_INPUT = 2
MAX_REPORTED = 20

CSV_COLUMNS = (
    "ts",
    "interval_s",
    "service",
    "route",
    "version",
    "traffic_class",
    "configured_share",
    "requests",
    "errors",
    "client_errors",
    "users",
    "new_users",  # optional: an empty cell or a missing column means "no count"
    "latency_samples",
    "histogram_le",
    "histogram_counts",
)


def _scalar(text: str) -> Any:
    """A CSV cell as the JSON value it stands for (left as text when it is not a number)."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def _list(text: str) -> list[Any]:
    return [bound if bound in ("+Inf", "Inf", "inf") else _scalar(bound) for bound in text.split()]


def csv_row_to_raw(row: dict[str, str]) -> dict[str, Any]:
    """One CSV row as the JSON batch object it flattens."""
    raw: dict[str, Any] = {
        key: (value if key in ("service", "route", "version", "traffic_class") else _scalar(value))
        for key, value in row.items()
        if key in CSV_COLUMNS[:11]
    }
    if row.get("new_users"):
        raw["new_users"] = _scalar(row["new_users"])
    raw["latency_ms"] = {
        "samples": _list(row.get("latency_samples") or ""),
        "histogram": {
            "le": _list(row.get("histogram_le") or ""),
            "counts": _list(row.get("histogram_counts") or ""),
        },
    }
    return raw


def read_batches(path: Path, fmt: str) -> list[Batch]:
    """Every batch in ``path``; a :class:`ValidationError` lists the bad lines and fields."""
    text = path.read_text(encoding="utf-8")
    if fmt == "auto":
        fmt = "csv" if path.suffix.lower() == ".csv" else "jsonl"
    issues: list[Issue] = []
    batches: list[Batch] = []
    items: Iterable[tuple[int, Any]]
    if fmt == "csv":
        reader = csv.DictReader(text.splitlines())
        missing = [c for c in CSV_COLUMNS[:11] if c not in (reader.fieldnames or [])]
        if missing:
            raise ValidationError([Issue("line 1", f"missing CSV columns {missing}")])
        items = ((reader.line_num, csv_row_to_raw(row)) for row in reader)
    else:
        items = _json_lines(text, issues)
    for line, raw in items:
        try:
            batches.append(parse_batch(raw, where=f"line {line}"))
        except ValidationError as exc:
            issues.extend(exc.issues)
        if len(issues) >= MAX_REPORTED:
            break
    if issues:
        raise ValidationError(issues[:MAX_REPORTED], source=str(path))
    return batches


def _json_lines(text: str, issues: list[Issue]) -> list[tuple[int, Any]]:
    items: list[tuple[int, Any]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append((number, json.loads(line)))
        except json.JSONDecodeError as exc:
            issues.append(Issue(f"line {number}", f"not valid JSON: {exc.msg}"))
    return items


#: Command-line options that set a JudgeConfig field, by option parameter name.
OPTION_FIELDS = {
    "alpha": "alpha",
    "pass_alpha": "pass_alpha",
    "error_margin": "error_margin",
    "latency_margin": "latency_margin",
    "tail_margin": "tail_margin",
    "min_canary_requests": "min_canary_requests",
    "max_duration": "max_duration_s",
    "service": "service",
    "route": "route",
}


def judge_config(config_file: Path | None, options: dict[str, Any]) -> JudgeConfig:
    """The sequential judge's settings: those of ``config_file`` (a YAML or JSON mapping with
    the keys of a plan's judge, docs/analysis.md), then the command-line ``options`` that were
    given, which win. Options left at their defaults do not override the file (their defaults
    are the judge's own)."""
    settings: dict[str, Any] = {}
    if config_file is not None:
        raw = decode_document(config_file.read_bytes())
        if not isinstance(raw, dict):
            raise ValidationError(
                [Issue("", "expected a mapping of analysis settings")], source=str(config_file)
            )
        settings.update(raw)
    settings.update({OPTION_FIELDS[name]: value for name, value in options.items()})
    try:
        return JudgeConfig.from_mapping(settings, where="analysis")
    except ValidationError as exc:
        source = str(config_file) if config_file is not None else None
        raise ValidationError(exc.issues, source=source) from None


def make_judge(name: str, config: JudgeConfig) -> Judge:
    if name == "kayenta":
        return KayentaJudge(KayentaConfig(service=config.service, route=config.route))
    if name == "threshold":
        return ThresholdJudge(ThresholdConfig(service=config.service, route=config.route))
    return SequentialJudge(config)


def _number(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "-"
    if math.isnan(value):
        return "-"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    return f"{value:.{digits}g}"


def render(decision: Decision, console: Console) -> None:
    """The decision as a table of metrics, their sentences and the summary."""
    table = Table(title=f"Verdict: {decision.verdict}", title_justify="left")
    for column in ("metric", "verdict", "effect", "estimate", "CS", "e-value", "p", "canary"):
        table.add_column(column)
    for e in decision.metrics:
        cs = "-" if e.lower is None else f"{_number(e.lower)} to {_number(e.upper)}"
        e_value = "-" if e.e_value is None else f"{_number(e.e_value)} / {_number(e.threshold)}"
        table.add_row(
            e.metric,
            str(e.verdict),
            e.effect,
            _number(e.estimate),
            cs,
            e_value,
            _number(e.p_value, 2),
            f"{e.canary:g} / {e.canary_n:g}",
        )
    console.print(table)
    for e in decision.metrics:
        console.print(f"  • {e.sentence}", highlight=False)
    console.print(decision.summary, highlight=False)
    console.print(
        f"{decision.batches:,} batches ({decision.ignored_batches:,} ignored: not user traffic "
        f"or another route), {decision.intervals:,} intervals, "
        f"{decision.canary_requests:,} canary and {decision.baseline_requests:,} baseline "
        "requests",
        highlight=False,
    )


@click.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--judge",
    "judge_name",
    type=click.Choice(["sequential", "kayenta", "threshold"]),
    default="sequential",
    show_default=True,
    help="The sequential judge, or a Kayenta-style or Flagger-style one for comparison.",
)
@click.option("--alpha", type=float, default=0.05, show_default=True, help="False-FAIL budget.")
@click.option(
    "--pass-alpha",
    type=float,
    default=None,
    help="Risk of passing a candidate beyond a margin (default: --alpha).",
)
@click.option("--error-margin", type=float, default=1.5, show_default=True)
@click.option("--latency-margin", type=float, default=0.10, show_default=True)
@click.option("--tail-margin", type=float, default=1.5, show_default=True)
@click.option("--min-canary-requests", type=int, default=500, show_default=True)
@click.option("--max-duration", type=float, default=7200.0, show_default=True, help="Seconds.")
@click.option("--service", default=None, help="Judge only this service.")
@click.option("--route", default=None, help="Judge only this route.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", "jsonl", "csv"]),
    default="auto",
    show_default=True,
    help="auto: CSV for a .csv suffix, else JSON lines.",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="A YAML or JSON file of the sequential judge's settings (a plan judge's keys, e.g. "
    "tail_extreme_quantile); the options above, when given, override it.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the decision as JSON.")
def analyze(  # noqa: PLR0913 - one parameter per command-line option
    file: Path,
    judge_name: str,
    alpha: float,
    pass_alpha: float | None,
    error_margin: float,
    latency_margin: float,
    tail_margin: float,
    min_canary_requests: int,
    max_duration: float,
    service: str | None,
    route: str | None,
    fmt: str,
    config_file: Path | None,
    as_json: bool,
) -> None:
    """Judge the recorded batches in FILE (JSON lines or CSV) and explain the verdict."""
    context = click.get_current_context()
    given = {
        name: context.params[name]
        for name in OPTION_FIELDS
        if context.get_parameter_source(name) is not ParameterSource.DEFAULT
    }
    try:
        config = judge_config(config_file, given)
        batches = read_batches(file, fmt)
    except OSError as exc:
        unread = exc.filename or file  # the settings file or the batches
        click.echo(f"error: cannot read {unread}: {exc.strerror or exc}", err=True)
        raise SystemExit(EXIT_BAD_INPUT) from exc
    except ValidationError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(EXIT_BAD_INPUT) from exc
    judge = make_judge(judge_name, config)
    judge.observe_many(batches)
    judge.flush()
    decision = judge.decision()
    if as_json:
        click.echo(json.dumps({"judge": judge_name, **decision.to_json()}, indent=2))
    else:
        render(decision, Console(soft_wrap=True))
    raise SystemExit(EXIT_STATUS[decision.verdict])
