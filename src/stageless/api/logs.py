"""Structured logs: JSON lines (or text), and one access line per request.

``configure_logging(settings)`` installs one handler on the root logger. The access middleware
(``AccessLog``) writes one record per request on ``stageless.access`` with ``method``, ``route``
(the template), ``path`` (no query string: stream URLs may carry a token there), ``status``,
``duration_ms`` and ``principal`` (the token's *name*); tokens themselves are never logged.
The same middleware feeds the request metrics.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stageless.api.metrics import Metrics
from stageless.settings import Settings, log_level_number

access_log = logging.getLogger("stageless.access")
_FIELDS = ("method", "route", "path", "status", "duration_ms", "principal")
_UNMATCHED = "(unmatched)"


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ts, level, logger, message, the access fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in _FIELDS:
            if hasattr(record, name):
                entry[name] = getattr(record, name)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(settings: Settings) -> None:
    """Send every log record to stderr in ``settings.log_format`` at ``settings.log_level``."""
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(log_level_number(settings))


class AccessLog:
    """ASGI middleware: time each request, count it by route template, log one line."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            seconds = time.perf_counter() - start
            route = scope.get("route")
            template = getattr(route, "path", None) or _UNMATCHED
            method = scope["method"]
            self.metrics.observe_request(method, template, status, seconds)
            principal = scope.get("state", {}).get("principal")
            access_log.info(
                "%s %s %s",
                method,
                template,
                status,
                extra={
                    "method": method,
                    "route": template,
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round(seconds * 1000, 3),
                    "principal": principal,
                },
            )
