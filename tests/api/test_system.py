"""Health, metrics, access logs and the OpenAPI document."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from openapi_spec_validator import validate
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from stageless.api import create_app
from stageless.api.logs import JsonFormatter
from stageless.api.openapi import openapi_document
from stageless.store import open_store
from tests.api.conftest import DOC, Api, make_settings, running_api
from tests.store.conftest import PG_SERVER, PG_URL


async def test_health_needs_no_token(api: Api) -> None:
    response = await api.client.get("/api/v1/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


@pytest.fixture
def pg_role() -> Iterator[str]:
    """A login role owning a fresh schema; the test can then forbid its logins."""
    name = f"stageless_health_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_SERVER, autocommit=True) as admin:
        admin.execute(f'CREATE ROLE "{name}" LOGIN')
        admin.execute(f'CREATE SCHEMA "{name}" AUTHORIZATION "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(PG_SERVER, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA "{name}" CASCADE')
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                (name,),
            )
            admin.execute(f'DROP ROLE "{name}"')


async def test_health_is_a_503_problem_when_the_database_stops_answering(
    tmp_path: Path, pg_role: str
) -> None:
    url = PG_URL.replace("postgres@", f"{pg_role}@") + f"?options=-csearch_path%3D{pg_role}"
    store = open_store(url)
    app = create_app(make_settings(tmp_path), store)
    try:
        async with app.router.lifespan_context(app):
            client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
            assert (await client.get("/api/v1/health")).status_code == 200
            with psycopg.connect(PG_SERVER, autocommit=True) as admin:
                admin.execute(f'ALTER ROLE "{pg_role}" NOLOGIN')
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                    (pg_role,),
                )
            down = await client.get("/api/v1/health")
            await client.aclose()
    finally:
        store.close()
    assert down.status_code == 503
    assert down.headers["content-type"] == "application/problem+json"
    assert down.json()["code"] == "unavailable"


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_metrics_count_requests_by_route_template(api: Api) -> None:
    await api.client.put("/api/v1/flag-sets/web", content=DOC, headers=api.headers("write"))
    await api.client.get("/api/v1/flag-sets/web", headers=api.headers("read"))
    await api.client.get("/api/v1/flag-sets/nope", headers=api.headers("read"))
    api.app.state.ctx.metrics.count_evaluation("web", "banner", "STATIC")
    api.app.state.ctx.metrics.count_evaluation("web", "typo-key", "ERROR", known=False)
    response = await api.client.get("/metrics", headers=api.headers("read"))
    assert response.headers["content-type"].startswith("text/plain")
    samples = _samples(response.text)
    route = "/api/v1/flag-sets/{name}"
    key = (
        "stageless_http_requests_total",
        (("method", "GET"), ("route", route), ("status", "200")),
    )
    assert samples[key] == 1
    assert samples[key[0], (("method", "GET"), ("route", route), ("status", "404"))] == 1
    assert not any("/api/v1/flag-sets/web" in str(labels) for _, labels in samples)
    count = (("method", "GET"), ("route", route))
    assert samples["stageless_http_request_duration_seconds_count", count] == 2
    evals = "stageless_flag_evaluations_total"
    assert samples[evals, (("flag", "banner"), ("flag_set", "web"), ("reason", "STATIC"))] == 1
    assert samples[evals, (("flag", "(unknown)"), ("flag_set", "web"), ("reason", "ERROR"))] == 1
    # The app's own registry, never the process-wide one.
    assert REGISTRY.get_sample_value("stageless_http_requests_total", dict(key[1])) is None


async def test_metrics_need_a_read_token_unless_public(api: Api, tmp_path: Path) -> None:
    assert (await api.client.get("/metrics")).status_code == 401
    async for public in running_api(make_settings(tmp_path / "p", metrics_public=True)):
        assert (await public.client.get("/metrics")).status_code == 200


async def test_one_json_access_line_per_request_names_the_principal_never_the_token(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="stageless.access")
    await api.client.put("/api/v1/flag-sets/web", content=DOC, headers=api.headers("write"))
    secret = "sst_secret-value.xyz"  # noqa: S105  # a fake stream token
    await api.client.get("/api/v1/flag-sets/web/stream", params={"token": secret})
    lines = [JsonFormatter().format(r) for r in caplog.records if r.name == "stageless.access"]
    assert len(lines) == 2
    put, stream = (json.loads(line) for line in lines)
    assert put["principal"] == "write-token"
    assert (put["method"], put["route"], put["status"]) == ("PUT", "/api/v1/flag-sets/{name}", 201)
    assert put["duration_ms"] >= 0
    assert stream["status"] == 401
    joined = "\n".join(lines)
    assert secret not in joined
    assert all(token not in joined for token in api.tokens.values())


async def test_the_openapi_document_is_served_and_valid(api: Api) -> None:
    response = await api.client.get("/api/v1/openapi.json", headers=api.headers("read"))
    assert response.status_code == 200
    document = response.json()
    assert document == json.loads(json.dumps(openapi_document()))
    assert document["openapi"].startswith("3.1")
    validate(document)  # raises on any structural error
