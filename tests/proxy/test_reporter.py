"""The proxy's reports to the control plane, against a real loopback HTTP server: batches and
diff counts arrive, a failed report is kept for the next one, a backlog goes in several
requests, a refusal drops what was refused."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from stageless.diff import DiffCollector, state_from_json
from stageless.proxy.config import ControlPlaneConfig
from stageless.proxy.reporter import BATCHES_PER_REQUEST, Reporter
from tests.analysis.factories import batch
from tests.diff.factories import json_response
from tests.ports import free_port


class Receiver:
    """A control plane stand-in that keeps every report and answers ``status``."""

    def __init__(self) -> None:
        self.reports: list[dict[str, Any]] = []
        self.status = 202
        self.tokens: list[str] = []

    async def report(self, request: Request) -> Response:
        self.tokens.append(request.headers.get("authorization", ""))
        if self.status >= 300:
            return JSONResponse({"title": "no"}, status_code=self.status)
        self.reports.append(json.loads(await request.body()))
        return JSONResponse({}, status_code=self.status)


@contextlib.asynccontextmanager
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    target = Receiver()
    app = Starlette(
        routes=[Route("/api/v1/proxy-configs/edge/reports", target.report, methods=["POST"])]
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.get_running_loop().create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield target, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


def reporter(url: str) -> Reporter:
    return Reporter(ControlPlaneConfig(url=url, token=SecretStr("t" * 20), config="edge"))


def diff_state() -> Any:
    collector = DiffCollector()
    collector.record("shop GET /a", json_response({"n": 1}), json_response({"n": 2}))
    return collector.take()


async def test_batches_and_diff_counts_arrive_with_the_token() -> None:
    async with receiver() as (target, url):
        sender = reporter(url)
        sender.add_diff(diff_state())
        assert await sender.report([batch(ts=10.0), batch(ts=10.0, requests=7)])
        await sender.close()
    [report] = target.reports
    assert [b["requests"] for b in report["batches"]] == [100, 7]
    assert list(state_from_json(report["diff"]).endpoints) == ["shop GET /a"]
    assert target.tokens == ["Bearer " + "t" * 20]
    assert sender.status()["sent"] == 2


async def test_a_failed_report_is_sent_with_the_next_one() -> None:
    async with receiver() as (target, url):
        sender = reporter(url)
        sender.add_diff(diff_state())
        target.status = 503
        assert not await sender.report([batch(ts=10.0)])
        assert sender.status()["pending"] == 1
        target.status = 202
        assert await sender.report([batch(ts=20.0)])
        await sender.close()
    [report] = target.reports
    assert [b["ts"] for b in report["batches"]] == [10.0, 20.0]
    assert state_from_json(report["diff"]).endpoints["shop GET /a"].total == 1  # kept too


@pytest.mark.parametrize("backlog", [BATCHES_PER_REQUEST * 2 + 3])
async def test_a_backlog_goes_in_several_requests(backlog: int) -> None:
    async with receiver() as (target, url):
        sender = reporter(url)
        assert await sender.report([batch(ts=float(n)) for n in range(backlog)])
        await sender.close()
    sizes = [len(r["batches"]) for r in target.reports]
    assert sizes == [BATCHES_PER_REQUEST, BATCHES_PER_REQUEST, 3]
    assert [b["ts"] for r in target.reports for b in r["batches"]] == [
        float(n) for n in range(backlog)
    ]


async def test_a_refused_report_is_dropped_not_retried_forever() -> None:
    async with receiver() as (target, url):
        sender = reporter(url)
        target.status = 403
        assert not await sender.report([batch(ts=10.0)])
        status = sender.status()
        assert (status["pending"], status["dropped"]) == (0, 1)
        assert status["last_error"] == "refused: HTTP 403"
        await sender.close()
