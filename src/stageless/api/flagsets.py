"""REST routes for flag sets: CRUD with ETags, history, diff and restore (under /api/v1).

Reads need a ``read`` token, writes a ``write`` token; every change is recorded with the
token's name as author and audit actor. See docs/control-plane.md for examples.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from stageless.api.auth import require
from stageless.api.context import get_context
from stageless.api.params import (
    if_match,
    if_none_match,
    int_param,
    quote_etag,
    timestamp,
    version_param,
)
from stageless.api.problem import Problem
from stageless.errors import Issue
from stageless.flags.decode import DocumentFormat
from stageless.service import DocumentDiff, FlagSetView, Precondition
from stageless.service.documents import load_stored
from stageless.store import FlagSetRecord, FlagSetVersion, TokenScope

PREFIX = "/api/v1/flag-sets"
_YAML_TYPES = {"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"}
_JSON_TYPES = {"application/json"}
MESSAGE_HEADER = "x-stageless-message"


def flag_set_json(view: FlagSetView) -> dict[str, Any]:
    record = view.record
    return {
        "name": record.name,
        "version": record.version,
        "etag": record.etag,
        "document": view.document,
        "created_at": timestamp(record.created_at),
        "updated_at": timestamp(record.updated_at),
        "warnings": [{"path": w.path, "message": w.message} for w in view.warnings],
    }


def summary_json(record: FlagSetRecord) -> dict[str, Any]:
    return {
        "name": record.name,
        "version": record.version,
        "etag": record.etag,
        "updated_at": timestamp(record.updated_at),
    }


def version_json(version: FlagSetVersion, *, document: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "flag_set": version.flag_set,
        "version": version.version,
        "etag": version.etag,
        "author": version.author,
        "message": version.message,
        "created_at": timestamp(version.created_at),
    }
    if document:
        out["document"] = load_stored(version.document)
    return out


def diff_json(name: str, old: int, new: int, diff: DocumentDiff) -> dict[str, Any]:
    return {
        "flag_set": name,
        "from": old,
        "to": new,
        "added": list(diff.added),
        "removed": list(diff.removed),
        "changed": {
            key: [change.as_json() for change in changes] for key, changes in diff.changed.items()
        },
        "other": [change.as_json() for change in diff.other],
    }


def with_etag(body: dict[str, Any], etag: str, status: int = 200) -> Response:
    """``body`` as JSON with ``etag`` as its (strong) ETag."""
    return JSONResponse(body, status_code=status, headers={"ETag": quote_etag(etag)})


async def list_flag_sets(request: Request) -> Response:
    await require(request, TokenScope.READ)
    records = await run_in_threadpool(get_context(request).service.flag_sets.list_all)
    return JSONResponse({"flag_sets": [summary_json(record) for record in records]})


async def get_flag_set(request: Request) -> Response:
    await require(request, TokenScope.READ)
    name = request.path_params["name"]
    view = await run_in_threadpool(get_context(request).service.flag_sets.get, name)
    wanted = if_none_match(request)
    if "*" in wanted or view.record.etag in wanted:
        return Response(status_code=304, headers={"ETag": quote_etag(view.record.etag)})
    return with_etag(flag_set_json(view), view.record.etag)


def document_format(request: Request) -> DocumentFormat | None:
    """The format the ``Content-Type`` names (None: guess from the text); 415 for others."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media in _YAML_TYPES:
        return "yaml"
    if media in _JSON_TYPES:
        return "json"
    if media in {"", "text/plain", "application/octet-stream"}:
        return None  # guessed from the text
    raise Problem(
        415, f"content type {media!r} is not accepted; send application/json or application/yaml"
    )


def write_precondition(request: Request) -> Precondition:
    """What ``If-Match`` / ``If-None-Match: *`` ask of a write (400 for another If-None-Match)."""
    none_match = if_none_match(request)
    if none_match and none_match != ["*"]:
        raise Problem(400, "If-None-Match on a write must be *: create only")
    return Precondition(create_only=bool(none_match), if_match=if_match(request))


async def put_flag_set(request: Request) -> Response:
    principal = await require(request, TokenScope.WRITE)
    name = request.path_params["name"]
    body_format = document_format(request)
    precondition = write_precondition(request)
    body = await request.body()
    message = request.headers.get(MESSAGE_HEADER, "")
    service = get_context(request).service

    def write() -> Any:
        return service.flag_sets.put(
            name,
            body,
            precondition=precondition,
            actor=principal.name,
            message=message,
            format=body_format,
        )

    written = await run_in_threadpool(write)
    response = with_etag(
        flag_set_json(written.view), written.view.record.etag, 201 if written.created else 200
    )
    if written.created:
        response.headers["Location"] = f"{PREFIX}/{name}"
    return response


async def delete_flag_set(request: Request) -> Response:
    principal = await require(request, TokenScope.WRITE)
    name = request.path_params["name"]
    expected = if_match(request)
    service = get_context(request).service
    await run_in_threadpool(
        lambda: service.flag_sets.delete(name, if_match=expected, actor=principal.name)
    )
    return Response(status_code=204)


async def list_versions(request: Request) -> Response:
    await require(request, TokenScope.READ)
    name = request.path_params["name"]
    limit = int_param(request.query_params.get("limit"), "limit", default=100, low=1, high=1000)
    service = get_context(request).service
    versions = await run_in_threadpool(lambda: service.flag_sets.versions(name, limit=limit))
    return JSONResponse({"versions": [version_json(v, document=False) for v in versions]})


async def get_version(request: Request) -> Response:
    await require(request, TokenScope.READ)
    name = request.path_params["name"]
    number = version_param(request)
    service = get_context(request).service
    version = await run_in_threadpool(service.flag_sets.version, name, number)
    return with_etag(version_json(version, document=True), version.etag)


async def diff_versions(request: Request) -> Response:
    await require(request, TokenScope.READ)
    name = request.path_params["name"]
    query = request.query_params
    old = int_param(query.get("from"), "from", default=0, low=1, high=2**62)
    new = int_param(query.get("to"), "to", default=0, low=1, high=2**62)
    if not old or not new:
        missing = [field for field, value in (("from", old), ("to", new)) if not value]
        raise Problem(
            422,
            "both versions are needed: ?from=A&to=B",
            code="validation",
            errors=[Issue(field, "is required; expected a version number") for field in missing],
        )
    diff = await run_in_threadpool(get_context(request).service.flag_sets.diff, name, old, new)
    return JSONResponse(diff_json(name, old, new, diff))


async def restore_version(request: Request) -> Response:
    principal = await require(request, TokenScope.WRITE)
    name = request.path_params["name"]
    number = version_param(request)
    expected = if_match(request)
    service = get_context(request).service
    view = await run_in_threadpool(
        lambda: service.flag_sets.restore(name, number, if_match=expected, actor=principal.name)
    )
    return with_etag(flag_set_json(view), view.record.etag)


def routes() -> list[BaseRoute]:
    return [
        Route(PREFIX, list_flag_sets, methods=["GET"]),
        Route(PREFIX + "/{name}", get_flag_set, methods=["GET"]),
        Route(PREFIX + "/{name}", put_flag_set, methods=["PUT"]),
        Route(PREFIX + "/{name}", delete_flag_set, methods=["DELETE"]),
        Route(PREFIX + "/{name}/versions", list_versions, methods=["GET"]),
        Route(PREFIX + "/{name}/versions/{version}", get_version, methods=["GET"]),
        Route(PREFIX + "/{name}/versions/{version}/restore", restore_version, methods=["POST"]),
        Route(PREFIX + "/{name}/diff", diff_versions, methods=["GET"]),
    ]
