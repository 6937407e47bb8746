"""One error shape: every route outside /ofrep/v1, every documented error status.

The walk starts from the app's route table: each route must be documented in
``stageless.api.openapi.OPERATIONS`` (and each operation must be a route), and for every error
status an operation documents there is a request here that provokes it; the answer must be
RFC 9457 problem+json with a machine-readable ``code``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from starlette.routing import Route

from stageless.api.openapi import OPERATIONS, Operation
from tests.api.conftest import DOC, PROXY_DOC, Api, make_settings, running_api
from tests.api.rollout_support import PLAN, finished_rollout, held_rollout

LIMIT = 4096
Recipe = Callable[[Api, str], Awaitable[httpx.Response]]


@pytest.fixture
async def small_api(tmp_path: Path) -> AsyncIterator[Api]:
    async for api in running_api(make_settings(tmp_path, max_body_bytes=LIMIT)):
        await api.client.put("/api/v1/flag-sets/web", content=DOC, headers=api.headers("write"))
        await api.client.put(
            "/api/v1/proxy-configs/web", content=PROXY_DOC, headers=api.headers("write")
        )
        yield api


def _fill(path: str, name: str = "web", version: str = "1") -> str:
    return path.replace("{name}", name).replace("{version}", version).replace("{rollout}", name)


def _lower_scope(op: Operation) -> tuple[str, str]:
    """A token too weak for ``op``, and the flag set to name (sdk ops: another set)."""
    if op.scope == "sdk":
        return "sdk", "other"
    return ("read" if op.scope in {"write", "admin"} else "sdk"), "web"


async def _send(
    api: Api, op: Operation, path: str, headers: dict[str, str], **kw: object
) -> httpx.Response:
    return await api.client.request(op.method.upper(), path, headers=headers, **kw)  # type: ignore[arg-type]


def _recipe(op: Operation, status: int) -> Recipe:
    async def unauthorized(api: Api, path: str) -> httpx.Response:
        return await _send(api, op, _fill(path), {})

    async def forbidden(api: Api, path: str) -> httpx.Response:
        scope, name = _lower_scope(op)
        return await _send(api, op, _fill(path, name), api.headers(scope))

    async def not_found(api: Api, path: str) -> httpx.Response:
        versions = {"from": "1", "to": "1"}  # so that the diff route gets as far as the lookup
        return await _send(api, op, _fill(path, "missing"), api.headers("admin"), params=versions)

    document = PROXY_DOC if op.path.startswith("/api/v1/proxy-configs") else DOC

    async def precondition(api: Api, path: str) -> httpx.Response:
        return await _send(
            api, op, _fill(path), api.headers("admin", **{"If-Match": '"stale"'}), content=document
        )

    async def too_large(api: Api, path: str) -> httpx.Response:
        return await _send(api, op, _fill(path), api.headers("admin"), content=b" " * (LIMIT + 1))

    async def unsupported(api: Api, path: str) -> httpx.Response:
        headers = api.headers("admin", **{"Content-Type": "text/csv"})
        return await _send(api, op, _fill(path), headers, content=DOC)

    async def bad_request(api: Api, path: str) -> httpx.Response:
        headers = api.headers("admin", **{"If-None-Match": '"abc"'})
        return await _send(api, op, _fill(path), headers, content=DOC)

    async def conflict(api: Api, path: str) -> httpx.Response:
        if path == "/api/v1/rollouts":  # its service has a rollout running already
            held_rollout(api.store)
            return await _send(api, op, path, api.headers("admin"), content=PLAN)
        rollout = finished_rollout(api.store)  # nothing to ask of a finished rollout
        return await _send(api, op, _fill(path, rollout), api.headers("admin"))

    async def invalid(api: Api, path: str) -> httpx.Response:
        if op.body:
            return await _send(api, op, _fill(path), api.headers("admin"), content='{"flags": 1}')
        if "{version}" in path:
            return await _send(api, op, _fill(path, version="x"), api.headers("admin"))
        query = {"from": "0"} if path.endswith("/diff") else {"limit": "0"}
        return await _send(api, op, _fill(path), api.headers("admin"), params=query)

    recipes: dict[int, Recipe] = {
        400: bad_request,
        401: unauthorized,
        403: forbidden,
        404: not_found,
        409: conflict,
        412: precondition,
        413: too_large,
        415: unsupported,
        422: invalid,
    }
    return recipes[status]


#: Documented statuses a test elsewhere provokes, because they need a broken database.
COVERED_ELSEWHERE = {("get", "/api/v1/health", 503): "tests/api/test_system.py"}
CASES = [
    (op, status)
    for op in OPERATIONS
    for status in op.errors
    if (op.method, op.path, status) not in COVERED_ELSEWHERE
]


def _rest_routes(api: Api) -> set[tuple[str, str]]:
    found = set()
    for route in api.app.routes:
        assert isinstance(route, Route), f"unexpected route type {route!r}"
        if route.path.startswith("/ofrep/"):
            continue  # the OFREP routes answer with the protocol's own error bodies
        for method in route.methods or ():
            if method != "HEAD":
                found.add((method.lower(), route.path))
    return found


async def test_every_route_is_documented_and_every_operation_is_a_route(api: Api) -> None:
    documented = {(op.method, op.path) for op in OPERATIONS}
    assert _rest_routes(api) == documented


def test_every_route_needs_a_token_except_health() -> None:
    open_routes = {op.path for op in OPERATIONS if op.scope is None}
    assert open_routes == {"/api/v1/health"}
    for op in OPERATIONS:
        if op.scope is not None:
            assert {401, 403} <= set(op.errors), op.path


@pytest.mark.parametrize(
    ("op", "status"), CASES, ids=[f"{op.method} {op.path} {status}" for op, status in CASES]
)
async def test_every_documented_error_answers_in_the_problem_shape(
    small_api: Api, op: Operation, status: int
) -> None:
    response = await _recipe(op, status)(small_api, op.path)
    assert response.status_code == status, response.text
    _assert_problem(response, status)
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Bearer")
    if status == 422:
        assert response.json()["errors"], "422 problems list the offending paths"


async def test_unknown_routes_and_methods_answer_in_the_problem_shape(api: Api) -> None:
    _assert_problem(await api.client.get("/api/v1/nothing-here"), 404)
    _assert_problem(
        await api.client.patch("/api/v1/flag-sets/web", headers=api.headers("admin")), 405
    )


def _assert_problem(response: httpx.Response, status: int) -> None:
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert set(body) <= {"type", "title", "status", "detail", "code", "errors"}
    assert body["status"] == status
    assert body["type"] == f"https://stageless.dev/problems/{body['code']}"
    assert body["code"] and body["title"] and body["detail"]
