"""The live-sync stream route served by uvicorn on loopback: one store read per version,
a stalled reader does not hold up the others, Last-Event-ID."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

import httpx
import uvicorn

from stageless.api import create_app
from stageless.store import FlagSetRecord, SqlStore, Store, TokenScope, open_store, sqlite_url
from tests.api.conftest import make_settings

NAME = "web"


class CountingStore:
    """A real SQLite store that counts ``get_flag_set`` calls (every other call passes through)."""

    def __init__(self, inner: SqlStore) -> None:
        self.inner = inner
        self.reads = 0
        self._lock = threading.Lock()

    def get_flag_set(self, name: str) -> FlagSetRecord:
        with self._lock:
            self.reads += 1
        return self.inner.get_flag_set(name)

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self.inner, attribute)


class Served:
    def __init__(self, url: str, store: CountingStore, token: str) -> None:
        self.url, self.store, self.token = url, store, token

    def write(self, document: str) -> int:
        return self.store.inner.update_flag_set(NAME, document, expected=None, actor="t").version


@asynccontextmanager
async def serving(tmp_path: Path) -> AsyncIterator[Served]:
    inner = open_store(sqlite_url(tmp_path), poll_interval=0.05)
    token = inner.create_token("sdk", TokenScope.SDK, flag_set=NAME, actor="t").plaintext
    inner.create_flag_set(NAME, doc("v0"), actor="t")
    store = CountingStore(inner)
    app = create_app(make_settings(tmp_path, heartbeat_s=5.0), cast(Store, store))
    config = uvicorn.Config(app, log_config=None, lifespan="on", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]), name="uvicorn")
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield Served(f"http://127.0.0.1:{sock.getsockname()[1]}", store, token)
    finally:
        app.state.ctx.hub.close()
        server.should_exit = True
        await task
        sock.close()
        inner.close()


def doc(value: str) -> str:
    variants = {"v": value}
    return json.dumps(
        {"flags": {"f": {"state": "ENABLED", "variants": variants, "defaultVariant": "v"}}}
    )


class Reader:
    """One SSE client: the versions of the flag-set events it received, as they arrive."""

    def __init__(self, client: httpx.AsyncClient, served: Served, **headers: str) -> None:
        self.versions: list[int] = []
        self.changed = asyncio.Event()
        self.opened = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(
            self._read(client, served, headers), name="sse-reader"
        )

    async def _read(self, client: httpx.AsyncClient, served: Served, extra: dict[str, str]) -> None:
        headers = {"Authorization": f"Bearer {served.token}", **extra}
        async with client.stream(
            "GET", f"{served.url}/api/v1/flag-sets/{NAME}/stream", headers=headers
        ) as response:
            self.opened.set()
            async for line in response.aiter_lines():
                if line.startswith("id: "):
                    self.versions.append(int(line[4:]))
                    self.changed.set()

    async def wait_for(self, version: int, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while not self.versions or self.versions[-1] < version:
                self.changed.clear()
                await self.changed.wait()

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def test_one_store_read_per_version_however_many_streams(tmp_path: Path) -> None:
    async with serving(tmp_path) as served, httpx.AsyncClient(timeout=10) as client:
        for count in (1, 25):
            readers = [Reader(client, served) for _ in range(count)]
            for reader in readers:
                await reader.wait_for(
                    1 if count == 1 else served.store.inner.get_flag_set(NAME).version
                )
            before = served.store.reads
            versions = []
            for number in range(3):
                versions.append(await asyncio.to_thread(served.write, doc(f"{count}-{number}")))
                for reader in readers:
                    await reader.wait_for(versions[-1])
            assert served.store.reads - before == len(versions)
            for reader in readers:
                assert reader.versions[-3:] == versions
                await reader.close()


async def test_a_stalled_reader_does_not_hold_up_the_others(tmp_path: Path) -> None:
    async with serving(tmp_path) as served, httpx.AsyncClient(timeout=10) as client:
        port = int(served.url.rsplit(":", 1)[1])
        with socket.socket() as stalled:
            stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            stalled.connect(("127.0.0.1", port))
            stalled.sendall(
                f"GET /api/v1/flag-sets/{NAME}/stream HTTP/1.1\r\nHost: t\r\n"
                f"Authorization: Bearer {served.token}\r\n\r\n".encode()
            )
            fast = Reader(client, served)
            await fast.wait_for(1)
            # More than the kernel buffers of the stalled connection hold (tcp_wmem's 4 MiB).
            big = "x" * 600_000
            versions = []
            for number in range(16):
                versions.append(await asyncio.to_thread(served.write, doc(f"{number}{big}")))
                await fast.wait_for(versions[-1], timeout=2.0)
            assert fast.versions == [1, *versions]
            # The stalled reader now reads: it gets the newest version, having skipped some.
            received = await drain_until(stalled, f"id: {versions[-1]}\n".encode())
            assert received.count(b"event: flag-set") < len(versions) + 1
        await fast.close()


async def drain_until(sock: socket.socket, marker: bytes) -> bytes:
    sock.setblocking(False)
    received = b""
    async with asyncio.timeout(10):
        while marker not in received:
            try:
                received += sock.recv(1 << 20)
            except BlockingIOError:
                await asyncio.sleep(0.01)
    return received


async def test_last_event_id_of_the_current_version_skips_the_first_event(tmp_path: Path) -> None:
    async with serving(tmp_path) as served, httpx.AsyncClient(timeout=10) as client:
        reader = Reader(client, served, **{"Last-Event-ID": "1"})
        await reader.opened.wait()
        await asyncio.sleep(0.2)
        assert reader.versions == []
        version = await asyncio.to_thread(served.write, doc("next"))
        await reader.wait_for(version)
        assert reader.versions == [version]
        await reader.close()
