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

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from stageless.api import ofrep_stream
from stageless.api.auth import Principal, presented_token, require
from stageless.api.context import AppContext
from stageless.api.ofrep_bulk import (
    EMPTY,
    NOT_KEPT,
    AnswerCache,
    BulkPlan,
    ItemEncoder,
    body_digest,
    etag_head,
)
from stageless.api.ofrep_cache import MISSING, CompiledCache, Entry
from stageless.api.problem import Problem
from stageless.errors import StagelessError
from stageless.flags import ErrorCode
from stageless.store import TokenScope

FLAG_SET_HEADER = "x-stageless-flag-set"
FLAG_SET_HEADER_RAW = FLAG_SET_HEADER.encode()
DEFAULT_FLAG_SET = "default"
JSON_MEDIA_TYPE = "application/json"

log = logging.getLogger("stageless.api.ofrep")

_NO_STORE = {"Cache-Control": "no-store"}
_raw_decode = json.JSONDecoder().raw_decode  # json.loads's own decoder, without its wrapping
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
    ctx: AppContext = request.app.ctx  # a ControlPlaneApp (stageless.api.context)
    token = presented_token(request)
    principal: Principal | None = None
    if token is not None:
        principal = await ctx.auth.authenticate(token)
    elif allow_stream_token and request.query_params.get("token"):
        principal = ctx.auth.verify_stream_token(request.query_params["token"])
    chosen = (header(request, FLAG_SET_HEADER_RAW) or "").strip()
    bound = principal.flag_set if principal is not None else None
    bound_only = principal is not None and (
        principal.scope is TokenScope.SDK or principal.via_stream_token
    )
    name = chosen or (bound if bound_only and bound else DEFAULT_FLAG_SET)
    checked = await require(request, TokenScope.SDK, name, allow_stream_token=allow_stream_token)
    return checked, name


def header(request: Request, name: bytes) -> str | None:
    """The first value of header ``name`` (lower case), as ``request.headers.get`` gives it.

    ``Headers.get`` of an absent header raises and catches a ``KeyError`` (about 1 µs); the
    OFREP routes look up headers that are usually absent on every request.
    """
    for key, value in request.scope["headers"]:
        if key == name:
            decoded: str = value.decode("latin-1")
            return decoded
    return None


async def read_context(request: Request) -> dict[str, Any]:
    """The evaluation context of an OFREP request body (``{}`` when there is none)."""
    return parse_context(await read_body(request))


async def read_body(request: Request) -> bytes:
    """The request body, read from the ASGI ``receive`` as ``Request.body()`` reads it.

    ``Request.body()`` goes through an async generator under ``aclosing``, which costs about
    5 µs per request, as much as parsing the context; the OFREP routes read the body once.
    """
    receive = request.receive
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.request":
            if not message.get("more_body", False):
                body: bytes = message.get("body", b"")
                return b"".join((*chunks, body)) if chunks else body
            chunks.append(message.get("body", b""))
        elif message["type"] == "http.disconnect":
            raise ClientDisconnect()


def parse_context(raw: bytes) -> dict[str, Any]:
    """The evaluation context in an OFREP request body; ``BadRequest`` if it is not one."""
    if not raw.strip():
        return {}
    try:
        body = loads(raw)
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


def loads(raw: bytes) -> Any:
    """``json.loads(raw)``: the same values and the same errors, about three times faster.

    orjson (Rust) parses the usual body in a third of the instructions of the standard
    library's decoder (3,200 against 10,300 per context in callgrind, the bulk route's
    largest cost after the rules). It accepts a subset of what ``json.loads`` accepts (no
    ``NaN``, lone surrogates, BOM or UTF-16/32) and reads those the same way, with one
    exception: an integer beyond 64 bits becomes a float. So a body with a run of 19 or
    more digits (an integer that may not fit) and any body orjson refuses go to the standard
    library, whose values and errors are then the answer; a property test compares the two on
    random bodies.
    """
    # find, not ``in``: CPython 3.11's bytes ``in`` builds and clears a TypeError first
    if raw.translate(_DIGITS_AS_ZERO).find(_LONG_DIGITS) < 0:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    return _json_loads(raw)


_DIGITS_AS_ZERO = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x20 for byte in range(256))
_LONG_DIGITS = b"0" * 19  # 19 digits or more: perhaps beyond a 64-bit integer


def _json_loads(raw: bytes) -> Any:
    """``json.loads(raw)``, with a shortcut for the usual body: a UTF-8 JSON object.

    ``json.loads`` of bytes detects the encoding and matches a whitespace regex around the
    value (about 2 µs of a 3 µs parse). A body starting ``{`` and a non-NUL byte is UTF-8 by
    ``json.detect_encoding``'s own rule, so it is decoded as ``json.loads`` would and given to
    the same decoder; anything else, and any failure, goes to ``json.loads`` itself, so values
    and errors are the same by construction.
    """
    if len(raw) > 1 and raw[0] == 0x7B and raw[1] != 0:  # b"{"
        try:
            text = raw.decode("utf-8", "surrogatepass")
            value, end = _raw_decode(text)
        except ValueError:
            return json.loads(raw)
        if end == len(text):
            return value
    return json.loads(raw)


