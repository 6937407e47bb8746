"""``stageless flags``: validate and evaluate flag documents.

Exit status: 0 success; 1 the document is invalid (or, for ``eval``, the resolution is an
error); 2 a usage error or a file that cannot be read.

``validate`` and ``eval`` work on local files; ``list``, ``get``, ``apply``, ``delete`` and
``history`` work on a running control plane (stageless.cli.remote).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import click

from stageless.cli import remote
from stageless.errors import ValidationError
from stageless.flags import FlagSet, FlagType, Resolution
from stageless.sdk import SourceUnavailableError, load_flag_file

EXIT_INVALID = 1
EXIT_UNREADABLE = 2

_FILE = click.Path(dir_okay=False, path_type=Path)


@click.group()
def flags() -> None:
    """Work with flagd-compatible flag documents, local files or on a control plane."""


for _command in remote.COMMANDS:
    flags.add_command(_command)


def load_or_exit(path: Path, fractional_version: Literal[2, 3] = 2) -> FlagSet:
    """The flag set in ``path``, or exit with the errors (1) or a plain read error (2)."""
    try:
        return load_flag_file(path, fractional_version=fractional_version)
    except SourceUnavailableError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(EXIT_UNREADABLE) from exc
    except ValidationError as exc:
        count = len(exc.issues)
        click.echo(f"{path}: invalid, {count} {'error' if count == 1 else 'errors'}:", err=True)
        for issue in exc.issues:
            click.echo(f"  {issue}", err=True)
        raise SystemExit(EXIT_INVALID) from exc


@flags.command()
@click.argument("file", type=_FILE)
def validate(file: Path) -> None:
    """Check FILE (JSON or YAML, flagd format) and summarise its flags and warnings."""
    flag_set = load_or_exit(file)
    keys = list(flag_set.keys())
    warnings = flag_set.warnings
    click.echo(
        f"{file}: valid, {len(keys)} {'flag' if len(keys) == 1 else 'flags'}, "
        f"{len(warnings)} {'warning' if len(warnings) == 1 else 'warnings'}"
    )
    if keys:
        click.echo(f"  flags: {', '.join(keys)}")
    for warning in warnings:
        click.echo(f"  warning: {warning}")


def _parse_context(
    _ctx: click.Context, _param: click.Parameter, value: str | None
) -> Mapping[str, Any]:
    if value is None:
        return {}
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}") from exc
    if not isinstance(parsed, dict):
        raise click.BadParameter(
            f'expected a JSON object such as \'{{"targetingKey": "user-1"}}\', '
            f"got {type(parsed).__name__}"
        )
    return parsed


def resolution_json(resolution: Resolution) -> dict[str, Any]:
    """A resolution as the JSON object ``flags eval`` prints (OpenFeature's field names)."""
    return {
        "key": resolution.key,
        "value": resolution.value,
        "variant": resolution.variant,
        "reason": str(resolution.reason),
        "errorCode": None if resolution.error_code is None else str(resolution.error_code),
        "errorMessage": resolution.error_message,
        "metadata": dict(resolution.metadata),
    }


@flags.command(name="eval")
@click.argument("file", type=_FILE)
@click.argument("key")
@click.option(
    "--context",
    "context",
    callback=_parse_context,
    metavar="JSON",
    help='Evaluation context as a JSON object, e.g. \'{"targetingKey": "user-1"}\'.',
)
@click.option(
    "--type",
    "flag_type",
    type=click.Choice([t.value for t in FlagType]),
    help="Check the flag's type as a typed OpenFeature call would (TYPE_MISMATCH otherwise).",
)
@click.option(
    "--fractional-version",
    type=click.Choice(["2", "3"]),
    default="2",
    show_default=True,
    help="Hashing of the fractional operator: flagd's current v2 or the accepted v3.",
)
def evaluate(
    file: Path, key: str, context: Mapping[str, Any], flag_type: str | None, fractional_version: str
) -> None:
    """Evaluate flag KEY in FILE for a context and print the resolution as JSON."""
    version: Literal[2, 3] = 3 if fractional_version == "3" else 2
    flag_set = load_or_exit(file, version)
    resolution = flag_set.evaluate(key, context, None if flag_type is None else FlagType(flag_type))
    click.echo(json.dumps(resolution_json(resolution), indent=2, default=str))
    if resolution.error_code is not None:
        raise SystemExit(EXIT_INVALID)
