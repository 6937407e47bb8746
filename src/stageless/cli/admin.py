"""``stageless tokens`` and ``stageless audit``: admin work directly on the configured database.

These are the bootstrap path (the first admin token has to come from somewhere), so they do not
go through the HTTP API: they open the database named by ``--database`` / ``--data-dir`` (or
``STAGELESS_DATABASE`` / ``STAGELESS_DATA_DIR``) through the service layer, as ``serve`` does.
Changes made here are audited with the actor ``cli``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import click

from stageless.errors import StagelessError
from stageless.service import Service, open_service
from stageless.settings import Settings
from stageless.store import TokenScope

CLI_ACTOR = "cli"
EXIT_FAILED = 1


def _database_options(command: Any) -> Any:
    command = click.option(
        "--database", metavar="URL", help="Database URL [env: STAGELESS_DATABASE]"
    )(command)
    return click.option(
        "--data-dir", metavar="DIR", help="Data directory [env: STAGELESS_DATA_DIR]"
    )(command)


@contextmanager
def _service(database: str | None, data_dir: str | None) -> Iterator[Service]:
    from stageless.cli.serve import load_settings

    settings: Settings = load_settings({"database": database, "data_dir": data_dir})
    try:
        service = open_service(settings.database_url)
    except StagelessError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(EXIT_FAILED) from exc
    try:
        yield service
    except StagelessError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(EXIT_FAILED) from exc
    finally:
        service.close()


def _when(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


@click.group()
def tokens() -> None:
    """Create, list and revoke API tokens (on the configured database)."""


@tokens.command("create")
@click.option("--name", required=True, help="A name for the token (shown in the audit log).")
@click.option(
    "--scope",
    required=True,
    type=click.Choice([scope.value for scope in TokenScope]),
    help="admin > write > read; sdk tokens only evaluate and stream one flag set; proxy tokens "
    "only read and stream one proxy config.",
)
@click.option("--flag-set", default=None, help="The flag set an sdk token is bound to.")
@click.option("--proxy-config", default=None, help="The proxy config a proxy token is bound to.")
@_database_options
def create_token(
    name: str,
    scope: str,
    flag_set: str | None,
    proxy_config: str | None,
    database: str | None,
    data_dir: str | None,
) -> None:
    """Create a token and print it, once: only its hash is stored."""
    with _service(database, data_dir) as service:
        new = service.tokens.create(
            name, scope, flag_set=flag_set, proxy_config=proxy_config, actor=CLI_ACTOR
        )
    click.echo(new.plaintext)
    bound = f" for flag set {flag_set!r}" if flag_set else ""
    if proxy_config:
        bound = f" for proxy config {proxy_config!r}"
    click.echo(
        f"token {name!r} ({scope}{bound}) created; it is shown only now, keep it safe", err=True
    )


@tokens.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_database_options
def list_tokens(as_json: bool, database: str | None, data_dir: str | None) -> None:
    """List tokens (names, scopes, use; never the tokens themselves)."""
    with _service(database, data_dir) as service:
        found = service.tokens.list_all()
    if as_json:
        rows = [
            {
                "name": t.name,
                "scope": str(t.scope),
                "flag_set": t.flag_set,
                "proxy_config": t.proxy_config,
                "created_at": t.created_at,
                "last_used_at": t.last_used_at,
                "revoked_at": t.revoked_at,
            }
            for t in found
        ]
        click.echo(json.dumps({"tokens": rows}, indent=2))
        return
    if not found:
        click.echo("no tokens")
    for t in found:
        state = (
            f"revoked {_when(t.revoked_at)}" if t.revoked else f"last used {_when(t.last_used_at)}"
        )
        bound = f" flag set {t.flag_set}" if t.flag_set else ""
        if t.proxy_config:
            bound = f" proxy config {t.proxy_config}"
        click.echo(f"{t.name}  {t.scope}{bound}  created {_when(t.created_at)}  {state}")


@tokens.command("revoke")
@click.argument("name")
@_database_options
def revoke_token(name: str, database: str | None, data_dir: str | None) -> None:
    """Revoke token NAME (servers stop accepting it within a few seconds)."""
    with _service(database, data_dir) as service:
        service.tokens.revoke(name, actor=CLI_ACTOR)
    click.echo(f"token {name!r} revoked")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines, one entry each.")
@click.option("--target", default=None, help="Only entries about this, e.g. flag_set:web.")
@click.option("--after", default=0, type=int, help="Only entries after this id.")
@click.option("--limit", default=100, type=click.IntRange(1, 10_000), help="At most this many.")
@_database_options
def audit(  # each option is one CLI flag
    as_json: bool,
    target: str | None,
    after: int,
    limit: int,
    database: str | None,
    data_dir: str | None,
) -> None:
    """Show the audit log, oldest first: who changed what, when, before and after."""
    with _service(database, data_dir) as service:
        entries = service.audit.entries(after_id=after, limit=limit, target=target)
    for entry in entries:
        if as_json:
            row = {
                "id": entry.id,
                "ts": entry.ts,
                "actor": entry.actor,
                "action": str(entry.action),
                "target": entry.target,
                "before": None if entry.before is None else json.loads(entry.before),
                "after": None if entry.after is None else json.loads(entry.after),
            }
            click.echo(json.dumps(row, ensure_ascii=False))
        else:
            click.echo(
                f"{entry.id}  {_when(entry.ts)}  {entry.actor}  {entry.action}  {entry.target}"
            )
    if not entries and not as_json:
        click.echo("no entries")


__all__ = ["audit", "tokens"]
