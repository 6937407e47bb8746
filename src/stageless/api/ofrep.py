"""OFREP, the OpenFeature Remote Evaluation Protocol: ``/ofrep/v1``.

* ``POST /ofrep/v1/evaluate/flags/{key}``: one flag, for dynamic-context (server) providers.
  200 ``{key, reason, variant, metadata, value}``; ``value`` and ``variant`` are omitted when the
  flag resolved to no value (disabled, no default variant: the client uses its code default,
  ADR-0006); 404 ``{key, errorCode: FLAG_NOT_FOUND}``; 400 ``{key, errorCode, errorDetails}``.
* ``POST /ofrep/v1/evaluate/flags``: every flag, for static-context (client) providers, with a
  strong ``ETag`` and ``If-None-Match`` answered by 304; per-flag failures are items with
  ``errorCode``; ``eventStreams`` points to ``/ofrep/v1/events`` (``api.ofrep_stream``).
* 401/403 answer ``{errorDetails}`` (OFREP defines no body for them), 500 ``{errorDetails}``.

No type travels on the wire (ADR-0003): flags are evaluated untyped and the client checks the
type. Which flags a caller sees: an sdk token evaluates its bound flag set; admin, write and read
tokens pick one with ``X-Stageless-Flag-Set`` (default ``default``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from stageless.api import ofrep_stream
from stageless.api.auth import Principal, presented_token, require
from stageless.api.context import AppContext
from stageless.api.metrics import UNKNOWN_FLAG
from stageless.api.ofrep_cache import CompiledCache, Entry
from stageless.api.problem import Problem
from stageless.errors import StagelessError
from stageless.flags import ErrorCode, Resolution
from stageless.store import TokenScope

FLAG_SET_HEADER = "x-stageless-flag-set"
DEFAULT_FLAG_SET = "default"
JSON_MEDIA_TYPE = "application/json"

log = logging.getLogger("stageless.api.ofrep")

_NO_STORE = {"Cache-Control": "no-store"}
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


class BadRequest(Exception):  # noqa: N818  # answered as OFREP's 400, not raised to callers
    """A request OFREP answers with 400 and an ``errorCode``."""

    def __init__(self, code: ErrorCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


def json_response(
    body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(_dumps(body), status, headers, media_type=JSON_MEDIA_TYPE)


async def resolve_caller(
    request: Request, *, allow_stream_token: bool = False
) -> tuple[Principal, str]:
    """The caller and the flag set it evaluates; ``Problem`` 401/403 otherwise.

    An sdk token (or a signed stream token) evaluates its bound flag set; other tokens choose
    one with ``X-Stageless-Flag-Set``. Naming another set than the bound one is a 403.
    """
    ctx: AppContext = request.app.state.ctx
    token = presented_token(request)
    principal: Principal | None = None
    if token is not None:
        principal = await ctx.auth.authenticate(token)
    elif allow_stream_token and request.query_params.get("token"):
        principal = ctx.auth.verify_stream_token(request.query_params["token"])
    chosen = request.headers.get(FLAG_SET_HEADER, "").strip()
    bound = principal.flag_set if principal is not None else None
    bound_only = principal is not None and (
        principal.scope is TokenScope.SDK or principal.via_stream_token
    )
    name = chosen or (bound if bound_only and bound else DEFAULT_FLAG_SET)
    checked = await require(request, TokenScope.SDK, name, allow_stream_token=allow_stream_token)
    return checked, name


async def read_context(request: Request) -> dict[str, Any]:
    """The evaluation context of an OFREP request body (``{}`` when there is none)."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(ErrorCode.PARSE_ERROR, f"the request body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise BadRequest(
            ErrorCode.PARSE_ERROR,
            f"the request body must be a JSON object, got {type(body).__name__}",
        )
    context = body.get("context")
    if context is None:
        return {}
    if not isinstance(context, dict):
        raise BadRequest(
            ErrorCode.INVALID_CONTEXT,
            f"context: expected an object, got {type(context).__name__}",
        )
    return context


def success_item(resolution: Resolution) -> dict[str, Any]:
    """The OFREP body of a resolution without error (no ``value``/``variant`` when none)."""
    item: dict[str, Any] = {"key": resolution.key, "reason": str(resolution.reason)}
    if resolution.variant is not None:
        item["variant"] = resolution.variant
    item["metadata"] = dict(resolution.metadata)
    if resolution.variant is not None:
        item["value"] = resolution.value
    return item


def failure_item(resolution: Resolution) -> dict[str, Any]:
    return {
        "key": resolution.key,
        "errorCode": str(resolution.error_code),
        "errorDetails": resolution.error_message or str(resolution.error_code),
        "metadata": dict(resolution.metadata),
    }


def item(resolution: Resolution) -> dict[str, Any]:
    return success_item(resolution) if resolution.error_code is None else failure_item(resolution)


def context_digest(context: dict[str, Any]) -> str:
    """A hash of the context's canonical JSON (keys sorted): equal contexts, equal digests."""
    canonical = json.dumps(context, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def strong_etag(*parts: str) -> str:
    return '"' + hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32] + '"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 ``If-None-Match``: ``*`` or any listed tag, compared weakly."""
    if if_none_match is None:
        return False
    if if_none_match.strip() == "*":
        return True
    wanted = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == wanted for tag in if_none_match.split(","))


