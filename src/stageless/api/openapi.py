"""The OpenAPI 3.1 document of the REST API, built from one table of operations.

``OPERATIONS`` lists every route outside /ofrep/v1 with its success and error statuses; the
document served at /api/v1/openapi.json is generated from it, and the tests check that it
matches the app's route table both ways and that every documented error status really answers
in the problem+json shape. (The OFREP routes follow the OpenFeature protocol's own document.)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from stageless import __version__

_AUTH_ERRORS = (401, 403)


@dataclass(frozen=True, slots=True)
class Operation:
    """One route and method: what it does and which statuses it answers."""

    method: str
    path: str
    summary: str
    scope: str | None  # None: no token needed
    success: tuple[int, ...]
    errors: tuple[int, ...]
    query: tuple[str, ...] = ()
    body: bool = False
    media: str = "application/json"
    schema: str = "FlagDocument"  # of the request body


_NAME_ERRORS = (*_AUTH_ERRORS, 404)
_JSON_ONLY = frozenset({"ProxyReport"})  # request bodies that are JSON only
OPERATIONS: tuple[Operation, ...] = (
    Operation("get", "/api/v1/health", "Liveness and database check", None, (200,), (503,)),
    Operation(
        "get", "/metrics", "Prometheus metrics", "read", (200,), _AUTH_ERRORS, media="text/plain"
    ),
    Operation("get", "/api/v1/openapi.json", "This document", "read", (200,), _AUTH_ERRORS),
    Operation("get", "/api/v1/flag-sets", "List flag sets", "read", (200,), _AUTH_ERRORS),
    Operation(
        "get", "/api/v1/flag-sets/{name}", "Read a flag set", "read", (200, 304), _NAME_ERRORS
    ),
    Operation(
        "put",
        "/api/v1/flag-sets/{name}",
        "Create or replace a flag set (If-Match / If-None-Match: *)",
        "write",
        (200, 201),
        (400, *_AUTH_ERRORS, 412, 413, 415, 422),
        body=True,
    ),
    Operation(
        "delete",
        "/api/v1/flag-sets/{name}",
        "Delete a flag set",
        "write",
        (204,),
        (*_NAME_ERRORS, 412),
    ),
    Operation(
        "get",
        "/api/v1/flag-sets/{name}/versions",
        "A flag set's versions, newest first",
        "read",
        (200,),
        (*_NAME_ERRORS, 422),
        query=("limit",),
    ),
    Operation(
        "get",
        "/api/v1/flag-sets/{name}/versions/{version}",
        "One version with its document",
        "read",
        (200,),
        (*_NAME_ERRORS, 422),
    ),
    Operation(
        "post",
        "/api/v1/flag-sets/{name}/versions/{version}/restore",
        "Make a new version with an old version's document",
        "write",
        (200,),
        (*_NAME_ERRORS, 412, 422),
    ),
    Operation(
        "get",
        "/api/v1/flag-sets/{name}/diff",
        "What changed between two versions, flag by flag",
        "read",
        (200,),
        (*_NAME_ERRORS, 422),
        query=("from", "to"),
    ),
    Operation(
        "get",
        "/api/v1/flag-sets/{name}/stream",
        "Server-sent events: the flag set now and after every change",
        "sdk",
        (200,),
        _NAME_ERRORS,
        query=("token",),
        media="text/event-stream",
    ),
    Operation(
        "post",
        "/api/v1/flag-sets/{name}/stream-token",
        "A short-lived signed token for ?token= on the stream (browsers' EventSource)",
        "sdk",
        (200,),
        _NAME_ERRORS,
    ),
    Operation("get", "/api/v1/proxy-configs", "List proxy configs", "read", (200,), _AUTH_ERRORS),
    Operation(
        "get",
        "/api/v1/proxy-configs/{name}",
        "Read a proxy config (secrets shown to admin and its proxy token only)",
        "read",
        (200, 304),
        _NAME_ERRORS,
    ),
    Operation(
        "put",
        "/api/v1/proxy-configs/{name}",
        "Create or replace a proxy config (If-Match / If-None-Match: *)",
        "write",
        (200, 201),
        (400, *_AUTH_ERRORS, 412, 413, 415, 422),
        body=True,
        schema="ProxyConfigDocument",
    ),
    Operation(
        "delete",
        "/api/v1/proxy-configs/{name}",
        "Delete a proxy config",
        "write",
        (204,),
        (*_NAME_ERRORS, 412),
    ),
    Operation(
        "get",
        "/api/v1/proxy-configs/{name}/versions",
        "A proxy config's versions, newest first",
        "read",
        (200,),
        (*_NAME_ERRORS, 422),
        query=("limit",),
    ),
    Operation(
        "get",
        "/api/v1/proxy-configs/{name}/versions/{version}",
        "One version of a proxy config with its document",
        "read",
        (200,),
        (*_NAME_ERRORS, 422),
    ),
    Operation(
        "get",
        "/api/v1/proxy-configs/{name}/stream",
        "Server-sent events: the proxy config now and after every change (for the proxy)",
        "proxy",
        (200,),
        _NAME_ERRORS,
        media="text/event-stream",
    ),
    Operation(
        "post",
        "/api/v1/proxy-configs/{name}/reports",
        "A proxy's report: its batches and diff counts since the last report (for rollouts)",
        "proxy",
        (202,),
        (*_NAME_ERRORS, 413, 415, 422),
        body=True,
        schema="ProxyReport",
    ),
    Operation(
        "post",
        "/api/v1/rollouts",
        "Start a rollout from a plan (YAML or JSON)",
        "write",
        (201,),
        (*_AUTH_ERRORS, 409, 413, 415, 422),
        body=True,
        schema="RolloutPlan",
    ),
    Operation(
        "get",
        "/api/v1/rollouts",
        "List rollouts, newest first",
        "read",
        (200,),
        (*_AUTH_ERRORS, 422),
        query=("status", "limit"),
    ),
    Operation(
        "get",
        "/api/v1/rollouts/{rollout}",
        "A rollout: phase, step, traffic, evidence and the judge's latest decision",
        "read",
        (200,),
        _NAME_ERRORS,
    ),
    Operation(
        "get",
        "/api/v1/rollouts/{rollout}/history",
        "A rollout's transitions, oldest first",
        "read",
        (200,),
        (*_NAME_ERRORS, 422),
        query=("after", "limit"),
    ),
    *(
        Operation(
            "post",
            f"/api/v1/rollouts/{{rollout}}/{action}",
            summary,
            "write",
            (202,),
            (*_NAME_ERRORS, 409),
        )
        for action, summary in (
            ("pause", "Ask a rollout to pause where it is"),
            ("resume", "Ask a paused rollout to go on"),
            ("promote", "Ask a rollout to promote now, skipping its remaining gates"),
            ("abort", "Ask a rollout to stop: the candidate loses all traffic at once"),
            ("approve", "Approve the testers step a rollout waits on"),
        )
    ),
    Operation(
        "get",
        "/api/v1/audit",
        "The audit log, oldest first",
        "read",
        (200,),
        (*_AUTH_ERRORS, 422),
        query=("after", "limit", "target"),
    ),
)

_DESCRIPTIONS = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    204: "No Content",
    304: "Not Modified (If-None-Match)",
    400: "Bad request",
    401: "No token, or an unknown or revoked one",
    403: "The token's scope does not allow this",
    404: "No such flag set, proxy config, version, rollout or route",
    409: "Conflict: the service has a rollout running, or the rollout cannot take this now",
    412: "Precondition failed (If-Match / If-None-Match)",
    413: "Request body too large",
    415: "Unsupported content type",
    422: "Invalid input; errors lists each path",
    503: "Database unavailable",
}


def _parameters(op: Operation) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = []
    for segment in op.path.split("/"):
        if segment.startswith("{"):
            kind = "integer" if segment == "{version}" else "string"
            params.append(
                {"name": segment[1:-1], "in": "path", "required": True, "schema": {"type": kind}}
            )
    for name in op.query:
        kind = "string" if name in {"target", "token", "status"} else "integer"
        params.append({"name": name, "in": "query", "required": False, "schema": {"type": kind}})
    return params


def _responses(op: Operation) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status in op.success:
        entry: dict[str, Any] = {"description": _DESCRIPTIONS[status]}
        if status not in (204, 304):
            entry["content"] = {op.media: {"schema": {}}}
        responses[str(status)] = entry
    for status in op.errors:
        content = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
        responses[str(status)] = {"description": _DESCRIPTIONS[status], "content": content}
    return responses


def _operation(op: Operation) -> dict[str, Any]:
    out: dict[str, Any] = {
        "summary": op.summary,
        "operationId": f"{op.method}_{op.path}".replace("/", "_").replace("{", "").replace("}", ""),
        "parameters": _parameters(op),
        "responses": _responses(op),
        "security": [] if op.scope is None else [{"bearer": []}],
    }
    if op.scope == "proxy":
        out["description"] = "Needs an admin token, or a proxy token bound to this proxy config."
    elif op.scope is not None:
        out["description"] = f"Needs a token with scope {op.scope} or higher."
    if op.body:
        schema = {"$ref": f"#/components/schemas/{op.schema}"}
        content = {"application/json": {"schema": schema}}
        if op.schema not in _JSON_ONLY:
            content["application/yaml"] = {"schema": schema}
        out["requestBody"] = {"required": True, "content": content}
    return out


@cache
def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document (built once)."""
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Stageless control plane",
            "version": __version__,
            "description": "Flag sets, proxy configs, rollouts, versions, audit log and live "
            "sync. "
            "Errors are RFC 9457 problem+json with a machine-readable code.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Problem": {
                    "type": "object",
                    "required": ["type", "title", "status", "detail", "code"],
                    "properties": {
                        "type": {"type": "string", "format": "uri"},
                        "title": {"type": "string"},
                        "status": {"type": "integer"},
                        "detail": {"type": "string"},
                        "code": {"type": "string"},
                        "errors": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["path", "message"],
                                "properties": {
                                    "path": {"type": "string"},
                                    "message": {"type": "string"},
                                },
                            },
                        },
                    },
                },
                "FlagDocument": {
                    "type": "object",
                    "description": "A flagd flag document (https://flagd.dev/schema/v0/flags.json)",
                    "required": ["flags"],
                },
                "RolloutPlan": {
                    "type": "object",
                    "description": "A rollout plan (docs/rollouts.md; the published JSON Schema "
                    "is https://stageless.dev/schemas/rollout-plan.schema.json)",
                    "required": ["service", "stable", "candidate", "steps"],
                },
                "ProxyReport": {
                    "type": "object",
                    "description": "Batches (docs/analysis.md) and a diff collector state "
                    "delta (docs/diff.md) a proxy measured since its last report",
                    "required": ["batches"],
                    "properties": {
                        "batches": {"type": "array", "items": {"type": "object"}},
                        "diff": {"type": ["object", "null"]},
                    },
                },
                "ProxyConfigDocument": {
                    "type": "object",
                    "description": "A complete stageless proxy configuration without "
                    "control_plane (docs/proxy.md)",
                    "required": ["services"],
                },
            },
        },
    }
