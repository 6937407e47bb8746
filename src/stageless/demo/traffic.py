"""The demo's users: many simulated shoppers sending requests at a steady rate through the proxy.

Each simulated user keeps the sticky cookie the proxy gives it on its first visit (so it stays
on one version, as a browser would). Requests start on a fixed schedule (open loop: a slow
answer does not slow the arrivals down) over a pool of keep-alive connections, and every answer
is counted by the version that served it (the shop's ``X-Shop-Version`` header) and its status.
A small HTTP/1.1 client written on asyncio streams: it only speaks to the demo's own proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from dataclasses import dataclass, field

#: (method, path, weight) of what shoppers do.
MIX: tuple[tuple[str, str, float], ...] = (
    ("GET", "/api/products", 0.45),
    ("GET", "/api/products/2", 0.2),
    ("GET", "/api/cart", 0.2),
    ("POST", "/api/checkout", 0.15),
)


@dataclass
class Tally:
    """Answers seen by the users, by version and outcome."""

    answers: Counter[tuple[str, str]] = field(default_factory=Counter)
    failed: int = 0  # connection failures and proxy errors without a version

    def total(self, version: str) -> int:
        return sum(n for (v, _), n in self.answers.items() if v == version)

    def errors(self, version: str) -> int:
        return self.answers[version, "5xx"]


class Shoppers:
    """``users`` simulated users sending ``rate`` requests per second to ``host:port``."""

    def __init__(
        self, host: str, port: int, *, users: int, rate: float, seed: int | None = None
    ) -> None:
        self.host = host
        self.port = port
        self.users = users
        self.rate = rate
        self.random = random.Random(seed)  # noqa: S311 (simulation)
        self.cookies: dict[int, str] = {}
        self.tally = Tally()
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.tasks: set[asyncio.Task[None]] = set()
        self.running = False
        self._loop_task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.running = True
        self._loop_task = asyncio.get_running_loop().create_task(self._schedule())

    async def stop(self) -> None:
        self.running = False
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for _, writer in self.idle:
            writer.close()
        self.idle.clear()

    async def _schedule(self) -> None:
        loop = asyncio.get_running_loop()
        interval = 1.0 / self.rate
        next_at = loop.time()
        weights = [w for _, _, w in MIX]
        while self.running:
            next_at += interval
            delay = next_at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            user = self.random.randrange(self.users)
            method, path, _ = self.random.choices(MIX, weights)[0]
            task = loop.create_task(self._request(user, method, path))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _request(self, user: int, method: str, path: str) -> None:
        cookie = self.cookies.get(user)
        body = b'{"items":[1,3]}' if method == "POST" else b""
        lines = [f"{method} {path} HTTP/1.1", "Host: shop.demo", "User-Agent: stageless-demo"]
        if cookie:
            lines.append(f"Cookie: {cookie}")
        if body:
            lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        request = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
        try:
            reader, writer = (
                self.idle.pop()
                if self.idle
                else await asyncio.open_connection(self.host, self.port)
            )
        except OSError:
            self.tally.failed += 1
            return
        try:
            writer.write(request)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            status, headers = _parse_head(head)
            length = int(headers.get("content-length", "0"))
            if length:
                await reader.readexactly(length)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            self.tally.failed += 1
            writer.close()
            return
        except BaseException:  # cancelled by stop(): the connection is nobody's any more
            writer.close()
            raise
        set_cookie = headers.get("set-cookie")
        if set_cookie:
            self.cookies[user] = set_cookie.split(";", 1)[0]
        version = headers.get("x-shop-version", "none")
        outcome = "5xx" if status >= 500 else "4xx" if status >= 400 else "ok"
        self.tally.answers[version, outcome] += 1
        if headers.get("connection", "").lower() == "close":
            writer.close()
        else:
            self.idle.append((reader, writer))


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return status, headers


__all__ = ["MIX", "Shoppers", "Tally"]
