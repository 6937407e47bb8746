"""REST routes of rollouts (under /api/v1/rollouts).

* ``POST /api/v1/rollouts`` (``write``): start a rollout from a plan (YAML or JSON body);
  422 naming every bad path of an invalid plan, 409 if the service has a rollout running.
  Answers 201 with the rollout and its ``Location``; the runner starts it at once.
* ``GET /api/v1/rollouts`` (``read``): newest first; ``?status=running|finished``, ``?limit``.
* ``GET /api/v1/rollouts/{rollout}`` (``read``): phase, step, the candidate's traffic, the
  reason, the current step's evidence (batches consumed) and the judge's latest decision, and
  the plan.
* ``POST /api/v1/rollouts/{rollout}/pause|resume|promote|abort|approve`` (``write``): recorded
  and answered 202; the instance running the rollout acts on it within a tick. An optional
  ``X-Stageless-Message`` header is the reason (an abort's shows in the history). 409 when the
  rollout has finished, or, for approve, when it is not waiting for an approval.
* ``GET /api/v1/rollouts/{rollout}/history`` (``read``): the transitions, oldest first
  (``?after=<seq>``, ``?limit``).
"""

from __future__ import annotations

import json
from functools import partial
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from stageless.api.auth import require
from stageless.api.context import get_context
from stageless.api.flagsets import MESSAGE_HEADER, document_format
from stageless.api.params import int_param, timestamp
from stageless.errors import Issue, ValidationError
from stageless.rollout.machine import describe_step
from stageless.service import RolloutView
from stageless.service.rolloutstate import to_json
from stageless.store import RolloutAction, RolloutRequest, RolloutTransition, TokenScope

PREFIX = "/api/v1/rollouts"
STATUSES = ("running", "finished")
_DECISION_KEYS = (
    "verdict",
    "summary",
    "canary_requests",
    "baseline_requests",
    "batches",
    "intervals",
    "duration_s",
)


def _time(seconds: float | None) -> str | None:
    return None if seconds is None else timestamp(seconds)


def rollout_json(view: RolloutView, *, plan: bool = False) -> dict[str, Any]:
    """A rollout as the API shows it (``plan``: with its plan, as validated)."""
    record, state = view.record, view.state
    step = view.plan.steps[state.step]
    judge = view.judge if view.judge is not None and view.judge.get("step") == state.step else None
    out: dict[str, Any] = {
        "id": record.id,
        "service": record.service,
        "phase": str(state.phase),
        "finished": record.finished,
        "reason": state.reason,
        "step": {
            "index": state.step,
            "number": state.step + 1,
            "of": len(view.plan.steps),
            "kind": step.kind,
            "description": describe_step(step),
            "started_at": _time(state.step_started_at),
        },
        "paused_from": None if state.paused_from is None else str(state.paused_from),
        "traffic": to_json(state.traffic),
        "evidence": {
            "batches": view.evidence,
            "decision": None if judge is None else {k: judge.get(k) for k in _DECISION_KEYS},
        },
        "shadow": None if state.diff is None else to_json(state.diff),
        "transitions": record.seq,
        "lease": {"owner": record.lease_owner, "expires_at": _time(record.lease_expires)},
        "created_by": record.created_by,
        "created_at": timestamp(record.created_at),
        "updated_at": timestamp(record.updated_at),
        "finished_at": _time(record.finished_at),
    }
    if plan:
        out["plan"] = view.plan.model_dump(mode="json")
    return out


def transition_json(entry: RolloutTransition) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "at": timestamp(entry.at),
        "from": entry.from_phase,
        "to": entry.to_phase,
        "step": entry.step,
        "reason": entry.reason,
        "actor": entry.actor,
        "event": json.loads(entry.event),
        "commands": json.loads(entry.commands),
    }


def request_json(request: RolloutRequest) -> dict[str, Any]:
    return {
        "id": request.id,
        "rollout": request.rollout_id,
        "action": str(request.action),
        "actor": request.actor,
        "step": request.step,
        "reason": request.reason,
        "at": timestamp(request.at),
    }


async def start_rollout(request: Request) -> Response:
    principal = await require(request, TokenScope.WRITE)
    document_format(request)  # 415 for a content type that is neither YAML nor JSON
    body = await request.body()
    ctx = get_context(request)
    view = await run_in_threadpool(lambda: ctx.service.rollouts.start(body, actor=principal.name))
    if ctx.controller is not None:
        ctx.controller.wake()
    headers = {"Location": f"{PREFIX}/{view.record.id}"}
    return JSONResponse(rollout_json(view, plan=True), status_code=201, headers=headers)


async def list_rollouts(request: Request) -> Response:
    await require(request, TokenScope.READ)
    status = request.query_params.get("status") or None
    if status is not None and status not in STATUSES:
        raise ValidationError([Issue("status", f"{status!r}; expected running or finished")])
    limit = int_param(request.query_params.get("limit"), "limit", default=100, low=1, high=1000)
    unfinished = None if status is None else status == "running"
    rollouts = get_context(request).service.rollouts
    views = await run_in_threadpool(lambda: rollouts.list_all(unfinished=unfinished, limit=limit))
    return JSONResponse({"rollouts": [rollout_json(view) for view in views]})


async def get_rollout(request: Request) -> Response:
    await require(request, TokenScope.READ)
    rollout = request.path_params["rollout"]
    view = await run_in_threadpool(get_context(request).service.rollouts.get, rollout)
    return JSONResponse(rollout_json(view, plan=True))


async def act(action: RolloutAction, request: Request) -> Response:
    principal = await require(request, TokenScope.WRITE)
    rollout = request.path_params["rollout"]
    reason = request.headers.get(MESSAGE_HEADER, "")
    ctx = get_context(request)
    recorded = await run_in_threadpool(
        lambda: ctx.service.rollouts.request(rollout, action, actor=principal.name, reason=reason)
    )
    if ctx.controller is not None:
        ctx.controller.wake(rollout)
    return JSONResponse({"request": request_json(recorded)}, status_code=202)


async def history(request: Request) -> Response:
    await require(request, TokenScope.READ)
    rollout = request.path_params["rollout"]
    query = request.query_params
    after = int_param(query.get("after"), "after", default=0, low=0, high=2**62)
    limit = int_param(query.get("limit"), "limit", default=100, low=1, high=1000)
    rollouts = get_context(request).service.rollouts
    entries = await run_in_threadpool(
        lambda: rollouts.history(rollout, after_seq=after, limit=limit)
    )
    return JSONResponse(
        {
            "transitions": [transition_json(entry) for entry in entries],
            "next_after": entries[-1].seq if entries else after,
        }
    )


def routes() -> list[BaseRoute]:
    actions = [
        Route(f"{PREFIX}/{{rollout}}/{action.value}", partial(act, action), methods=["POST"])
        for action in RolloutAction
    ]
    return [
        Route(PREFIX, start_rollout, methods=["POST"]),
        Route(PREFIX, list_rollouts, methods=["GET"]),
        Route(PREFIX + "/{rollout}", get_rollout, methods=["GET"]),
        Route(PREFIX + "/{rollout}/history", history, methods=["GET"]),
        *actions,
    ]
