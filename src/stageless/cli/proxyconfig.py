"""``stageless proxy-config list | get | apply | delete | history``: proxy configs on a running
control plane, which pushes them to the proxies that follow them (docs/proxy.md).

Presentation only, over :class:`stageless.client.ControlPlaneClient`. Each command takes
``--server`` (``STAGELESS_SERVER``), ``--token`` (``STAGELESS_TOKEN``) and ``--json``; the exit
statuses are those of ``stageless flags`` (stageless.cli.remote): 0 success, 1 refused (an
invalid document with every path-level error, a failed ``--if-match``), 2 usage or unreadable
file, 3 server unreachable, 4 token missing or not allowed, 5 no such proxy config.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click
import yaml

from stageless.cli.remote import (
    EXIT_USAGE,
    connected,
    echo_json,
    echo_versions,
    format_of,
    remote_options,
)

_FILE = click.Path(dir_okay=False, path_type=Path)


@click.group("proxy-config")
def proxy_config() -> None:
    """Proxy configurations held by the control plane and pushed to proxies."""


@proxy_config.command("list")
@remote_options
def list_proxy_configs(server: str, token: str | None, as_json: bool) -> None:
    """List the proxy configs on the server: name, version, last update."""
    with connected(server, token) as client:
        rows = client.list_proxy_configs()
    if as_json:
        echo_json({"proxy_configs": [dataclasses.asdict(row) for row in rows]})
        return
    if not rows:
        click.echo("no proxy configs")
        return
    width = max(len("NAME"), *(len(row.name) for row in rows))
    click.echo(f"{'NAME':<{width}}  VERSION  UPDATED")
    for row in rows:
        click.echo(f"{row.name:<{width}}  {row.version:>7}  {row.updated_at}")


@proxy_config.command("get")
@click.argument("name")
@remote_options
def get_proxy_config(name: str, server: str, token: str | None, as_json: bool) -> None:
    """Print proxy config NAME as YAML (`--json`: with version, ETag and timestamps).

    Signing secrets show as redacted fingerprints unless the token is an admin token.
    """
    with connected(server, token) as client:
        info = client.get_proxy_config(name)
    if as_json:
        echo_json(dict(info.raw))
        return
    click.echo(yaml.safe_dump(dict(info.document), sort_keys=False, allow_unicode=True), nl=False)
    click.echo(f"{info.name}: version {info.version}, updated {info.updated_at}", err=True)


@proxy_config.command("apply")
@click.option("-f", "--file", "file", type=_FILE, required=True, help="The proxy YAML or JSON.")
@click.option("--name", default=None, help="The proxy config's name (default: the file's stem).")
@click.option("-m", "--message", default=None, help="A change message kept in the history.")
@click.option("--if-match", default=None, metavar="ETAG", help="Only if it is at this ETag.")
@remote_options
def apply_proxy_config(  # noqa: PLR0913 (each parameter is one CLI option)
    file: Path,
    name: str | None,
    message: str | None,
    if_match: str | None,
    server: str,
    token: str | None,
    as_json: bool,
) -> None:
    """Create or replace a proxy config from FILE; the server validates it as the proxy will,
    and every proxy following it applies the new version within a second."""
    try:
        content = file.read_bytes()
    except OSError as exc:
        click.echo(f"error: cannot read {file}: {exc.strerror or exc}", err=True)
        raise SystemExit(EXIT_USAGE) from exc
    target = name or file.stem
    with connected(server, token) as client:
        applied = client.apply_proxy_config(
            target, content, format=format_of(file), message=message, if_match=if_match
        )
    info = applied.proxy_config
    if as_json:
        echo_json({**info.raw, "created": applied.created})
        return
    verb = "created" if applied.created else "updated"
    click.echo(f"{info.name}: {verb}, version {info.version}")


@proxy_config.command("delete")
@click.argument("name")
@click.option("--if-match", default=None, metavar="ETAG", help="Only if it is at this ETag.")
@remote_options
def delete_proxy_config(
    name: str, if_match: str | None, server: str, token: str | None, as_json: bool
) -> None:
    """Delete proxy config NAME (proxies following it keep their last configuration)."""
    with connected(server, token) as client:
        client.delete_proxy_config(name, if_match=if_match)
    if as_json:
        echo_json({"deleted": name})
    else:
        click.echo(f"{name}: deleted")


@proxy_config.command("history")
@click.argument("name")
@click.option(
    "--limit", default=20, show_default=True, type=click.IntRange(1, 1000), help="At most N."
)
@remote_options
def history(name: str, limit: int, server: str, token: str | None, as_json: bool) -> None:
    """Show proxy config NAME's versions, newest first: when, who, message."""
    with connected(server, token) as client:
        versions = client.list_proxy_config_versions(name, limit=limit)
    echo_versions(versions, as_json=as_json)


__all__ = ["proxy_config"]
