"""Dark launch: copies of user requests to the candidate, compared with stable's answers.

The user's request is served by stable exactly as without shadowing; the copy rides beside it:

- :meth:`ShadowDispatcher.offer` puts a :class:`ShadowJob` on a bounded queue and returns at
  once. A full queue drops the copy (``dropped_queue_full``), never the user's request.
- A fixed number of consumer tasks send each copy to the candidate over the dispatcher's own
  connection pools (never the pools user requests use), with their own timeout; a slow or dead
  candidate costs copies (``dropped_timeout``, ``dropped_error``), not user latency.
- For the noise filter, a share of copies is also sent a second time to stable (Diffy's
  "secondary"): differences between two stable answers measure how non-deterministic a field is.
- The stable answer the user got is captured (up to ``max_body_bytes``) by the user's exchange;
  once all answers are in, they are compared in the diff collector (:mod:`stageless.diff`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from stageless.analysis.batch import TrafficClass, Version
from stageless.diff import CompareRules, DiffCollector, Lifted, lift
from stageless.proxy.fetch import Captured, TooLargeError, fetch

if TYPE_CHECKING:
    from stageless.proxy.config import ShadowConfig
    from stageless.proxy.exchange import Exchange
    from stageless.proxy.pool import Pool
    from stageless.proxy.runtime import RouteRuntime, ServiceRuntime
    from stageless.proxy.stats import ShadowCounters
    from stageless.proxy.worker import Worker

log = logging.getLogger("stageless.proxy")

#: Copies in flight at once per worker (each waits for the candidate's answer).
CONCURRENCY = 256


class ShadowJob:
    """One copied request: the candidate's, the second stable's and the user's answers."""

    __slots__ = (
        "body",
        "body_done",
        "counters",
        "endpoint",
        "limit",
        "line",
        "noise",
        "primary",
        "primary_body",
        "primary_failed_",
        "primary_headers",
        "primary_ready",
        "primary_size",
        "primary_status",
        "request",
        "route",
        "rules",
        "service",
        "too_large",
    )

    def __init__(  # noqa: PLR0913
        self,
        service: ServiceRuntime,
        route: RouteRuntime,
        endpoint: str,
        line: str,
        request: bytes,
        noise: bytes | None,
        counters: ShadowCounters,
        limit: int,
    ) -> None:
        self.service = service
        self.route = route
        self.endpoint = endpoint
        self.line = line
        self.request = request
        self.noise = noise
        self.counters = counters
        self.limit = limit
        self.body: list[bytes] = []
        self.body_done = asyncio.Event()
        self.primary_ready = asyncio.Event()
        self.primary_status = 0
        self.primary_headers: list[tuple[bytes, bytes]] = []
        self.primary_body: list[bytes] = []
        self.primary_size = 0
        self.primary_failed_ = False
        self.too_large = False
        self.rules: CompareRules | None = None

    # called by the user's exchange ------------------------------------------------------

    def request_body(self, data: bytes) -> None:
        self.body.append(data)

    def request_complete(self) -> None:
        self.body_done.set()

    def primary_head(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.primary_status = status
        self.primary_headers = [(n.lower(), v) for n, v in headers]

    def primary_body_part(self, data: bytes) -> None:
        self.primary_size += len(data)
        if self.primary_size > self.limit:
            self.too_large = True
            self.primary_body = []
        elif not self.too_large:
            self.primary_body.append(data)

    def primary_done(self) -> None:
        self.primary_ready.set()

    def primary_failed(self) -> None:
        self.primary_failed_ = True
        self.primary_ready.set()


class ShadowDispatcher:
    """The bounded queue of copies and the tasks that send and compare them."""

    def __init__(self, worker: Worker, collector: DiffCollector) -> None:
        self.worker = worker
        self.collector = collector
        self.queue: asyncio.Queue[ShadowJob] = asyncio.Queue(maxsize=1000)
        self.pools: dict[tuple[str, int], Pool] = {}
        self.tasks: list[asyncio.Task[None]] = []
        self.rules: dict[str, CompareRules] = {}

    def configure(self, services: list[tuple[str, ShadowConfig | None]], queue: int) -> None:
        """Apply the shadow settings of every service (at start and on reload)."""
        if queue != self.queue.maxsize:
            old = self.queue
            self.queue = asyncio.Queue(maxsize=queue)
            while not old.empty() and not self.queue.full():
                self.queue.put_nowait(old.get_nowait())
        self.rules = {
            name: CompareRules(
                headers=tuple(s.compare.headers),
                ignore_fields=tuple(s.compare.ignore_fields),
                ignore_headers=tuple(s.compare.ignore_headers),
                unordered_arrays=s.compare.unordered_arrays,
                max_body_bytes=s.max_body_bytes,
            )
            for name, s in services
            if s is not None
        }

    def start(self) -> None:
        for number in range(CONCURRENCY):
            self.tasks.append(self.worker.spawn(self._consume(), f"shadow consumer {number}"))

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks.clear()
        for pool in self.pools.values():
            pool.close()

    def offer(
        self,
        exchange: Exchange,
        route: RouteRuntime,
        endpoint: bytes,
        line: bytes,
        request: bytes,
        noise: bytes,
    ) -> None:
        """Queue a copy of ``exchange``'s request, or count it dropped; never blocks."""
        service = exchange.service
        shadow = service.shadow
        assert shadow is not None  # noqa: S101
        counters = self.worker.stats.shadow(service.name, route.name)
        take_noise = shadow.noise_share >= 100 or self.worker.draw() * 100 < shadow.noise_share
        job = ShadowJob(
            service,
            route,
            endpoint.decode("latin-1"),
            line.decode("latin-1"),
            request,
            noise if take_noise else None,
            counters,
            shadow.max_body_bytes,
        )
        try:
            self.queue.put_nowait(job)
        except asyncio.QueueFull:
            counters.dropped_queue_full += 1
            return
        exchange.capture = job

    async def _consume(self) -> None:
        queue = self.queue
        while True:
            if queue is not self.queue:
                queue = self.queue
            job = await queue.get()
            try:
                await self._run(job)
            except Exception:  # the one boundary: a copy never takes the worker down
                log.exception("shadow copy failed")
                job.counters.dropped_error += 1

    async def _run(self, job: ShadowJob) -> None:
        counters = job.counters
        service = job.service
        shadow = service.shadow
        if shadow is None:
            return
        timeout = shadow.timeout_s
        try:
            async with asyncio.timeout(timeout):
                await job.body_done.wait()
        except TimeoutError:
            counters.dropped_timeout += 1
            return
        body = b"".join(job.body)
        loop = self.worker.loop
        started = loop.time()
        candidate_pool = self._pool(service.candidate.pick().pool.address)
        series = job.route.series[Version.CANDIDATE, TrafficClass.SHADOW]
        head_only = job.endpoint.startswith("HEAD ")
        try:
            candidate = await fetch(
                candidate_pool,
                job.request + body,
                timeout=timeout,
                limit=shadow.max_body_bytes,
                head_only=head_only,
            )
        except TooLargeError:
            counters.sent += 1
            counters.too_large += 1
            return
        except TimeoutError:
            counters.dropped_timeout += 1
            series.observe(0, loop.time() - started, None)
            return
        except (OSError, ConnectionError):
            counters.dropped_error += 1
            series.observe(0, loop.time() - started, None)
            return
        counters.sent += 1
        series.observe(candidate.status, loop.time() - started, None)
        secondary: Captured | None = None
        if job.noise is not None:
            try:
                secondary = await fetch(
                    self._pool(service.stable.pick().pool.address),
                    job.noise + body,
                    timeout=timeout,
                    limit=shadow.max_body_bytes,
                    head_only=head_only,
                )
            except (TimeoutError, OSError, ConnectionError, TooLargeError):
                secondary = None
        try:
            async with asyncio.timeout(timeout):
                await job.primary_ready.wait()
        except TimeoutError:
            return
        if job.primary_failed_ or not job.primary_status:
            return
        if job.too_large:
            counters.too_large += 1
            return
        rules = self.rules.get(service.name)
        if rules is None:
            return
        primary = Captured(job.primary_status, job.primary_headers, b"".join(job.primary_body))
        differs = self.collector.record(
            job.endpoint,
            _lift(primary, rules),
            _lift(candidate, rules),
            _lift(secondary, rules) if secondary is not None else None,
            job.line,
        )
        counters.compared += 1
        if differs:
            counters.differing += 1

    def _pool(self, address: tuple[str, int]) -> Pool:
        pool = self.pools.get(address)
        if pool is None:
            from stageless.proxy.pool import Pool

            config = self.worker.config.pool
            pool = Pool(
                self.worker.loop,
                address,
                max_idle=config.max_idle_per_address,
                idle_timeout=config.idle_timeout_s,
            )
            self.pools[address] = pool
        return pool

    def expire(self, now: float) -> None:
        for pool in self.pools.values():
            pool.expire(now)


def _lift(captured: Captured, rules: CompareRules) -> Lifted:
    return lift(captured.status, captured.headers, captured.body, rules)


__all__ = ["ShadowDispatcher", "ShadowJob"]
