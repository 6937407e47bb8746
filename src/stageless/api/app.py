"""The control plane's ASGI app: ``create_app(settings, store=None) -> Starlette``.

Middleware, outermost first: the access log and request metrics (so they see every answer,
413s included), CORS (when ``cors_origins`` is set), the request body limit; then the routes.
Every route outside /ofrep/v1 answers errors in the problem+json shape (``api.problem``).

The lifespan starts the change hub (store change events into asyncio) and, at shutdown, closes
it (ending open event streams) and the service (and the store, if the app opened it).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import BaseRoute

from stageless.api import audit, flagsets, ofrep, proxyconfigs, streams, system
from stageless.api.auth import Auth, load_secret_key
from stageless.api.context import AppContext
from stageless.api.limits import BodyLimit
from stageless.api.logs import AccessLog
from stageless.api.metrics import Metrics
from stageless.api.problem import install_handlers
from stageless.service import ChangeHub, Service, open_service
from stageless.settings import Settings
from stageless.store import Store

#: Headers browsers may send and read across origins (OFREP and stream clients need these).
CORS_ALLOW_HEADERS = (
    "Authorization",
    "Content-Type",
    "If-Match",
    "If-None-Match",
    "X-API-Key",
    "X-Stageless-Flag-Set",
    "X-Stageless-Message",
    "Last-Event-ID",
)
CORS_EXPOSE_HEADERS = ("ETag", "Location")


def create_app(settings: Settings, store: Store | None = None) -> Starlette:
    """The app over ``store`` (or a store opened from ``settings.database_url``)."""
    service = Service(store) if store is not None else open_service(settings.database_url)
    key = load_secret_key(settings)
    ctx = AppContext(
        settings=settings,
        service=service,
        hub=ChangeHub(service.store),
        auth=Auth(service.tokens, key=key, stream_token_ttl_s=settings.stream_token_ttl_s),
        metrics=Metrics(),
    )

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await ctx.hub.start()
        try:
            yield
        finally:
            ctx.hub.close()
            await run_in_threadpool(service.close)

    app = Starlette(routes=all_routes(ctx), middleware=_middleware(ctx), lifespan=lifespan)
    app.state.ctx = ctx
    install_handlers(app)
    return app


def all_routes(ctx: AppContext) -> list[BaseRoute]:
    """Every route of the app, in matching order."""
    return [
        *system.routes(),
        *flagsets.routes(),
        *streams.routes(),
        *proxyconfigs.routes(),
        *audit.routes(),
        *ofrep.routes(ctx),
    ]


def _middleware(ctx: AppContext) -> list[Middleware]:
    stack = [Middleware(AccessLog, metrics=ctx.metrics)]
    if ctx.settings.cors_origins:
        stack.append(
            Middleware(
                CORSMiddleware,
                allow_origins=ctx.settings.cors_origins,
                allow_methods=["GET", "POST", "PUT", "DELETE"],
                allow_headers=CORS_ALLOW_HEADERS,
                expose_headers=CORS_EXPOSE_HEADERS,
            )
        )
    stack.append(Middleware(BodyLimit, limit=ctx.settings.max_body_bytes))
    return stack
