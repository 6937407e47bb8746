"""Health, metrics and the OpenAPI document."""

from __future__ import annotations

from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from stageless import __version__
from stageless.api.auth import require
from stageless.api.context import get_context
from stageless.api.openapi import openapi_document
from stageless.api.problem import Problem
from stageless.errors import StoreError
from stageless.store import TokenScope


async def health(request: Request) -> Response:
    """GET /api/v1/health: no token needed; a 503 problem if the database does not answer."""
    ctx = get_context(request)
    try:
        await run_in_threadpool(ctx.service.ping)
    except StoreError as exc:
        raise Problem(503, "the database does not answer", code="unavailable") from exc
    return JSONResponse({"status": "ok", "version": __version__, "database": "ok"})


async def metrics(request: Request) -> Response:
    """GET /metrics: Prometheus text format; needs a read token unless metrics_public."""
    ctx = get_context(request)
    if not ctx.settings.metrics_public:
        await require(request, TokenScope.READ)
    return Response(ctx.metrics.render(), media_type=CONTENT_TYPE_LATEST)


async def openapi(request: Request) -> Response:
    """GET /api/v1/openapi.json: this API's OpenAPI 3.1 document."""
    await require(request, TokenScope.READ)
    return JSONResponse(openapi_document())


def routes() -> list[BaseRoute]:
    return [
        Route("/api/v1/health", health, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/api/v1/openapi.json", openapi, methods=["GET"]),
    ]
