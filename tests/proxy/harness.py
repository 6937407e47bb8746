"""Start a real proxy (ProxyApp on the test's event loop) in front of real loopback upstreams."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import yaml

from stageless.proxy.app import ProxyApp
from stageless.proxy.config import parse_config
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

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.app.port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.app.admin_port}"


@asynccontextmanager
async def running_proxy(**service: Any) -> AsyncIterator[Running]:
    stable = await Upstream("stable").start()
    candidate = await Upstream("candidate").start()
    app = ProxyApp(
        parse_config(config_text([stable.address], [candidate.address], **service), source="test")
    )
    await app.start()
    try:
        yield Running(app, stable, candidate)
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


def echoed(body: bytes) -> dict[str, Any]:
    """The upstream's description of the request it got (the /echo answer)."""
    result: dict[str, Any] = json.loads(body)
    return result


def header_values(echo: dict[str, Any], name: str) -> list[str]:
    return [v for n, v in echo["headers"] if n.lower() == name.lower()]


__all__ = ["Running", "config_text", "echoed", "header_values", "raw_exchange", "running_proxy"]
