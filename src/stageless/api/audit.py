"""GET /api/v1/audit: the append-only audit log, oldest first, in pages.

Query: ``after`` (the last id seen, default 0), ``limit`` (1 to 1000, default 100), ``target``
(e.g. ``flag_set:web`` or ``token:ci``). The answer carries ``next_after`` to page on.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from stageless.api.auth import require
from stageless.api.context import get_context
from stageless.api.params import int_param, timestamp
from stageless.store import AuditEntry, TokenScope


def entry_json(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "ts": timestamp(entry.ts),
        "actor": entry.actor,
        "action": str(entry.action),
        "target": entry.target,
        "before": None if entry.before is None else json.loads(entry.before),
        "after": None if entry.after is None else json.loads(entry.after),
    }


async def list_audit(request: Request) -> Response:
    await require(request, TokenScope.READ)
    query = request.query_params
    after = int_param(query.get("after"), "after", default=0, low=0, high=2**62)
    limit = int_param(query.get("limit"), "limit", default=100, low=1, high=1000)
    target = query.get("target") or None
    audit = get_context(request).service.audit
    entries = await run_in_threadpool(
        lambda: audit.entries(after_id=after, limit=limit, target=target)
    )
    return JSONResponse(
        {
            "entries": [entry_json(entry) for entry in entries],
            "next_after": entries[-1].id if entries else after,
        }
    )


def routes() -> list[BaseRoute]:
    return [Route("/api/v1/audit", list_audit, methods=["GET"])]
