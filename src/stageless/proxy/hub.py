"""The proxy's one place for numbers: merged statistics, batches, diff reports and /metrics.

Every worker's statistics and diff collector are merged here once a second (from the same
process with one worker, through a pipe with several). The hub writes one batch per service,
route, version and traffic class every ``batches.interval_s`` for the canary judge, and serves
the admin endpoints:

- ``GET /metrics``: Prometheus text (``stageless_proxy_*``);
- ``GET /diff``: the diff report as JSON (``stageless diff show --url``);
- ``GET /healthz``: 200 while serving, 503 while draining;
- ``GET /status``: which hot path runs (compiled or interpreted, and why), services, weights,
  upstream health, connections (JSON).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import Callable, Generator
from typing import Any

import uvicorn
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from stageless.analysis.batch import Version
from stageless.diff import CollectorState, DiffCollector
from stageless.proxy.batches import Aggregate, BatchWriter
from stageless.proxy.config import ControlPlaneConfig, ProxyConfig
from stageless.proxy.exposition import render_metrics
from stageless.proxy.reporter import Reporter
from stageless.proxy.snapshots import StatsSnapshot

log = logging.getLogger("stageless.proxy")


class AdminServer(uvicorn.Server):
    """uvicorn serving the admin app inside the proxy's loop, leaving signals to the proxy."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def admin_server(app: Starlette) -> AdminServer:
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", loop="none")
    return AdminServer(config)


class Hub:
    """``control_plane``: where to report (a pushed configuration does not carry it; the local
    file that names the control plane does)."""

    def __init__(
        self, config: ProxyConfig, *, control_plane: ControlPlaneConfig | None = None
    ) -> None:
        self.aggregate = Aggregate()
        self.writer = BatchWriter(config.batches.path) if config.batches.path else None
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(self.aggregate.collector(self.writer))
        self.diff = DiffCollector()
        # A proxy that follows a control plane reports its batches and diff counts back to it.
        control_plane = control_plane or config.control_plane
        self.reporter = Reporter(control_plane) if control_plane is not None else None
        self.draining = False
        self.status: Callable[[], dict[str, Any]] = dict
        self.configure(config)

    def configure(self, config: ProxyConfig) -> None:
        self.config = config
        for service in config.services:
            share = service.split.weight / 100
            self.aggregate.set_share(service.name, Version.CANDIDATE, share)
            self.aggregate.set_share(service.name, Version.STABLE, 1 - share)
            names = [r.name for r in service.routes]
            if not any(r.prefix == "/" for r in service.routes):
                names.append("default")
            for name in names:
                self.aggregate.declare(service.name, name)

    def absorb(self, snapshot: StatsSnapshot, diff: CollectorState | None) -> None:
        self.aggregate.merge(snapshot)
        if diff is not None:
            self.diff.merge(diff)
            if self.reporter is not None:
                self.reporter.add_diff(diff)

    async def run_batches(self) -> None:
        """Emit batches every interval, at wall-clock multiples of the interval.

        Each boundary is emitted once: the next one is computed from the last one emitted,
        not from when the sleep returned (a sleep that ends a hair early or late must not emit
        the same interval twice, which gave two batches with one ``ts``).
        """
        loop = asyncio.get_running_loop()
        last = 0.0
        while True:
            interval = self.config.batches.interval_s
            end = (math.floor(time.time() / interval) + 1) * interval  # the next boundary
            if end <= last:
                end = last + interval
            await asyncio.sleep(max(0.0, end - time.time()))
            await self.flush_batches(loop, end)
            last = end

    async def flush_batches(self, loop: asyncio.AbstractEventLoop, end: float) -> None:
        """Write the batches of the interval that ends at ``end`` (off the event loop)."""
        batches = self.aggregate.emit_batches(end, self.config.batches.interval_s)
        if self.writer is not None and batches:
            await loop.run_in_executor(None, self.writer.write, batches)
        if self.reporter is not None:
            await self.reporter.report(batches)

    async def close(self) -> None:
        """Close the batch file and the connection to the control plane."""
        if self.writer is not None:
            self.writer.close()
        if self.reporter is not None:
            await self.reporter.close()

    def app(self) -> Starlette:
        async def metrics(request: Request) -> Response:
            return Response(
                render_metrics(self.registry),
                media_type="text/plain; version=0.0.4; charset=utf-8",
            )

        async def diff(request: Request) -> Response:
            return JSONResponse(self.diff.report().to_json())

        async def healthz(request: Request) -> Response:
            if self.draining:
                return PlainTextResponse("draining\n", status_code=503)
            return PlainTextResponse("ok\n")

        async def status(request: Request) -> Response:
            return Response(json.dumps(self.status(), indent=2), media_type="application/json")

        return Starlette(
            routes=[
                Route("/metrics", metrics),
                Route("/diff", diff),
                Route("/healthz", healthz),
                Route("/status", status),
            ]
        )


__all__ = ["AdminServer", "Hub", "admin_server"]
