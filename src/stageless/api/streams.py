"""Live sync for in-process SDKs: a server-sent event stream of one flag set's changes.

``GET /api/v1/flag-sets/{name}/stream`` (``text/event-stream``), authenticated by a Bearer
token or ``?token=<signed stream token>`` from ``POST /api/v1/flag-sets/{name}/stream-token``.

* On connect and after every change::

      id: <version>
      event: flag-set
      data: {"flag_set": name, "version": n, "etag": "...", "document": {...}}

  ``Last-Event-ID`` equal to the current version skips the first event.
* On deletion: ``event: deleted`` with ``data: {"flag_set": name, "version": n}``; the stream
  stays open (a re-created set continues the version numbering).
* ``: ping`` every ``heartbeat_s`` seconds while idle, so proxies keep the connection open and
  clients notice dead ones.

Changes come from the ``ChangeHub``: from this instance at once, from other instances on the
same PostgreSQL database through LISTEN/NOTIFY (or SQLite polling) within a second. When the
server shuts down the hub closes and every stream ends, so clients reconnect elsewhere.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from stageless.api.auth import require
from stageless.api.context import AppContext, get_context
from stageless.errors import NotFoundError
from stageless.service import Closed, Listener
from stageless.service.documents import load_stored
from stageless.store import FlagSetRecord, TokenScope

STREAM_KIND = "sync"


def flag_set_event(record: FlagSetRecord) -> str:
    data = {
        "flag_set": record.name,
        "version": record.version,
        "etag": record.etag,
        "document": load_stored(record.document),
    }
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"id: {record.version}\nevent: flag-set\ndata: {payload}\n\n"


def deleted_event(name: str, version: int) -> str:
    payload = json.dumps({"flag_set": name, "version": version}, separators=(",", ":"))
    return f"event: deleted\ndata: {payload}\n\n"


async def stream(request: Request) -> Response:
    name = request.path_params["name"]
    await require(request, TokenScope.SDK, flag_set=name, allow_stream_token=True)
    ctx = get_context(request)
    listener = ctx.hub.listen(name)  # before reading, so no change falls in between
    try:
        record = await run_in_threadpool(ctx.service.flag_sets.current, name)
    except BaseException:
        listener.close()
        raise
    skip_first = request.headers.get("last-event-id", "").strip() == str(record.version)
    return StreamingResponse(
        _events(ctx, listener, record, skip_first=skip_first),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _events(
    ctx: AppContext, listener: Listener, record: FlagSetRecord, *, skip_first: bool
) -> AsyncIterator[str]:
    gauge = ctx.metrics.stream_subscribers.labels(STREAM_KIND)
    gauge.inc()
    name, sent = record.name, record.version
    try:
        if not skip_first:
            yield flag_set_event(record)
        while True:
            try:
                event = await listener.get(timeout=ctx.settings.heartbeat_s)
            except Closed:
                return
            if event is None:
                yield ": ping\n\n"
            elif event.deleted:
                yield deleted_event(name, event.version)
                sent = event.version
            elif event.version > sent:
                try:
                    record = await run_in_threadpool(ctx.service.flag_sets.current, name)
                except NotFoundError:
                    continue  # deleted since; its own event follows
                if record.version > sent:
                    yield flag_set_event(record)
                    sent = record.version
    finally:
        listener.close()
        gauge.dec()


async def stream_token(request: Request) -> Response:
    """Issue a short-lived signed token for ``?token=`` on this flag set's streams."""
    name = request.path_params["name"]
    principal = await require(request, TokenScope.SDK, flag_set=name)
    ctx = get_context(request)
    await run_in_threadpool(ctx.service.flag_sets.current, name)  # 404 for an unknown set
    token, expires = ctx.auth.sign_stream_token(principal, name)
    expires_at = datetime.fromtimestamp(expires, UTC).isoformat(timespec="seconds")
    return JSONResponse(
        {"token": token, "expires_at": expires_at.replace("+00:00", "Z")},
        headers={"Cache-Control": "no-store"},
    )


def routes() -> list[BaseRoute]:
    return [
        Route("/api/v1/flag-sets/{name}/stream", stream, methods=["GET"]),
        Route("/api/v1/flag-sets/{name}/stream-token", stream_token, methods=["POST"]),
    ]
