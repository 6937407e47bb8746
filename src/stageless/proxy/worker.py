"""One proxy worker: a listening socket, its connections, upstream pools, health and shadowing.

A worker runs in one process on one event loop. With ``workers: N`` the supervisor starts N
processes that each bind the listening address with ``SO_REUSEPORT`` (the kernel spreads new
connections across them); with one worker it runs inside the supervisor's own loop.

The ticker (every :data:`TICK_S`) enforces connection deadlines and closes expired idle upstream
connections: one timer for everything instead of a timer handle per request.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import random
import socket
from collections.abc import Coroutine
from typing import Any

from stageless.diff import CollectorState, DiffCollector
from stageless.proxy.config import ProxyConfig
from stageless.proxy.connection import ClientConnection
from stageless.proxy.health import HealthChecker
from stageless.proxy.pool import Pool
from stageless.proxy.runtime import RequestLimits, RequestTimeouts, Runtime, build_runtime
from stageless.proxy.shadow import ShadowDispatcher
from stageless.proxy.stats import Stats
from stageless.routing.headers import sticky_key

log = logging.getLogger("stageless.proxy")

TICK_S = 0.25


#: The cyclic collector's thresholds in a proxy process: generations 0 and 1 as CPython's
#: defaults, full collections (generation 2) a hundred times rarer than its default of 10.
COLLECTOR_THRESHOLDS = (700, 10, 1000)


def tune_collector() -> None:
    """Keep the cyclic garbage collector's full collections off the request path.

    A full collection walks every tracked object of the process and stops the event loop while
    it does; with shadowing on (the diff collector's state, copies in flight) that took tens of
    milliseconds on a 2-CPU VM and raised the users' p99 by about 7 ms in bench/proxy.py's
    isolation scenario, against about 2 ms with full collections rarer (docs/benchmarks.md).
    The objects alive at start (modules, the configuration) are frozen out of every collection.
    Called once at the start of a proxy process (never in a process that merely embeds a
    worker, such as the tests'), before its event loop runs.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*COLLECTOR_THRESHOLDS)


def listening_socket(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    """A bound, listening TCP socket (``SO_REUSEPORT`` when several workers share it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(4096)
    sock.setblocking(False)
    return sock


class Worker:
    def __init__(self, config: ProxyConfig, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.config = config
        self.timeouts = RequestTimeouts.of(config.timeouts)
        self.limits = RequestLimits.of(config.limits)
        self.stats = Stats()
        self.connections: set[ClientConnection] = set()
        self.pools: dict[tuple[str, int], Pool] = {}
        self.tasks: set[asyncio.Task[Any]] = set()
        self.draining = False
        self.retries = 0
        self.rejected = 0
        self.refused = 0
        rng = random.Random()  # noqa: S311 (sampling and sticky keys, not secrets)
        self.draw = rng.random
        self._bits = rng.getrandbits
        self.health = HealthChecker(config)
        self.diff = DiffCollector()
        self.shadow = ShadowDispatcher(self, self.diff)
        self.runtime: Runtime = self._compile(config)
        self.server: asyncio.Server | None = None
        self._ticker: asyncio.Task[None] | None = None

    def take_diff(self) -> CollectorState:
        """The diff counts since the last call (the collector's state, with the requests the
        shadow dispatcher compared the same), handed over: counting starts again."""
        self.shadow.take_same()
        return self.diff.take()

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Start a task and keep a reference to it until it ends."""
        task = self.loop.create_task(coro, name=name)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def new_key(self) -> bytes:
        """A new sticky key (:func:`stageless.routing.headers.sticky_key`, 128 random bits).

        A sticky key only spreads users over buckets; it protects nothing (a client may send any
        key it likes), so a fast per-process generator seeded by the OS serves, rather than a
        system call per first visit.
        """
        return sticky_key(self._bits(128).to_bytes(16, "big"))

    def _compile(self, config: ProxyConfig) -> Runtime:
        runtime = build_runtime(config, self.stats, self._pool, self.health.address)
        self.shadow.configure(
            [(s.name, s.shadow) for s in config.services],
            max((s.shadow.queue for s in config.services if s.shadow), default=1000),
        )
        return runtime

    def _pool(self, address: tuple[str, int]) -> Pool:
        pool = self.pools.get(address)
        if pool is None:
            pool = Pool(
                self.loop,
                address,
                max_idle=self.config.pool.max_idle_per_address,
                idle_timeout=self.config.pool.idle_timeout_s,
            )
            self.pools[address] = pool
        else:
            pool.max_idle = self.config.pool.max_idle_per_address
            pool.idle_timeout = self.config.pool.idle_timeout_s
        return pool

    async def start(self, sock: socket.socket) -> None:
        self.server = await self.loop.create_server(
            lambda: ClientConnection(self), sock=sock, backlog=4096
        )
        self.health.start()
        self.shadow.start()
        self._ticker = self.spawn(self._tick(), "proxy ticker")

    def reload(self, config: ProxyConfig) -> None:
        """Apply a new configuration (already validated); in-flight requests finish on the old."""
        self.config = config
        self.timeouts = RequestTimeouts.of(config.timeouts)
        self.limits = RequestLimits.of(config.limits)
        self.health.update(config)
        self.runtime = self._compile(config)
        wanted = {a for s in config.services for a in (*s.stable.endpoints, *s.candidate.endpoints)}
        for address in list(self.pools):
            if address not in wanted:
                self.pools.pop(address).close()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            now = self.loop.time()
            for conn in list(self.connections):
                conn.check_deadline(now)
            for pool in self.pools.values():
                pool.expire(now)
            self.shadow.expire(now)

    async def drain(self, grace: float) -> None:
        """Stop accepting, finish in-flight requests for up to ``grace`` seconds, then close."""
        self.draining = True
        if self.server is not None:
            self.server.close()
        for conn in list(self.connections):
            if conn.exchange is None and not conn.queued and not conn.reading_head:
                conn.close()
        deadline = self.loop.time() + grace
        while self.connections and self.loop.time() < deadline:
            await asyncio.sleep(0.05)
        for conn in list(self.connections):
            conn.abort()
        await self.stop()

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        await self.health.stop()
        await self.shadow.stop()
        for pool in self.pools.values():
            pool.close()
        if self.server is not None:
            self.server.close()


__all__ = ["Worker", "listening_socket"]
