"""Tokens and scopes, signed stream tokens, CORS and the request size limit."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from stageless.api.auth import STREAM_TOKEN_PREFIX
from tests.api.conftest import DOC, Api, make_settings, running_api

FLAG_SETS = "/api/v1/flag-sets"


@pytest.mark.parametrize(
    ("scope", "read", "write"),
    [("admin", 200, 201), ("write", 200, 201), ("read", 200, 403), ("sdk", 403, 403)],
)
async def test_scopes_rank_admin_over_write_over_read_and_sdk_reads_nothing(
    api: Api, scope: str, read: int, write: int
) -> None:
    assert (await api.client.get(FLAG_SETS, headers=api.headers(scope))).status_code == read
    put = await api.client.put(f"{FLAG_SETS}/web", content=DOC, headers=api.headers(scope))
    assert put.status_code == write


async def test_x_api_key_is_accepted_like_a_bearer_token(api: Api) -> None:
    response = await api.client.get(FLAG_SETS, headers={"X-API-Key": api.tokens["read"]})
    assert response.status_code == 200


async def test_unknown_and_revoked_tokens_get_401(api: Api) -> None:
    unknown = await api.client.get(FLAG_SETS, headers={"Authorization": "Bearer stl_nope"})
    assert unknown.status_code == 401
    new = api.store.create_token("short-lived", "read", actor="test")  # type: ignore[arg-type]
    api.store.revoke_token("short-lived", actor="test")
    revoked = await api.client.get(FLAG_SETS, headers={"Authorization": f"Bearer {new.plaintext}"})
    assert revoked.status_code == 401
    assert revoked.json()["code"] == "unauthorized"


async def test_sdk_tokens_stream_only_their_flag_set(api: Api) -> None:
    await api.client.put(f"{FLAG_SETS}/web", content=DOC, headers=api.headers("write"))
    await api.client.put(f"{FLAG_SETS}/other", content=DOC, headers=api.headers("write"))
    own = await api.client.post(f"{FLAG_SETS}/web/stream-token", headers=api.headers("sdk"))
    assert own.status_code == 200
    other = await api.client.post(f"{FLAG_SETS}/other/stream-token", headers=api.headers("sdk"))
    assert other.status_code == 403
    assert "bound to flag set 'web'" in other.json()["detail"]


async def _stream_token(api: Api, name: str = "web") -> str:
    await api.client.put(f"{FLAG_SETS}/{name}", content=DOC, headers=api.headers("write"))
    response = await api.client.post(f"{FLAG_SETS}/{name}/stream-token", headers=api.headers("sdk"))
    token: str = response.json()["token"]
    assert token.startswith(STREAM_TOKEN_PREFIX)
    return token


async def test_a_stream_token_opens_its_stream_only(api: Api) -> None:
    token = await _stream_token(api)
    # Delete the set, so that an accepted token reaches the lookup (404) instead of streaming.
    await api.client.delete(f"{FLAG_SETS}/web", headers=api.headers("write"))
    accepted = await api.client.get(f"{FLAG_SETS}/web/stream", params={"token": token})
    assert accepted.status_code == 404
    elsewhere = await api.client.get(f"{FLAG_SETS}/other/stream", params={"token": token})
    assert elsewhere.status_code == 403
    # Stream tokens are for stream routes only.
    rest = await api.client.get(f"{FLAG_SETS}/web", params={"token": token})
    assert rest.status_code == 401


async def test_tampered_and_expired_stream_tokens_get_401(api: Api) -> None:
    token = await _stream_token(api)
    payload, _, signature = token.partition(".")
    forged = payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1] + "." + signature
    tampered = await api.client.get(f"{FLAG_SETS}/web/stream", params={"token": forged})
    assert tampered.status_code == 401
    principal = api.app.state.ctx.auth.verify_stream_token(token)
    expired, expires = api.app.state.ctx.auth.sign_stream_token(principal, "web", ttl=-1)
    assert expires < time.time()
    response = await api.client.get(f"{FLAG_SETS}/web/stream", params={"token": expired})
    assert response.status_code == 401
    assert response.json()["detail"] == "the stream token has expired"


@pytest.fixture
async def cors_api(tmp_path: Path) -> AsyncIterator[Api]:
    settings = make_settings(tmp_path, cors_origins=("https://app.example",), max_body_bytes=2048)
    async for api in running_api(settings):
        yield api


async def test_cors_allows_configured_origins_only(cors_api: Api) -> None:
    preflight = {
        "Origin": "https://app.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    allowed = await cors_api.client.options("/ofrep/v1/evaluate/flags", headers=preflight)
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    refused = await cors_api.client.options(
        "/ofrep/v1/evaluate/flags", headers={**preflight, "Origin": "https://evil.example"}
    )
    assert refused.status_code == 400
    simple = await cors_api.client.get(
        FLAG_SETS, headers=cors_api.headers("read", Origin="https://app.example")
    )
    assert simple.headers["access-control-allow-origin"] == "https://app.example"
    assert "etag" in simple.headers["access-control-expose-headers"].lower()


async def test_no_cors_headers_without_configured_origins(api: Api) -> None:
    response = await api.client.get(
        FLAG_SETS, headers=api.headers("read", Origin="https://app.example")
    )
    assert "access-control-allow-origin" not in response.headers


async def spaces() -> AsyncIterator[bytes]:
    """5 KiB of spaces in ten chunks, sent without a Content-Length of their own."""
    for _ in range(10):
        yield b" " * 512


async def test_a_small_content_length_beside_transfer_encoding_is_not_trusted(
    cors_api: Api,
) -> None:
    """Only a body framed by its Content-Length alone is read without counting."""

    headers = cors_api.headers("write", **{"Content-Length": "10", "Transfer-Encoding": "chunked"})
    response = await cors_api.client.put(f"{FLAG_SETS}/web", content=spaces(), headers=headers)
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"


async def test_a_content_length_that_is_not_a_length_does_not_stop_the_count(
    cors_api: Api,
) -> None:
    headers = cors_api.headers("write", **{"Content-Length": "ten"})
    response = await cors_api.client.put(f"{FLAG_SETS}/web", content=spaces(), headers=headers)
    assert response.status_code == 413


async def test_chunked_bodies_over_the_limit_get_413(cors_api: Api) -> None:
    response = await cors_api.client.put(
        f"{FLAG_SETS}/web", content=spaces(), headers=cors_api.headers("write")
    )
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    assert (
        await cors_api.client.get(f"{FLAG_SETS}/web", headers=cors_api.headers("read"))
    ).status_code == 404
