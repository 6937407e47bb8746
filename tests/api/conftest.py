"""In-process API fixtures: the real app over a real SQLite store, driven through httpx.

``api`` runs the app's lifespan and gives an ``httpx.AsyncClient`` on ``ASGITransport`` plus one
token per scope (``api.headers("write")``; the sdk token is bound to flag set ``web``, the proxy
token to proxy config ``web``). Tests
that need streaming or several processes use real uvicorn servers (tests/cli/servers.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from stageless.api import create_app
from stageless.settings import Settings
from stageless.store import SqlStore, TokenScope, open_store, sqlite_url

SECRET = "test-secret-key-0123456789abcdef0123"  # noqa: S105  # a test key
SDK_FLAG_SET = "web"
PROXY_CONFIG = "web"
DOC = '{"flags": {"banner": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on"}}}'  # noqa: E501
PROXY_DOC = """\
signing_keys: [{id: k1, secret: test-signing-secret-0123456789abcdef}]
services:
  - name: shop
    stable: {addresses: ["127.0.0.1:9001"]}
    candidate: {addresses: ["127.0.0.1:9002"]}
    split: {weight: 5}
    testers: true
"""


@dataclass
class Api:
    """A running in-process app, its store and a token per scope."""

    client: httpx.AsyncClient
    app: Starlette
    store: SqlStore
    tokens: dict[str, str] = field(default_factory=dict)

    def headers(self, scope: str, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[scope]}", **extra}


def make_settings(tmp_path: Path, **changes: object) -> Settings:
    values: dict[str, object] = {"data_dir": tmp_path, "secret_key": SECRET, "heartbeat_s": 0.5}
    values.update(changes)
    return Settings(**values)  # type: ignore[arg-type]


async def running_api(settings: Settings) -> AsyncIterator[Api]:
    """Start the app's lifespan over a fresh store in ``settings.data_dir``; yield ``Api``."""
    store = open_store(sqlite_url(settings.data_dir), poll_interval=0.05)
    tokens = {
        scope.value: store.create_token(
            f"{scope.value}-token",
            scope,
            flag_set=SDK_FLAG_SET if scope is TokenScope.SDK else None,
            proxy_config=PROXY_CONFIG if scope is TokenScope.PROXY else None,
            actor="test",
        ).plaintext
        for scope in TokenScope
    }
    app = create_app(settings, store)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
                yield Api(client, app, store, tokens)
    finally:
        store.close()


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async for running in running_api(make_settings(tmp_path)):
        yield running
