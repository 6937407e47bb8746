"""A real server for the OFREP client tests: the app under uvicorn on a loopback port.

uvicorn runs in a thread of the test process (``stageless serve`` in a subprocess would spend
seconds importing on a loaded machine); clients reach it over real TCP like any other server.

The flag set ``web`` holds one flag of each type the OFREP clients read, a targeted flag and a
disabled one; ``sdk`` is a token bound to ``web``, ``other`` one bound to another set.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette

from stageless.api import create_app
from stageless.settings import Settings
from stageless.store import SqlStore, TokenScope, open_store, sqlite_url

SECRET = "ofrep-test-secret-0123456789abcdef"  # noqa: S105  # a test key

FLAG_SET = "web"

DOCUMENT: dict[str, Any] = {
    "metadata": {"flagSetId": "web", "team": "growth"},
    "flags": {
        "new-checkout": {
            "state": "ENABLED",
            "variants": {"on": True, "off": False},
            "defaultVariant": "off",
            "targeting": {"if": [{"ends_with": [{"var": "email"}, "@example.com"]}, "on", None]},
        },
        "headline": {
            "state": "ENABLED",
            "variants": {"short": "Hello", "long": "Hello and welcome"},
            "defaultVariant": "short",
        },
        "discount": {
            "state": "ENABLED",
            "variants": {"none": 0.0, "some": 0.15},
            "defaultVariant": "some",
        },
        "max-items": {
            "state": "ENABLED",
            "variants": {"few": 3, "many": 30},
            "defaultVariant": "many",
        },
        "theme": {
            "state": "ENABLED",
            "variants": {
                "light": {"background": "#fff", "accent": ["blue", "teal"]},
                "dark": {"background": "#111", "accent": ["orange"]},
            },
            "defaultVariant": "light",
            "metadata": {"owner": "design"},
        },
        "retired": {"state": "DISABLED", "variants": {"on": True, "off": False}},
        "broken": {
            "state": "ENABLED",
            "variants": {"a": "a", "b": "b"},
            "defaultVariant": "a",
            "targeting": {"if": [True, "c", "a"]},
        },
    },
}


def document_with(**defaults: str) -> dict[str, Any]:
    """``DOCUMENT`` with the default variants of some flags changed."""
    changed = copy.deepcopy(DOCUMENT)
    for key, variant in defaults.items():
        changed["flags"][key.replace("_", "-")]["defaultVariant"] = variant
    return changed


@dataclass
class OfrepServer:
    url: str
    tokens: dict[str, str]
    store: SqlStore

    def headers(self, who: str, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}", **extra}

    def put(self, document: dict[str, Any], name: str = FLAG_SET) -> httpx.Response:
        response = httpx.put(
            f"{self.url}/api/v1/flag-sets/{name}", json=document, headers=self.headers("admin")
        )
        assert response.status_code in (200, 201), response.text
        return response


@contextmanager
def serve_app(app: Starlette) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a loopback port (in a thread); yield its base URL."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", timeout_graceful_shutdown=2
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="ofrep-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        app.state.ctx.hub.close_soon()  # ends open event streams, so shutdown does not wait
        server.should_exit = True
        thread.join(10)


@contextmanager
def ofrep_server(
    data_dir: Path, *, heartbeat: float = 1.0, **settings: Any
) -> Iterator[OfrepServer]:
    """A running server over a fresh SQLite database, with ``DOCUMENT`` as flag set ``web``.

    ``settings`` are further ``Settings`` fields (``stream_token_ttl_s=1.0``).
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    store = open_store(sqlite_url(data_dir), poll_interval=0.05)
    tokens = {
        "admin": store.create_token("admin", TokenScope.ADMIN, actor="test").plaintext,
        "read": store.create_token("reader", TokenScope.READ, actor="test").plaintext,
        "sdk": store.create_token(
            "web-sdk", TokenScope.SDK, flag_set=FLAG_SET, actor="t"
        ).plaintext,
        "other": store.create_token("other", TokenScope.SDK, flag_set="other", actor="t").plaintext,
    }
    app = create_app(
        Settings(data_dir=data_dir, secret_key=SECRET, heartbeat_s=heartbeat, **settings), store
    )
    try:
        with serve_app(app) as url:
            running = OfrepServer(url, tokens, store)
            running.put(DOCUMENT)
            yield running
    finally:
        store.close()
