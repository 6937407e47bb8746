"""OFREP event streams (ADR-0008): tell static-context providers when to refetch.

The bulk response lists one stream::

    "eventStreams": [{"type": "sse", "inactivityDelaySec": 120,
                      "url": "https://host/ofrep/v1/events?token=sst_…&v=7"}]

``token`` is a signed stream token (browsers cannot put headers on an ``EventSource``); the URL
is a secret, and the access log records paths without their query. ``v`` is the flag-set
version the bulk response was computed from. ``GET /ofrep/v1/events`` then sends, whenever the
flag set changes or is deleted::

    id: 8
    data: {"type": "refetchEvaluation", "etag": "\\"…\\"", "lastModified": 1771622898}

and a ``: keepalive`` comment every ``heartbeat_s`` seconds. On connect, if the version the
client last knew (``Last-Event-ID`` on a reconnect, otherwise ``v``) is not the current one, a
``refetchEvaluation`` goes out at once, so a change made between the bulk response and the
connection (or while disconnected) is not missed.

Token lifetime: stream tokens live ``stream_token_ttl_s``. Time is cut into windows of half that;
tokens issued in a window expire a full TTL after it starts, so any of them is valid for at
least half the TTL. The window is part of the bulk ETag, so a provider revalidating with
``If-None-Match`` gets a fresh body (and a fresh token) once the window has passed instead of
a 304 that would keep an expired URL in its cache. An open stream ends when its token expires
(its reconnection is refused, and the provider refetches the bulk evaluation, which gives it a
new URL), and when the token it was issued from is revoked (``stageless.api.revocation``).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from stageless.api.auth import Principal
from stageless.errors import NotFoundError
from stageless.service import Closed, Listener
from stageless.store import FlagSetRecord

if TYPE_CHECKING:
    from stageless.api.context import AppContext
    from stageless.api.ofrep_cache import CompiledCache, Entry

EVENTS_PATH = "/ofrep/v1/events"
EVENTS_ROUTE = "ofrep_events"
STREAM_KIND = "ofrep"
INACTIVITY_DELAY_S = 120
RETRY_MS = 2000
ABSENT = "none"  # the version id of a flag set that does not exist

Resolver = Callable[..., Awaitable[tuple[Principal, str]]]


def refetch_event(event_id: str, record: FlagSetRecord | None) -> str:
    """One ``refetchEvaluation`` message (with the set's ETag and time when it exists)."""
    data: dict[str, object] = {"type": "refetchEvaluation"}
    if record is not None:
        data["etag"] = record.etag
        data["lastModified"] = int(record.updated_at)
    return f"id: {event_id}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


class EventStreams:
    """Stream descriptors for bulk responses and the ``/ofrep/v1/events`` endpoint."""

    def __init__(self, ctx: AppContext, cache: CompiledCache, resolve: Resolver) -> None:
        self.ctx = ctx
        self.cache = cache
        self._resolve = resolve
        self._half = max(ctx.settings.stream_token_ttl_s / 2, 0.001)
        self._tokens: dict[tuple[str, str, str, int], str] = {}
        self._encoded: dict[tuple[object, ...], bytes] = {}
        self._last: tuple[tuple[object, ...], bytes] = ((), b"")  # the last key and its value

    def window(self, now: float) -> int:
        """The token window ``now`` falls in (see the module docstring)."""
        return math.floor(now / self._half)

    def descriptor(
        self, request: Request, principal: Principal, name: str, entry: Entry | None, now: float
    ) -> dict[str, object]:
        """The ``eventStreams`` entry of a bulk response to ``principal`` for ``name``."""
        window = self.window(now)
        key = (principal.name, str(principal.scope), name, window)
        token = self._tokens.get(key)
        if token is None:
            # One token per caller and window: the URL stays the same between refetches.
            if len(self._tokens) > 10_000:
                self._tokens.clear()
            expires = (window + 2) * self._half  # a full TTL after the window starts
            token, _ = self.ctx.auth.sign_stream_token(principal, name, ttl=expires - now)
            self._tokens[key] = token
        version = ABSENT if entry is None else str(entry.compiled.version)
        url = request.url_for(EVENTS_ROUTE).include_query_params(token=token, v=version)
        return {"type": "sse", "url": str(url), "inactivityDelaySec": INACTIVITY_DELAY_S}

    def encoded_descriptor(
        self,
        request: Request,
        principal: Principal,
        name: str,
        entry: Entry | None,
        now: float,
        window: int,
    ) -> bytes:
        """``descriptor(...)`` as JSON, made once per caller, window, version and base URL.

        ``window`` is ``self.window(now)``, which the caller has computed already.

        Building the URL (``url_for`` walks the route table) and encoding it cost more than a
        bulk answer's cached items; the inputs are everything the result depends on.
        """
        scope = request.scope
        host = None
        for header, value in scope["headers"]:  # not request.headers: that builds a Headers
            if header == b"host":
                host = value
                break
        key = (
            scope.get("scheme"),
            host,
            scope.get("server"),
            scope.get("app_root_path", scope.get("root_path")),
            principal.name,
            id(principal.scope),  # a member of an enum: its id names it (Enum's hash is Python)
            name,
            window,
            None if entry is None else entry.compiled.version,
        )
        last = self._last
        if key == last[0]:  # the same caller again: elements compared, nothing hashed
            return last[1]
        encoded = self._encoded.get(key)
        if encoded is None:
            if len(self._encoded) > 10_000:
                self._encoded.clear()
            descriptor = self.descriptor(request, principal, name, entry, now)
            encoded = json.dumps(descriptor, separators=(",", ":")).encode()
            self._encoded[key] = encoded
        self._last = (key, encoded)
        return encoded

    async def endpoint(self, request: Request) -> Response:
        principal, name = await self._resolve(request, allow_stream_token=True)
        listener = self.ctx.hub.listen(name)  # before reading, so no change falls in between
        try:
            record = await self._current(name)
        except BaseException:
            listener.close()
            raise
        known = request.headers.get("last-event-id") or request.query_params.get("v")
        return StreamingResponse(
            self._events(listener, principal, name, record, known),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def _current(self, name: str) -> FlagSetRecord | None:
        try:
            return await run_in_threadpool(self.ctx.service.flag_sets.current, name)
        except NotFoundError:
            return None

    async def _events(
        self,
        listener: Listener,
        principal: Principal,
        name: str,
        record: FlagSetRecord | None,
        known: str | None,
    ) -> AsyncIterator[str]:
        gauge = self.ctx.metrics.stream_subscribers.labels(STREAM_KIND)
        gauge.inc()
        untrack = self.ctx.auth.revocations.track(principal.name, listener.end)
        expires_at = principal.expires_at
        heartbeat = self.ctx.settings.heartbeat_s
        sent = ABSENT if record is None else str(record.version)
        try:
            yield f"retry: {RETRY_MS}\n\n"
            if known is not None and known.strip() != sent:
                yield refetch_event(sent, record)
            while True:
                wait = heartbeat if expires_at is None else min(heartbeat, expires_at - time.time())
                if wait <= 0:
                    return  # the stream token expired: the provider refetches for a new URL
                try:
                    event = await listener.get(timeout=wait)
                except Closed:
                    return
                if event is None:
                    if expires_at is not None and time.time() >= expires_at:
                        return
                    yield ": keepalive\n\n"
                    continue
                record = None if event.deleted else await self._current(name)
                current = ABSENT if record is None else str(record.version)
                if current != sent:
                    sent = current
                    yield refetch_event(current, record)
        finally:
            untrack()
            listener.close()
            gauge.dec()
