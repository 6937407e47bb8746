"""``stageless flags list | get | apply | delete | history``: flag sets on a running control plane.

Presentation only: the HTTP work is :class:`stageless.client.ControlPlaneClient` (a typed
client that scripts and tests use too). Each command takes ``--server`` (``STAGELESS_SERVER``,
default http://127.0.0.1:7411), ``--token`` (``STAGELESS_TOKEN``) and ``--json``.

Exit status (docs/cli.md): 0 success; 1 the server refused the change (an invalid document with
every path-level error, a failed ``--if-match``, a conflict); 2 usage error or unreadable file;
3 the server cannot be reached or failed; 4 no valid token, or the token may not do this;
5 no such flag set.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, TypeVar

import click

from stageless.client import (
    DEFAULT_SERVER,
    ApiError,
    ControlPlaneClient,
    FlagSetInfo,
    ServerUnreachableError,
)

EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_UNAUTHORIZED = 4
EXIT_NOT_FOUND = 5

F = TypeVar("F", bound=Callable[..., Any])


def remote_options(command: F) -> F:
    """``--server``, ``--token`` and ``--json``, shared by every remote command."""
    command = click.option("--json", "as_json", is_flag=True, help="Print JSON.")(command)
    command = click.option(
        "--token",
        envvar="STAGELESS_TOKEN",
        metavar="TOKEN",
        help="API token (read scope to read, write to change) [env: STAGELESS_TOKEN].",
    )(command)
    return click.option(
        "--server",
        envvar="STAGELESS_SERVER",
        default=DEFAULT_SERVER,
        show_default=True,
        metavar="URL",
        help="The control plane's base URL [env: STAGELESS_SERVER].",
    )(command)


@contextmanager
def connected(server: str, token: str | None) -> Iterator[ControlPlaneClient]:
    """A client; any API error ends the command with its plain-words message and exit code."""
    try:
        with ControlPlaneClient(server, token) as client:
            yield client
    except ServerUnreachableError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(EXIT_UNREACHABLE) from exc
    except ApiError as exc:
        _report(exc, token)
        raise SystemExit(_exit_code(exc)) from exc


def _report(exc: ApiError, token: str | None) -> None:
    detail = exc.detail
    if exc.status == 401 and not token:
        detail += " (no token given: set STAGELESS_TOKEN or pass --token)"
    if exc.issues:
        # The server's detail already counts the problems ("2 problems with the input").
        click.echo(f"error: {detail}:", err=True)
        for issue in exc.issues:
            click.echo(f"  {issue}", err=True)
    else:
        click.echo(f"error: {detail}", err=True)


def _exit_code(exc: ApiError) -> int:
    if exc.status in (401, 403):
        return EXIT_UNAUTHORIZED
    if exc.status == 404:
        return EXIT_NOT_FOUND
    if exc.status >= 500:
        return EXIT_UNREACHABLE
    return EXIT_REFUSED


def echo_json(value: Any) -> None:
    """``--json`` output: indented, non-ASCII kept."""
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


def echo_versions(versions: Sequence[Any], *, as_json: bool) -> None:
    """A document's history, newest first (flag sets and proxy configs alike)."""
    if as_json:
        echo_json({"versions": [dataclasses.asdict(v) for v in versions]})
        return
    click.echo("VERSION  CREATED               AUTHOR  MESSAGE")
    for v in versions:
        click.echo(f"{v.version:>7}  {v.created_at:<20}  {v.author}  {v.message}")


def _flag_set_json(info: FlagSetInfo) -> dict[str, Any]:
    return dict(info.raw)


