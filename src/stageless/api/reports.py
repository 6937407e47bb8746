"""``POST /api/v1/proxy-configs/{name}/reports``: what a proxy measured, for the rollout runner.

A proxy following proxy config ``name`` sends, every batch interval, a JSON body::

    {"batches": [<batch>, ...], "diff": <CollectorState JSON delta since its last report>}

(``stageless.analysis.batch`` and ``stageless.diff.wire`` describe both.) Only the proxy token
bound to ``name`` (or an admin token) may send it. The answer is 202 with the number of batches
taken; a bad report is a 422 naming every path (``batches[3].errors: ...``), and nothing of it
is stored.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from stageless.api.auth import require
from stageless.api.context import get_context
from stageless.api.problem import Problem
from stageless.store import TokenScope

PATH = "/api/v1/proxy-configs/{name}/reports"


async def add_report(request: Request) -> Response:
    name = request.path_params["name"]
    await require(request, TokenScope.PROXY, proxy_config=name)
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in ("", "application/json"):
        raise Problem(415, f"content type {media!r} is not accepted; send application/json")
    body = await request.body()
    reports = get_context(request).service.reports
    report = await run_in_threadpool(reports.add_json, name, body)
    return JSONResponse({"accepted": len(report.batches)}, status_code=202)


def routes() -> list[BaseRoute]:
    return [Route(PATH, add_report, methods=["POST"])]
