"""The demo's shop: a small JSON HTTP service that runs as stable and as candidate.

One :class:`Shop` per version, each an asyncio server on loopback. A :class:`Behaviour` says how
that version answers: its error rate and latency per endpoint, and how its JSON differs (the
candidate of the demo prints prices as strings and adds a field). Every answer carries a random
``request_id`` (noise the diff must see through) and ``X-Shop-Version``.

Endpoints: ``GET /api/products``, ``GET /api/products/{id}``, ``GET /api/cart``,
``POST /api/checkout``, ``GET /healthz``.
"""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import dataclass, field
from typing import Any, cast

import httptools

PRODUCTS = (
    {"id": 1, "name": "Espresso beans", "price": 12.5, "stock": 40},
    {"id": 2, "name": "Grinder", "price": 89.0, "stock": 7},
    {"id": 3, "name": "Milk jug", "price": 15.9, "stock": 23},
    {"id": 4, "name": "Scale", "price": 29.0, "stock": 12},
)


@dataclass(frozen=True)
class Behaviour:
    """How one version of the shop answers."""

    version: str
    #: Share of answers that are 500, by endpoint name (``checkout``, ``products``...).
    error_rate: dict[str, float] = field(default_factory=dict)
    #: Base latency in ms, and the share of answers that take ``slow_ms`` more.
    base_ms: float = 2.0
    slow_share: float = 0.0
    slow_ms: float = 0.0
    #: Prices as strings and an extra ``currency`` field (a changed contract the diff shows).
    string_prices: bool = False
    currency: bool = False


STABLE = Behaviour("stable", error_rate={"checkout": 0.005})
BAD_CANDIDATE = Behaviour(
    "candidate",
    error_rate={"checkout": 0.15},
    slow_share=0.05,
    slow_ms=250.0,
    currency=True,
)
GOOD_CANDIDATE = Behaviour("candidate", error_rate={"checkout": 0.005}, currency=True)


class Shop:
    """One version of the shop on ``127.0.0.1:<port>``."""

    def __init__(self, behaviour: Behaviour, *, seed: int | None = None) -> None:
        self.behaviour = behaviour
        self.random = random.Random(seed)  # noqa: S311 (simulation)
        self.server: asyncio.Server | None = None
        self.port = 0
        self.requests = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> Shop:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: _Connection(self), "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None

    def answer(self, method: bytes, path: bytes) -> tuple[int, float, dict[str, Any] | None]:
        """Status, delay in seconds and JSON body for one request."""
        b = self.behaviour
        rnd = self.random.random
        endpoint, body = self._route(method, path)
        if endpoint == "":
            return 404, 0.0, {"error": "not found"}
        if endpoint == "healthz":
            return 200, 0.0, {"status": "ok"}
        delay = b.base_ms * (0.5 + rnd()) / 1000
        if b.slow_share and rnd() < b.slow_share:
            delay += b.slow_ms / 1000
        if rnd() < b.error_rate.get(endpoint, 0.0):
            return 500, delay, {"error": "internal error", "request_id": self._request_id()}
        assert body is not None  # noqa: S101
        body["request_id"] = self._request_id()
        return 200, delay, body

    def _route(self, method: bytes, path: bytes) -> tuple[str, dict[str, Any] | None]:
        if path == b"/healthz":
            return "healthz", None
        if method == b"GET" and path == b"/api/products":
            return "products", {"products": [self._product(p) for p in PRODUCTS]}
        if method == b"GET" and path.startswith(b"/api/products/"):
            tail = path.rsplit(b"/", 1)[1]
            for product in PRODUCTS:
                if tail == str(product["id"]).encode():
                    return "product", self._product(product)
            return "", None
        if method == b"GET" and path == b"/api/cart":
            items = [self._product(PRODUCTS[0]), self._product(PRODUCTS[2])]
            return "cart", {"items": items, "count": 2}
        if method == b"POST" and path == b"/api/checkout":
            return "checkout", {"status": "confirmed", "order": self.random.randrange(10**6)}
        return "", None

    def _product(self, product: dict[str, Any]) -> dict[str, Any]:
        result = dict(product)
        if self.behaviour.string_prices:
            result["price"] = f"{product['price']:.2f}"
        if self.behaviour.currency:
            result["currency"] = "EUR"
        return result

    def _request_id(self) -> str:
        return f"{self.random.getrandbits(64):016x}"


class _Connection(asyncio.Protocol):
    """HTTP/1.1 keep-alive, one request at a time (the demo's clients do not pipeline)."""

    def __init__(self, shop: Shop) -> None:
        self.shop = shop
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.close()

    def on_url(self, url: bytes) -> None:
        self.url = url

    def on_message_complete(self) -> None:
        shop = self.shop
        shop.requests += 1
        method = self.parser.get_method()
        path = self.url.split(b"?", 1)[0]
        status, delay, body = shop.answer(method, path)
        payload = json.dumps(body, separators=(",", ":")).encode()
        head = (
            f"HTTP/1.1 {status} {'OK' if status == 200 else 'Error'}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
            f"X-Shop-Version: {shop.behaviour.version}\r\n\r\n"
        ).encode()
        if delay > 0:
            asyncio.get_running_loop().call_later(delay, self._send, head + payload)
        else:
            self._send(head + payload)

    def _send(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)


__all__ = ["BAD_CANDIDATE", "GOOD_CANDIDATE", "PRODUCTS", "STABLE", "Behaviour", "Shop"]