@click.command("list")
@remote_options
def list_flag_sets(server: str, token: str | None, as_json: bool) -> None:
    """List the flag sets on the server: name, version, last update."""
    with connected(server, token) as client:
        rows = client.list_flag_sets()
    if as_json:
        echo_json({"flag_sets": [dataclasses.asdict(row) for row in rows]})
        return
    if not rows:
        click.echo("no flag sets")
        return
    width = max(len("NAME"), *(len(row.name) for row in rows))
    click.echo(f"{'NAME':<{width}}  VERSION  UPDATED")
    for row in rows:
        click.echo(f"{row.name:<{width}}  {row.version:>7}  {row.updated_at}")


@click.command("get")
@click.argument("name")
@remote_options
def get_flag_set(name: str, server: str, token: str | None, as_json: bool) -> None:
    """Print flag set NAME's document (JSON; `--json`: with version, ETag and timestamps)."""
    with connected(server, token) as client:
        info = client.get_flag_set(name)
    if as_json:
        echo_json(_flag_set_json(info))
        return
    echo_json(info.document)
    click.echo(f"{info.name}: version {info.version}, updated {info.updated_at}", err=True)
    for warning in info.warnings:
        click.echo(f"  warning: {warning}", err=True)


_FILE = click.Path(dir_okay=False, path_type=Path)


def format_of(path: Path) -> Literal["json", "yaml"] | None:
    suffix = path.suffix.lower()
    if suffix == ".json":
        return "json"
    if suffix in (".yaml", ".yml"):
        return "yaml"
    return None


@click.command("apply")
@click.option("-f", "--file", "file", type=_FILE, required=True, help="The flag document.")
@click.option("--name", default=None, help="The flag set's name (default: the file's stem).")
@click.option("-m", "--message", default=None, help="A change message kept in the history.")
@click.option(
    "--if-match", default=None, metavar="ETAG", help="Only if the flag set is at this ETag."
)
@remote_options
def apply_flag_set(  # noqa: PLR0913 (each parameter is one CLI option)
    file: Path,
    name: str | None,
    message: str | None,
    if_match: str | None,
    server: str,
    token: str | None,
    as_json: bool,
) -> None:
    """Create or replace a flag set from FILE (JSON or YAML); the server validates it."""
    try:
        content = file.read_bytes()
    except OSError as exc:
        click.echo(f"error: cannot read {file}: {exc.strerror or exc}", err=True)
        raise SystemExit(EXIT_USAGE) from exc
    target = name or file.stem
    with connected(server, token) as client:
        applied = client.apply_flag_set(
            target, content, format=format_of(file), message=message, if_match=if_match
        )
    info = applied.flag_set
    if as_json:
        echo_json({**_flag_set_json(info), "created": applied.created})
        return
    verb = "created" if applied.created else "updated"
    click.echo(f"{info.name}: {verb}, version {info.version}")
    for warning in info.warnings:
        click.echo(f"  warning: {warning}")


@click.command("delete")
@click.argument("name")
@click.option(
    "--if-match", default=None, metavar="ETAG", help="Only if the flag set is at this ETag."
)
@remote_options
def delete_flag_set(
    name: str, if_match: str | None, server: str, token: str | None, as_json: bool
) -> None:
    """Delete flag set NAME (its history and audit entries stay)."""
    with connected(server, token) as client:
        client.delete_flag_set(name, if_match=if_match)
    if as_json:
        echo_json({"deleted": name})
    else:
        click.echo(f"{name}: deleted")


@click.command("history")
@click.argument("name")
@click.option(
    "--limit", default=20, show_default=True, type=click.IntRange(1, 1000), help="At most N."
)
@remote_options
def history(name: str, limit: int, server: str, token: str | None, as_json: bool) -> None:
    """Show flag set NAME's versions, newest first: when, who, message."""
    with connected(server, token) as client:
        versions = client.list_versions(name, limit=limit)
    echo_versions(versions, as_json=as_json)


COMMANDS = (list_flag_sets, get_flag_set, apply_flag_set, delete_flag_set, history)
"""Added to the ``stageless flags`` group by stageless.cli.flags."""

__all__ = ["COMMANDS", "connected", "echo_json", "echo_versions", "format_of", "remote_options"]
