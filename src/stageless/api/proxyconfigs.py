"""REST routes and the event stream of proxy configurations (under /api/v1/proxy-configs).

* ``PUT /api/v1/proxy-configs/{name}`` (``write``): create or replace, validated as the proxy
  will validate it (422 with every path, nothing stored), ``If-Match`` / ``If-None-Match: *``.
* ``GET /api/v1/proxy-configs``, ``GET .../{name}``, ``GET .../{name}/versions`` and
  ``GET .../{name}/versions/{version}`` (``read``, or a ``proxy`` token bound to ``name``):
  signing secrets appear only to admin tokens and to the bound proxy token; everyone else sees
  ``redacted:sha256:…`` fingerprints.
* ``DELETE .../{name}`` (``write``).
* ``GET .../{name}/stream`` (``admin``, or the bound ``proxy`` token): server-sent events, the
  full document on connect and after every change::

      id: <version>
      event: proxy-config
      data: {"proxy_config": name, "version": n, "etag": "...", "document": {...}}

  ``event: deleted`` (``data: {"proxy_config": name, "version": n}``) when it is deleted, the
  stream staying open; ``Last-Event-ID`` equal to the current version skips the first event;
  ``: ping`` every ``heartbeat_s`` seconds. One store read and one encoding per version,
  however many proxies listen (``stageless.api.fanout``).
"""

from __future__ import annotations

import json
from functools import partial
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from stageless.api.auth import Principal, require
from stageless.api.context import AppContext, get_context
from stageless.api.fanout import Fanout, Frame, Topic
from stageless.api.flagsets import (
    MESSAGE_HEADER,
    document_format,
    with_etag,
    write_precondition,
)
from stageless.api.params import (
    if_match,
    if_none_match,
    int_param,
    quote_etag,
    timestamp,
    version_param,
)
from stageless.api.streams import event_stream
from stageless.service.proxyconfigs import document_of
from stageless.store import ProxyConfigRecord, ProxyConfigVersion, ResourceKind, TokenScope

PREFIX = "/api/v1/proxy-configs"
STREAM_KIND = "proxy"


def _sees_secrets(principal: Principal) -> bool:
    return principal.scope in (TokenScope.ADMIN, TokenScope.PROXY)


def proxy_config_json(record: ProxyConfigRecord, *, secrets: bool) -> dict[str, Any]:
    return {
        "name": record.name,
        "version": record.version,
        "etag": record.etag,
        "document": document_of(record.document, secrets=secrets),
        "created_at": timestamp(record.created_at),
        "updated_at": timestamp(record.updated_at),
    }


def version_json(version: ProxyConfigVersion) -> dict[str, Any]:
    return {
        "proxy_config": version.proxy_config,
        "version": version.version,
        "etag": version.etag,
        "author": version.author,
        "message": version.message,
        "created_at": timestamp(version.created_at),
    }


def proxy_config_frame(record: ProxyConfigRecord) -> Frame:
    """``id: <version>`` / ``event: proxy-config`` with the full document (secrets included)."""
    data = {
        "proxy_config": record.name,
        "version": record.version,
        "etag": record.etag,
        "document": document_of(record.document, secrets=True),
    }
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    text = f"id: {record.version}\nevent: proxy-config\ndata: {payload}\n\n"
    return Frame(record.version, text.encode())


def deleted_frame(name: str, version: int) -> Frame:
    """``event: deleted`` for the proxy config's deletion at ``version``."""
    payload = json.dumps({"proxy_config": name, "version": version}, separators=(",", ":"))
    return Frame(version, f"event: deleted\ndata: {payload}\n\n".encode(), deleted=True)


def _read(ctx: AppContext, name: str) -> ProxyConfigRecord:
    return ctx.service.proxy_configs.current(name)


PROXY_CONFIGS = Topic(ResourceKind.PROXY_CONFIG, _read, proxy_config_frame, deleted_frame)


