"""Proxy configs over the REST API: validated writes, ETags, history, secrets shown only to admin
and the bound proxy token, proxy-token scope; and their event stream on a real uvicorn server."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import uvicorn
import yaml
from httpx_sse import ServerSentEvent, aconnect_sse

from stageless.api import create_app
from stageless.store import TokenScope, open_store, sqlite_url
from tests.api.conftest import PROXY_DOC, Api, make_settings

URL = "/api/v1/proxy-configs/web"
SECRET = "test-signing-secret-0123456789abcdef"  # noqa: S105  # PROXY_DOC's test key


def with_weight(weight: float) -> str:
    document = yaml.safe_load(PROXY_DOC)
    document["services"][0]["split"]["weight"] = weight
    return json.dumps(document)


async def test_put_get_update_history_delete(api: Api) -> None:
    created = await api.client.put(
        URL, content=PROXY_DOC, headers=api.headers("write", **{"X-Stageless-Message": "first"})
    )
    assert created.status_code == 201, created.text
    assert created.headers["location"] == URL
    body = created.json()
    assert (body["name"], body["version"]) == ("web", 1)
    assert body["document"]["services"][0]["split"] == {"weight": 5}
    etag = created.headers["etag"]

    got = await api.client.get(URL, headers=api.headers("read"))
    assert (got.status_code, got.headers["etag"]) == (200, etag)
    not_modified = await api.client.get(URL, headers=api.headers("read", **{"If-None-Match": etag}))
    assert not_modified.status_code == 304

    stale = await api.client.put(
        URL, content=with_weight(50), headers=api.headers("write", **{"If-Match": '"stale"'})
    )
    assert stale.status_code == 412
    updated = await api.client.put(
        URL, content=with_weight(50), headers=api.headers("write", **{"If-Match": etag})
    )
    assert (updated.status_code, updated.json()["version"]) == (200, 2)

    history = await api.client.get(URL + "/versions", headers=api.headers("read"))
    assert [(v["version"], v["author"], v["message"]) for v in history.json()["versions"]] == [
        (2, "write-token", ""),
        (1, "write-token", "first"),
    ]
    listed = await api.client.get("/api/v1/proxy-configs", headers=api.headers("read"))
    assert [(r["name"], r["version"]) for r in listed.json()["proxy_configs"]] == [("web", 2)]

    assert (await api.client.delete(URL, headers=api.headers("write"))).status_code == 204
    assert (await api.client.get(URL, headers=api.headers("read"))).status_code == 404
    audit = await api.client.get(
        "/api/v1/audit", params={"target": "proxy_config:web"}, headers=api.headers("read")
    )
    actions = [e["action"] for e in audit.json()["entries"]]
    assert actions == ["proxy_config.create", "proxy_config.update", "proxy_config.delete"]
    assert SECRET not in audit.text


async def test_an_invalid_document_gets_422_with_every_path_and_nothing_is_stored(
    api: Api,
) -> None:
    document = yaml.safe_load(PROXY_DOC)
    document["services"][0]["split"]["weight"] = 140
    document["services"][0]["candidate"] = {"adresses": ["127.0.0.1:9002"]}
    document["control_plane"] = {"url": "http://x", "token": "t", "config": "web"}
    response = await api.client.put(URL, json=document, headers=api.headers("write"))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    paths = [error["path"] for error in response.json()["errors"]]
    assert paths == ["control_plane"]  # a pushed document never names a control plane
    del document["control_plane"]
    response = await api.client.put(URL, json=document, headers=api.headers("write"))
    assert response.status_code == 422
    messages = [f"{e['path']}: {e['message']}" for e in response.json()["errors"]]
    assert "services[0].split.weight: 140 is not between 0 and 100" in messages
    assert any(m.startswith("services[0].candidate.adresses: unknown key") for m in messages)
    assert (await api.client.get(URL, headers=api.headers("admin"))).status_code == 404
    assert api.store.list_audit(target="proxy_config:web") == []


async def test_secret_env_names_the_proxy_environment_not_the_control_planes(api: Api) -> None:
    document = yaml.safe_load(PROXY_DOC)
    document["signing_keys"] = [{"id": "k1", "secret_env": "NOT_SET_ON_THE_CONTROL_PLANE"}]
    response = await api.client.put(URL, json=document, headers=api.headers("write"))
    assert response.status_code == 201, response.text


async def test_secrets_are_shown_to_admin_and_the_bound_proxy_token_only(api: Api) -> None:
    await api.client.put(URL, content=PROXY_DOC, headers=api.headers("write"))
    for role, shows in [("admin", True), ("proxy", True), ("write", False), ("read", False)]:
        response = await api.client.get(URL, headers=api.headers(role))
        assert response.status_code == 200, (role, response.text)
        secret = response.json()["document"]["signing_keys"][0]["secret"]
        assert (secret == SECRET) is shows, role
        if not shows:
            assert secret.startswith("redacted:sha256:")
    # One version, as the rollback path reads it: the same rule for secrets.
    admin_version = await api.client.get(URL + "/versions/1", headers=api.headers("admin"))
    assert admin_version.json()["document"]["signing_keys"][0]["secret"] == SECRET
    assert admin_version.json()["version"] == 1
    read_version = await api.client.get(URL + "/versions/1", headers=api.headers("read"))
    assert SECRET not in read_version.text
    rolled_back = await api.client.put(
        URL, json=admin_version.json()["document"], headers=api.headers("write")
    )
    assert (rolled_back.status_code, rolled_back.json()["version"]) == (200, 2)
    # A redacted document written back is refused, naming the placeholder's path.
    redacted = (await api.client.get(URL, headers=api.headers("read"))).json()["document"]
    again = await api.client.put(URL, json=redacted, headers=api.headers("write"))
    assert again.status_code == 422
    assert [e["path"] for e in again.json()["errors"]] == ["signing_keys[0].secret"]


async def test_a_proxy_token_reads_only_its_own_config(api: Api) -> None:
    await api.client.put(URL, content=PROXY_DOC, headers=api.headers("write"))
    await api.client.put(URL + "-2", content=PROXY_DOC, headers=api.headers("write"))
    proxy = api.headers("proxy")
    assert (await api.client.get(URL, headers=proxy)).status_code == 200
    assert (await api.client.get(URL + "/versions", headers=proxy)).status_code == 200
    refused = [
        await api.client.get(URL + "-2", headers=proxy),
        await api.client.get("/api/v1/proxy-configs", headers=proxy),
        await api.client.put(URL, content=PROXY_DOC, headers=proxy),
        await api.client.delete(URL, headers=proxy),
        await api.client.get("/api/v1/flag-sets", headers=proxy),
        await api.client.get("/api/v1/flag-sets/web/stream", headers=proxy),
        await api.client.post("/ofrep/v1/evaluate/flags", json={"context": {}}, headers=proxy),
    ]
    assert [r.status_code for r in refused[:6]] == [403] * 6
    assert refused[6].status_code in (401, 403)
    assert "bound to proxy config 'web'" in refused[0].json()["detail"]
    # Other tokens cannot stream a proxy config (its secrets) unless admin.
    for role in ("read", "write", "sdk"):
        response = await api.client.get(URL + "/stream", headers=api.headers(role))
        assert response.status_code == 403, role


# The stream, on a real server.


@asynccontextmanager
async def serving(tmp_path: Path) -> AsyncIterator[tuple[str, dict[str, str]]]:
    store = open_store(sqlite_url(tmp_path), poll_interval=0.05)
    tokens = {
        "proxy": store.create_token("edge", TokenScope.PROXY, proxy_config="web", actor="t"),
        "other": store.create_token("other", TokenScope.PROXY, proxy_config="nope", actor="t"),
        "admin": store.create_token("root", TokenScope.ADMIN, actor="t"),
    }
    app = create_app(make_settings(tmp_path, heartbeat_s=0.2), store)
    server = uvicorn.Server(
        uvicorn.Config(app, log_config=None, lifespan="on", timeout_graceful_shutdown=1)
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]), name="uvicorn")
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield (
            f"http://127.0.0.1:{sock.getsockname()[1]}",
            {role: new.plaintext for role, new in tokens.items()},
        )
    finally:
        app.state.ctx.hub.close()
        server.should_exit = True
        await task
        sock.close()
        store.close()


async def _next_event(events: AsyncIterator[ServerSentEvent]) -> ServerSentEvent:
    async with asyncio.timeout(2):
        async for event in events:
            if event.event:  # heartbeats are comments: httpx-sse does not yield them
                return event
    raise AssertionError("the stream ended")


async def test_the_stream_sends_each_version_and_deletion(tmp_path: Path) -> None:
    async with serving(tmp_path) as (url, tokens), httpx.AsyncClient(base_url=url) as client:
        bearer = {"Authorization": f"Bearer {tokens['admin']}"}
        await client.put(URL, content=PROXY_DOC, headers=bearer)
        proxy = {"Authorization": f"Bearer {tokens['proxy']}"}
        async with aconnect_sse(client, "GET", URL + "/stream", headers=proxy) as source:
            assert source.response.status_code == 200
            events = source.aiter_sse()
            first = await _next_event(events)
            assert (first.event, first.id) == ("proxy-config", "1")
            data = json.loads(first.data)
            assert data["proxy_config"] == "web"
            assert data["document"]["signing_keys"][0]["secret"] == SECRET
            await client.put(URL, content=with_weight(100), headers=bearer)
            second = await _next_event(events)
            assert second.id == "2"
            assert json.loads(second.data)["document"]["services"][0]["split"]["weight"] == 100
            await client.delete(URL, headers=bearer)
            gone = await _next_event(events)
            assert (gone.event, json.loads(gone.data)) == (
                "deleted",
                {"proxy_config": "web", "version": 2},
            )
            await client.put(URL, content=PROXY_DOC, headers=bearer)
            assert (await _next_event(events)).id == "3"
        # Last-Event-ID equal to the current version: no first event, only what follows.
        headers = {**proxy, "Last-Event-ID": "3"}
        async with aconnect_sse(client, "GET", URL + "/stream", headers=headers) as source:
            events = source.aiter_sse()
            await client.put(URL, content=with_weight(7), headers=bearer)
            assert (await _next_event(events)).id == "4"


async def test_the_stream_refuses_a_wrong_token(tmp_path: Path) -> None:
    async with serving(tmp_path) as (url, tokens), httpx.AsyncClient(base_url=url) as client:
        await client.put(
            URL, content=PROXY_DOC, headers={"Authorization": f"Bearer {tokens['admin']}"}
        )
        unknown = await client.get(URL + "/stream", headers={"Authorization": "Bearer stl_nope"})
        assert unknown.status_code == 401
        other = await client.get(
            URL + "/stream", headers={"Authorization": f"Bearer {tokens['other']}"}
        )
        assert other.status_code == 403
        assert "bound to proxy config 'nope'" in other.json()["detail"]
