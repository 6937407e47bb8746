"""Start a real proxy (ProxyApp on the test's event loop) in front of real loopback upstreams."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import yaml

from stageless.proxy.app import ProxyApp
from stageless.proxy.config import ProxyConfig, parse_config
from tests.proxy.upstreams import Upstream

SECRET = "s" * 40


def config_text(stable: list[str], candidate: list[str], **service: Any) -> str:
    """A one-service configuration on ephemeral ports; ``service`` overrides service fields."""
    top = service.pop("top", {})
    document: dict[str, Any] = {
        "listen": "127.0.0.1:0",
        "admin": "127.0.0.1:0",
        "signing_keys": [{"id": "k1", "secret": SECRET}],
        "timeouts": {"connect_s": 1, "read_s": 2, "total_s": 5, "shutdown_grace_s": 2},
        "services": [
            {
                "name": "shop",
                "stable": {"addresses": stable},
                "candidate": {"addresses": candidate},
                "split": {"weight": 0},
                "testers": True,
                **service,
            }
        ],
        **top,
    }
    return yaml.safe_dump(document)


@dataclass
class Running:
    app: ProxyApp
    stable: Upstream
    candidate: Upstream
    addresses: tuple[list[str], list[str]] = ([], [])
    top: dict[str, Any] = field(default_factory=dict)

    def config(self, **service: Any) -> ProxyConfig:
        """A configuration like the one started with (same addresses and top-level fields),
        with ``service`` as the service's fields: for ``app.reload``."""
        text = config_text(*self.addresses, top=dict(self.top), **service)
        return parse_config(text, source="test reload")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.app.port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.app.admin_port}"


@asynccontextmanager
async def running_proxy(
    *,
    stable_upstream: Upstream | None = None,
    candidate_upstream: Upstream | None = None,
    stable_address: str | None = None,
    candidate_address: str | None = None,
    admin: bool = True,
    **service: Any,
) -> AsyncIterator[Running]:
    """A started ProxyApp in front of two started upstreams (``Upstream("stable")`` and
    ``Upstream("candidate")`` unless given); ``*_address`` points a version elsewhere instead
    (e.g. at :func:`~tests.proxy.upstreams.unanswered_address`). ``admin=False`` runs without
    the admin listener (its server takes ~0.2 s to stop)."""
    if not admin:
        service["top"] = {"admin": None, **service.get("top", {})}
    stable = await (stable_upstream or Upstream("stable")).start()
    candidate = await (candidate_upstream or Upstream("candidate")).start()
    addresses = ([stable_address or stable.address], [candidate_address or candidate.address])
    top = dict(service.get("top", {}))
    app = ProxyApp(parse_config(config_text(*addresses, **service), source="test"))
    await app.start()
    try:
        yield Running(app, stable, candidate, addresses, top)
    finally:
        await app.stop()
        await stable.stop()
        await candidate.stop()


async def raw_exchange(port: int, request: bytes, *, read_timeout: float = 3.0) -> bytes:
    """Send raw bytes, read until the server closes (or the timeout): for protocol-level tests."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    chunks = []
    try:
        async with asyncio.timeout(read_timeout):
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                chunks.append(data)
    except TimeoutError:
        pass
    writer.close()
    return b"".join(chunks)


async def until_closed(port: int, request: bytes, *, timeout: float = 3.0) -> bytes:
    """Send raw bytes and read until the proxy closes the connection; fail if it does not."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(timeout):
            return await reader.read()  # up to EOF
    finally:
        writer.close()


@dataclass
class RawResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    chunked: bool

    def header(self, name: str) -> str | None:
        values = [v for n, v in self.headers if n.lower() == name.lower()]
        return values[-1] if values else None


async def read_response(reader: asyncio.StreamReader, *, no_body: bool = False) -> RawResponse:
    """Read one HTTP/1.x response from ``reader`` (framing by Content-Length, chunked or close;
    ``no_body`` for the answer to HEAD). Raises IncompleteReadError on a cut body."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = []
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
    response = RawResponse(status, headers, b"", chunked=False)
    length = response.header("content-length")
    if no_body or status in (204, 304) or 100 <= status < 200:
        return response
    if (response.header("transfer-encoding") or "").lower() == "chunked":
        response.chunked = True
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        response.body = b"".join(parts)
    elif length is not None:
        response.body = await reader.readexactly(int(length))
    else:
        response.body = await reader.read()
    return response


def echoed(body: bytes) -> dict[str, Any]:
    """The upstream's description of the request it got (the /echo answer)."""
    result: dict[str, Any] = json.loads(body)
    return result


def header_values(echo: dict[str, Any], name: str) -> list[str]:
    return [v for n, v in echo["headers"] if n.lower() == name.lower()]


__all__ = [
    "SECRET",
    "RawResponse",
    "Running",
    "config_text",
    "echoed",
    "header_values",
    "raw_exchange",
    "read_response",
    "running_proxy",
    "until_closed",
]