async def list_proxy_configs(request: Request) -> Response:
    await require(request, TokenScope.READ)
    records = await run_in_threadpool(get_context(request).service.proxy_configs.list_all)
    rows = [
        {
            "name": r.name,
            "version": r.version,
            "etag": r.etag,
            "updated_at": timestamp(r.updated_at),
        }
        for r in records
    ]
    return JSONResponse({"proxy_configs": rows})


async def get_proxy_config(request: Request) -> Response:
    name = request.path_params["name"]
    principal = await require(request, TokenScope.READ, proxy_config=name)
    record = await run_in_threadpool(get_context(request).service.proxy_configs.current, name)
    wanted = if_none_match(request)
    if "*" in wanted or record.etag in wanted:
        return Response(status_code=304, headers={"ETag": quote_etag(record.etag)})
    body = proxy_config_json(record, secrets=_sees_secrets(principal))
    return with_etag(body, record.etag)


async def put_proxy_config(request: Request) -> Response:
    principal = await require(request, TokenScope.WRITE)
    name = request.path_params["name"]
    body_format = document_format(request)
    precondition = write_precondition(request)
    body = await request.body()
    message = request.headers.get(MESSAGE_HEADER, "")
    service = get_context(request).service

    def write() -> Any:
        return service.proxy_configs.put(
            name,
            body,
            precondition=precondition,
            actor=principal.name,
            message=message,
            format=body_format,
        )

    written = await run_in_threadpool(write)
    record = written.record
    shown = proxy_config_json(record, secrets=_sees_secrets(principal))
    response = with_etag(shown, record.etag, 201 if written.created else 200)
    if written.created:
        response.headers["Location"] = f"{PREFIX}/{name}"
    return response


async def delete_proxy_config(request: Request) -> Response:
    principal = await require(request, TokenScope.WRITE)
    name = request.path_params["name"]
    expected = if_match(request)
    service = get_context(request).service
    await run_in_threadpool(
        lambda: service.proxy_configs.delete(name, if_match=expected, actor=principal.name)
    )
    return Response(status_code=204)


async def list_versions(request: Request) -> Response:
    name = request.path_params["name"]
    await require(request, TokenScope.READ, proxy_config=name)
    limit = int_param(request.query_params.get("limit"), "limit", default=100, low=1, high=1000)
    service = get_context(request).service
    versions = await run_in_threadpool(lambda: service.proxy_configs.versions(name, limit=limit))
    return JSONResponse({"versions": [version_json(v) for v in versions]})


async def get_version(request: Request) -> Response:
    name = request.path_params["name"]
    principal = await require(request, TokenScope.READ, proxy_config=name)
    number = version_param(request)
    service = get_context(request).service
    version = await run_in_threadpool(service.proxy_configs.version, name, number)
    body = {
        **version_json(version),
        "document": document_of(version.document, secrets=_sees_secrets(principal)),
    }
    return with_etag(body, version.etag)


async def stream(fanout: Fanout, request: Request) -> Response:
    name = request.path_params["name"]
    await require(request, TokenScope.PROXY, proxy_config=name)
    ctx = get_context(request)
    subscriber = fanout.subscribe(ctx, name)  # before reading, so no change falls in between
    try:
        record = await run_in_threadpool(_read, ctx, name)
    except BaseException:
        subscriber.close()
        raise
    return event_stream(
        ctx, request, subscriber, record, frame=proxy_config_frame, stream_kind=STREAM_KIND
    )


def routes() -> list[BaseRoute]:
    fanout = Fanout(topic=PROXY_CONFIGS)  # one per app: the proxy configs with open streams
    return [
        Route(PREFIX, list_proxy_configs, methods=["GET"]),
        Route(PREFIX + "/{name}", get_proxy_config, methods=["GET"]),
        Route(PREFIX + "/{name}", put_proxy_config, methods=["PUT"]),
        Route(PREFIX + "/{name}", delete_proxy_config, methods=["DELETE"]),
        Route(PREFIX + "/{name}/versions", list_versions, methods=["GET"]),
        Route(PREFIX + "/{name}/versions/{version}", get_version, methods=["GET"]),
        Route(PREFIX + "/{name}/stream", partial(stream, fanout), methods=["GET"]),
    ]