class Ofrep:
    """The OFREP endpoints of one app."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.cache = CompiledCache(ctx.service)
        self.streams = ofrep_stream.EventStreams(ctx, self.cache, resolve_caller)
        # Successful resolutions are built once, when a flag set is compiled, and shared by
        # every evaluation; so is their JSON here, with the counter child they count into.
        # Keyed by id(): the tuple holds the resolution, so its id cannot be reused meanwhile.
        self._memo: dict[int, tuple[Resolution, bytes, Any]] = {}

    async def evaluate_flag(self, request: Request) -> Response:
        key = request.path_params["key"]
        try:
            _principal, name = await resolve_caller(request)
            context = await read_context(request)
            entry = await self.cache.get(name)
        except BadRequest as exc:
            body = {"key": key, "errorCode": str(exc.code), "errorDetails": exc.details}
            return json_response(body, 400)
        if entry is None:
            details = f"flag set {name!r} does not exist"
            return json_response(
                {"key": key, "errorCode": "FLAG_NOT_FOUND", "errorDetails": details}, 404
            )
        resolution = entry.compiled.flags.evaluate(key, context)
        encoded = self._encode(name, resolution)
        if resolution.error_code is None:
            status = 200
        else:
            status = 404 if resolution.error_code is ErrorCode.FLAG_NOT_FOUND else 400
        return Response(encoded, status, media_type=JSON_MEDIA_TYPE)

    async def evaluate_flags(self, request: Request) -> Response:
        try:
            principal, name = await resolve_caller(request)
            context = await read_context(request)
            entry = await self.cache.get(name)
        except BadRequest as exc:
            return json_response({"errorCode": str(exc.code), "errorDetails": exc.details}, 400)
        now = time.time()
        window = self.streams.window(now)
        version = "absent" if entry is None else entry.compiled.etag
        flags: bytes | None = None
        if entry is not None and entry.reads_time:
            # $flagd.timestamp: the same version and context can resolve differently later,
            # so the tag covers the evaluated flags themselves.
            flags = self._evaluate_all(name, entry, context)
            etag = strong_etag(name, version, str(window), flags.decode())
        else:
            etag = strong_etag(name, version, str(window), context_digest(context))
        headers = {"ETag": etag, **_NO_STORE}
        if etag_matches(request.headers.get("if-none-match"), etag):
            return Response(status_code=304, headers=headers)
        if flags is None:
            flags = b"" if entry is None else self._evaluate_all(name, entry, context)
        metadata = {} if entry is None else dict(entry.compiled.flags.metadata)
        streams = [self.streams.descriptor(request, principal, name, entry, now)]
        rest = _dumps({"metadata": metadata, "eventStreams": streams})
        body = b'{"flags":[' + flags + b"]," + rest[1:].encode()
        return Response(body, 200, headers, media_type=JSON_MEDIA_TYPE)

    def _evaluate_all(self, name: str, entry: Entry, context: dict[str, Any]) -> bytes:
        """The JSON items of every flag, comma-separated (and counted)."""
        resolutions = entry.compiled.flags.evaluate_all(context).values()
        return b",".join([self._encode(name, resolution) for resolution in resolutions])

    def _encode(self, flag_set: str, resolution: Resolution) -> bytes:
        """The JSON item of ``resolution``; counts the evaluation by flag and reason."""
        memo = self._memo.get(id(resolution))
        if memo is not None and memo[0] is resolution:
            memo[2].inc()
            return memo[1]
        encoded = _dumps(item(resolution)).encode()
        known = resolution.error_code is not ErrorCode.FLAG_NOT_FOUND
        flag = resolution.key if known else UNKNOWN_FLAG
        child = self.ctx.metrics.evaluations.labels(flag_set, flag, str(resolution.reason))
        child.inc()
        if resolution.error_code is None:  # errors are built per evaluation: not worth keeping
            if len(self._memo) > 100_000:  # old flag-set versions: let them go now and then
                self._memo.clear()
            self._memo[id(resolution)] = (resolution, encoded, child)
        return encoded


Endpoint = Callable[[Request], Awaitable[Response]]


def ofrep_errors(endpoint: Endpoint) -> Endpoint:
    """Answer failures in OFREP's shapes: 401/403 and 500 as ``{errorDetails}``.

    The one broad boundary of the OFREP routes: anything unexpected is logged and becomes 500
    ``{"errorDetails": "internal error"}`` rather than the problem+json of the other routes.
    """

    async def wrapped(request: Request) -> Response:
        try:
            return await endpoint(request)
        except Problem as exc:
            return json_response({"errorDetails": exc.detail}, exc.status, exc.headers)
        except StagelessError as exc:
            log.error("OFREP request failed: %s", exc, exc_info=exc)
            return json_response({"errorDetails": f"{exc.code}: the store did not answer"}, 500)
        except Exception as exc:
            log.error("unexpected error in an OFREP request", exc_info=exc)
            return json_response({"errorDetails": "internal error"}, 500)

    return wrapped


def routes(ctx: AppContext) -> list[BaseRoute]:
    """The OFREP routes of the app over ``ctx``."""
    ofrep = Ofrep(ctx)
    return [
        Route("/ofrep/v1/evaluate/flags", ofrep_errors(ofrep.evaluate_flags), methods=["POST"]),
        Route(
            "/ofrep/v1/evaluate/flags/{key:path}",
            ofrep_errors(ofrep.evaluate_flag),
            methods=["POST"],
        ),
        Route(
            ofrep_stream.EVENTS_PATH,
            ofrep_errors(ofrep.streams.endpoint),
            methods=["GET"],
            name=ofrep_stream.EVENTS_ROUTE,
        ),
    ]
