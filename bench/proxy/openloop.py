"""An open-loop HTTP/1.1 load generator for bench/proxy.py (shadow isolation).

Requests are sent at fixed planned times (RATE per second, evenly spaced) over CONNECTIONS
keep-alive connections, and each latency is measured from the request's planned time, not from
when it could be sent: a server that holds connections makes the next requests wait, and that
wait is counted (no coordinated omission, unlike closed-loop tools such as wrk). An idle
connection is reused most-recently-returned first (a LIFO, like client pools); when none is
idle, the request waits for one. Responses must carry a Content-Length.

The requests are the ones bench/proxy.py's wrk script sends: GET PATH with a sticky-key cookie
rotating over KEYS values. Prints one JSON object: planned, completed, errors, p50_ms, p99_ms,
max_ms and lag_p99_ms (how late the generator itself sent, the p99 of its timer error).

Usage: python bench/proxy/openloop.py --port 8080 [--rate 200] [--duration 10]
       [--connections 100] [--path /api/items?page=1] [--keys 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import time
from collections import deque
from collections.abc import Coroutine, Sequence
from typing import Any, cast


def requests(port: int, path: str, keys: int) -> list[bytes]:
    """The same requests as bench/proxy.py's Lua script sends."""
    return [
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: application/json\r\n"
            f"User-Agent: stageless-bench\r\nCookie: session=bench; stageless-key=bench{k:017d}"
            "\r\n\r\n"
        ).encode()
        for k in range(1, keys + 1)
    ]


def spawn(coroutine: Coroutine[Any, Any, None], keep: set[asyncio.Task[None]]) -> None:
    """Start a task and keep a reference to it until it is done."""
    task = asyncio.get_running_loop().create_task(coroutine)
    keep.add(task)
    task.add_done_callback(keep.discard)


class LoadConnection(asyncio.Protocol):
    """One keep-alive client connection of the open-loop generator."""

    def __init__(self, generator: OpenLoop) -> None:
        self.generator = generator
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.planned = 0.0
        self.expected = -1
        self.status = b""
        self.keep_alive = True
        self.busy = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def send(self, request: bytes, planned: float) -> None:
        if self.transport is None:
            raise RuntimeError("send on a connection that is not open")
        self.planned = planned
        self.expected = -1
        self.busy = True
        self.buffer.clear()
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.expected < 0:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).lower()
            self.status = head[9:12]
            start = head.find(b"\r\ncontent-length:")
            if start < 0:
                self.generator.failed(self)
                return
            line_end = head.find(b"\r\n", start + 2)
            length = int(head[start + 17 : line_end if line_end >= 0 else len(head)])
            self.keep_alive = b"\r\nconnection: close" not in head
            self.expected = end + 4 + length
        if len(self.buffer) >= self.expected:
            self.busy = False
            self.generator.completed(self, time.perf_counter() - self.planned)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.generator.failed(self)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of sorted ``values``."""
    if not values:
        return math.nan
    return values[min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))]


class OpenLoop:
    """Requests at fixed planned times; latency from the planned time (no coordinated omission).

    An idle connection is reused most-recently-returned first (a LIFO, like client pools); a
    request with no idle connection waits for one, and its wait counts in its latency."""

    def __init__(self, port: int, connections: int, requests: list[bytes]) -> None:
        self.port = port
        self.connections = connections
        self.requests = requests
        self.closing = False
        self.idle: list[LoadConnection] = []
        self.waiting: deque[float] = deque()
        self.latencies: list[float] = []
        self.errors = 0
        self.outstanding = 0
        self.index = 0
        self.tasks: set[asyncio.Task[None]] = set()
        self.drained = asyncio.Event()

    async def connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, connection = await loop.create_connection(
                lambda: LoadConnection(self), "127.0.0.1", self.port
            )
        except OSError:
            await asyncio.sleep(0.05)
            spawn(self.connect(), self.tasks)
            return
        self.release(connection)

    def dispatch(self, planned: float) -> None:
        self.outstanding += 1
        if self.idle:
            self.send(self.idle.pop(), planned)
        else:
            self.waiting.append(planned)

    def send(self, connection: LoadConnection, planned: float) -> None:
        self.index = (self.index + 1) % len(self.requests)
        connection.send(self.requests[self.index], planned)

    def release(self, connection: LoadConnection) -> None:
        if self.waiting:
            self.send(connection, self.waiting.popleft())
        else:
            self.idle.append(connection)

    def completed(self, connection: LoadConnection, latency: float) -> None:
        self.outstanding -= 1
        if connection.status == b"200":
            self.latencies.append(latency)
        else:
            self.errors += 1
        if connection.keep_alive:
            self.release(connection)
        else:
            if connection.transport is not None:
                connection.transport.close()
        self.check_drained()

    def failed(self, connection: LoadConnection) -> None:
        if connection.busy:
            connection.busy = False
            self.outstanding -= 1
            self.errors += 1
        if connection in self.idle:
            self.idle.remove(connection)
        if connection.transport is not None:
            connection.transport.close()
        elif not self.closing:
            spawn(self.connect(), self.tasks)
        self.check_drained()

    def check_drained(self) -> None:
        if self.outstanding == 0:
            self.drained.set()

    async def run(self, rate: float, duration: float) -> dict[str, float]:
        await asyncio.gather(*(self.connect() for _ in range(self.connections)))
        count = max(1, round(rate * duration))
        lags: list[float] = []
        start = time.perf_counter() + 0.05
        for i in range(count):
            planned = start + i / rate
            delay = planned - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            lags.append(time.perf_counter() - planned)
            self.drained.clear()
            self.dispatch(planned)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.drained.wait(), timeout=30)
        unfinished = self.outstanding
        self.closing = True
        for connection in [*self.idle]:
            if connection.transport is not None:
                connection.transport.close()
        self.latencies.sort()
        lags.sort()
        return {
            "planned": count,
            "completed": len(self.latencies),
            "errors": self.errors + unfinished,
            "p50_ms": percentile(self.latencies, 0.50) * 1000,
            "p99_ms": percentile(self.latencies, 0.99) * 1000,
            "max_ms": self.latencies[-1] * 1000 if self.latencies else math.nan,
            "lag_p99_ms": percentile(lags, 0.99) * 1000,
        }


async def generate(args: argparse.Namespace) -> dict[str, float]:
    generator = OpenLoop(args.port, args.connections, requests(args.port, args.path, args.keys))
    try:
        return await generator.run(args.rate, args.duration)
    finally:
        for task in list(generator.tasks):
            task.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True, help="on 127.0.0.1")
    parser.add_argument("--rate", type=float, default=200, help="requests per second")
    parser.add_argument("--duration", type=float, default=10, help="seconds")
    parser.add_argument("--connections", type=int, default=100, help="keep-alive connections")
    parser.add_argument("--path", default="/api/items?page=1")
    parser.add_argument("--keys", type=int, default=1000, help="sticky-key cookie values")
    print(json.dumps(asyncio.run(generate(parser.parse_args()))))


if __name__ == "__main__":
    main()
