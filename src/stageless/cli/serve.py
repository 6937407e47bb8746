"""``stageless serve``: run the control plane (uvicorn), with options from ``SETTINGS``.

Every setting is an option here and a ``STAGELESS_*`` variable; options win over variables,
variables over defaults. SIGTERM and SIGINT shut down gracefully: the server stops accepting,
open event streams end (clients reconnect elsewhere), requests in flight get
``graceful_timeout_s`` to finish, then the store closes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from types import FrameType
from typing import Any

import click
import uvicorn

from stageless.errors import StagelessError, ValidationError
from stageless.settings import SETTINGS, Settings, redact_url

log = logging.getLogger("stageless.serve")


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


class _Server(uvicorn.Server):
    """uvicorn's server, also ending open event streams when a shutdown signal arrives.

    uvicorn waits for open connections before running the app's shutdown, and an event stream
    never ends by itself: closing the change hub here lets streams finish right away.
    """

    def __init__(self, config: uvicorn.Config, on_exit: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_exit = on_exit

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._on_exit()
        super().handle_exit(sig, frame)


@click.command()
@settings_options
def serve(**options: str | None) -> None:
    """Run the control plane: REST API, OFREP, live sync, metrics."""
    from stageless.api import create_app
    from stageless.api.logs import configure_logging

    settings = load_settings(options)
    configure_logging(settings)
    try:
        app = create_app(settings)
    except StagelessError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(1) from exc
    log.info(
        "starting on http://%s:%d with database %s",
        settings.host,
        settings.port,
        redact_url(settings.database_url),
    )
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,  # our handlers (configure_logging) format uvicorn's records too
        access_log=False,  # our access log names the route and never the query string
        timeout_graceful_shutdown=max(1, round(settings.graceful_timeout_s)),
        lifespan="on",
    )
    server = _Server(config, app.state.ctx.hub.close_soon)
    server.run()
    if not server.started:
        raise SystemExit(1)


__all__ = ["load_settings", "serve", "settings_options"]
