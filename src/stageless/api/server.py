"""Run the app under uvicorn with graceful shutdown: what ``stageless serve`` does.

SIGTERM and SIGINT: the server stops accepting, the change hub closes (so open event streams
end at once and their clients reconnect elsewhere), requests in flight get
``graceful_timeout_s`` to finish, then the lifespan closes the store. A clean shutdown exits 0.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from types import FrameType

import uvicorn

from stageless.api.app import create_app
from stageless.api.logs import configure_logging
from stageless.settings import Settings, redact_url

log = logging.getLogger("stageless.serve")


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


def _ignore_signal(_sig: int, _frame: FrameType | None) -> None:
    """Handler outside uvicorn's run: by the time it fires the shutdown already happened."""


def run(settings: Settings) -> int:
    """Serve until a shutdown signal; return the exit status (0 clean, 1 failed to start).

    Raises ``StagelessError`` if the database cannot be opened.
    """
    configure_logging(settings)
    app = create_app(settings)
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
        log_config=None,  # configure_logging's handler formats uvicorn's records too
        access_log=False,  # our access log names the route and never the query string
        timeout_graceful_shutdown=max(1, round(settings.graceful_timeout_s)),
        lifespan="on",
    )
    server = _Server(config, app.state.ctx.hub.close_soon)
    # uvicorn re-raises the shutdown signal after a graceful exit, with the handlers it found;
    # these make that a no-op, so a clean shutdown exits with status 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _ignore_signal)
    server.run()
    return 0 if server.started else 1