class BulkResponse(Response):
    """A 200 bulk answer: JSON, its ETag and ``Cache-Control: no-store``.

    The headers are written as bytes here: ``Response.init_headers`` encodes a header mapping
    item by item and scans it for ``content-length`` and ``content-type`` (about 1 µs, a
    sixth of what the bulk route adds to a request when its answer is cached).
    """

    media_type = JSON_MEDIA_TYPE

    def __init__(self, body: bytes, etag: str) -> None:  # no super(): see above
        self.status_code = 200
        self.background = None
        self.body = body
        self.raw_headers = [
            (b"etag", etag.encode("latin-1")),
            (b"cache-control", b"no-store"),
            (b"content-length", str(len(body)).encode("latin-1")),
            (b"content-type", b"application/json"),
        ]


def strong_etag(*parts: str) -> str:
    return '"' + hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32] + '"'


def body_etag(name: str, version: str, window: str, body: bytes) -> str:
    """The bulk ETag of a request body: flag set, version, stream window and the body's bytes.

    Equal bodies get equal tags, which is all ``If-None-Match`` needs: a client revalidates
    with the body it sent before. A body spelled differently (key order, spacing) gets another
    tag and a 200 instead of a 304 — never a wrong 304, and no canonical JSON to build. The
    bulk route computes it with ``BodyTagger``, the head once per window.
    """
    return etag_head(name, version, window) + body_digest(body).hex() + '"'


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
        self.encoder = ItemEncoder(ctx.metrics)
        self.answers = AnswerCache()
        self._tally = ctx.metrics.tally
        self._plans: dict[str, BulkPlan] = {}

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
        encoded, counted = self.encoder.encode(name, resolution)
        self._tally.add(counted)
        if resolution.error_code is None:
            status = 200
        else:
            status = 404 if resolution.error_code is ErrorCode.FLAG_NOT_FOUND else 400
        return Response(encoded, status, media_type=JSON_MEDIA_TYPE)

    async def evaluate_flags(self, request: Request) -> Response:
        try:
            principal, name = await resolve_caller(request)
            raw = await read_body(request)
            entry = self.cache.peek(name)
            if entry is MISSING:
                entry = await self.cache.get(name)
            plan = None if entry is None else self._plans.get(name)
            if entry is not None and (plan is None or plan.entry is not entry):
                plan = await self._plan(name, entry)
            answer, admitted = NOT_KEPT if plan is None else self.answers.lookup(plan, raw)
            context = {} if answer is not None else parse_context(raw)
        except BadRequest as exc:
            return json_response({"errorCode": str(exc.code), "errorDetails": exc.details}, 400)
        now = time.time()
        window = self.streams.window(now)
        version = "absent" if entry is None else entry.compiled.etag
        if_none_match = header(request, b"if-none-match")
        if plan is None or plan.cacheable:
            # The tag needs no evaluation: a revalidation is answered before evaluating.
            if plan is None:
                etag = body_etag(name, version, str(window), raw)
            else:
                etag = plan.tagger.tag(window, raw)
            if if_none_match is not None and etag_matches(if_none_match, etag):
                return Response(status_code=304, headers={"ETag": etag, **_NO_STORE})
            if answer is None:
                answer = EMPTY if plan is None else plan.evaluate(context, self.answers)
                if admitted and plan is not None:
                    self.answers.keep(plan, raw, answer)
        else:
            # $flagd.timestamp: the same version and context can resolve differently later,
            # so the tag covers the evaluated flags themselves (answer.tag). Answers kept by
            # rule results still apply: the results are what the rules made of the time.
            answer = plan.evaluate(context, self.answers)
            etag = strong_etag(name, version, str(window), answer.tag or "")
            if etag_matches(if_none_match, etag):
                return Response(status_code=304, headers={"ETag": etag, **_NO_STORE})
        if answer.lasting:
            self._tally.add(answer.batch)
        else:
            self._tally.add_all(answer.batch.children)
        streams = self.streams.encoded_descriptor(request, principal, name, entry, now, window)
        metadata = b"{}" if plan is None else plan.metadata
        body = b"".join(
            (
                b'{"flags":[',
                answer.flags,
                b'],"metadata":',
                metadata,
                b',"eventStreams":[',
                streams,
                b"]}",
            )
        )
        return BulkResponse(body, etag)

    async def _plan(self, name: str, entry: Entry) -> BulkPlan:
        """The bulk plan of ``entry``, made on first use of each compiled version.

        In a worker thread: a plan compiles the set's rules into one program (some hundreds of
        microseconds per rule), which must not stall the other requests.
        """
        plan = await run_in_threadpool(BulkPlan, name, entry, self.encoder)
        if len(self._plans) > 10_000:
            self._plans.clear()
        current = self._plans.get(name)
        if current is not None and current.entry is entry:
            return current  # another request made it meanwhile: keep one plan per version
        self._plans[name] = plan
        return plan


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
