"""``stageless serve``: run the control plane (uvicorn), with options from ``SETTINGS``.

Every setting is an option here and a ``STAGELESS_*`` variable; options win over variables,
variables over defaults. Shutdown on SIGTERM/SIGINT is graceful (``stageless.api.server``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import click

from stageless.errors import StagelessError, ValidationError
from stageless.settings import SETTINGS, Settings


def settings_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add one ``--option`` per setting (text, parsed and validated by ``Settings.load``)."""
    for setting in reversed(SETTINGS):
        command = click.option(
            setting.option,
            setting.name,
            default=None,
            metavar=setting.metavar,
            help=f"{setting.help} [env: {setting.env}]",
        )(command)
    return command


def load_settings(options: dict[str, str | None]) -> Settings:
    """Settings from the environment and ``options``; exit 2 with the problems if invalid."""
    given = {name: value for name, value in options.items() if value is not None}
    try:
        return Settings.load(os.environ, given)
    except ValidationError as exc:
        click.echo("error: invalid settings:", err=True)
        for issue in exc.issues:
            click.echo(f"  {issue}", err=True)
        raise SystemExit(2) from exc


@click.command()
@settings_options
def serve(**options: str | None) -> None:
    """Run the control plane: REST API, OFREP, live sync, metrics."""
    from stageless.api.server import run

    settings = load_settings(options)
    try:
        status = run(settings)
    except StagelessError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(1) from exc
    if status:
        raise SystemExit(status)


__all__ = ["load_settings", "serve", "settings_options"]
