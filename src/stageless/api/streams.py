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

Each change is read from the store and encoded once, however many streams are open, and the
same bytes go to every stream (``stageless.api.fanout``); a stream that falls behind skips to
the newest version. Changes come from the ``ChangeHub``: from this instance at once, from
other instances on the same PostgreSQL database through LISTEN/NOTIFY (or SQLite polling)
within a second. When the server shuts down the hub closes and every stream ends, so clients
reconnect elsewhere.

A stream ends, too, when the caller's access does: when its token is revoked (within about a
second, ``stageless.api.revocation``) and when the signed stream token it was opened with
expires. A client reconnecting then needs a valid token.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from stageless.api.auth import CALLER, Principal, require
from stageless.api.context import AppContext, get_context
from stageless.api.fanout import Fanout, Frame, Subscriber, flag_set_frame
from stageless.service import Closed
from stageless.store import FlagSetRecord, ProxyConfigRecord, TokenScope

STREAM_KIND = "sync"
PING = b": ping\n\n"


async def stream(fanout: Fanout, request: Request) -> Response:
    name = request.path_params["name"]
    await require(request, TokenScope.SDK, flag_set=name, allow_stream_token=True)
    ctx = get_context(request)
    subscriber = fanout.subscribe(ctx, name)  # before reading, so no change falls in between
    try:
        record = await run_in_threadpool(ctx.service.flag_sets.current, name)
    except BaseException:
        subscriber.close()
        raise
    return event_stream(ctx, request, subscriber, record)


def event_stream(
    ctx: AppContext,
    request: Request,
    subscriber: Subscriber,
    record: FlagSetRecord | ProxyConfigRecord,
    *,
    frame: Callable[[Any], Frame] = flag_set_frame,
    stream_kind: str = STREAM_KIND,
) -> Response:
    """The SSE response of a document's stream: ``record`` first (unless the client's
    ``Last-Event-ID`` is its version), then every frame ``subscriber`` gets, with heartbeats."""
    return StreamingResponse(
        _events(ctx, request, subscriber, record, frame, stream_kind),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _events(
    ctx: AppContext,
    request: Request,
    subscriber: Subscriber,
    record: FlagSetRecord | ProxyConfigRecord,
    frame: Callable[[Any], Frame],
    stream_kind: str,
) -> AsyncIterator[bytes]:
    skip_first = request.headers.get("last-event-id", "").strip() == str(record.version)
    caller: Principal | None = request.scope.get("state", {}).get(CALLER)
    gauge = ctx.metrics.stream_subscribers.labels(stream_kind)
    gauge.inc()
    untrack = (
        ctx.auth.revocations.track(caller.name, subscriber.cut) if caller is not None else None
    )
    expires_at = None if caller is None else caller.expires_at
    heartbeat = ctx.settings.heartbeat_s
    sent = record.version
    try:
        if not skip_first:
            latest = subscriber.latest  # reuse the shared encoding when it is this version
            same = latest is not None and not latest.deleted and latest.version == sent
            yield latest.data if same and latest is not None else frame(record).data
        while True:
            wait = heartbeat if expires_at is None else min(heartbeat, expires_at - time.time())
            if wait <= 0:
                return  # the stream token expired
            try:
                next_frame = await subscriber.get(timeout=wait)
            except Closed:
                return
            if next_frame is None:
                if expires_at is not None and time.time() >= expires_at:
                    return
                yield PING
            elif next_frame.deleted or next_frame.version > sent:
                yield next_frame.data
                sent = next_frame.version
    finally:
        if untrack is not None:
            untrack()
        subscriber.close()
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
    fanout = Fanout()  # one per app: the flag sets with open streams
    return [
        Route("/api/v1/flag-sets/{name}/stream", partial(stream, fanout), methods=["GET"]),
        Route("/api/v1/flag-sets/{name}/stream-token", stream_token, methods=["POST"]),
    ]
