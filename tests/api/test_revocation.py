"""Revoked tokens and expired stream tokens, against servers on loopback ports.

Revocations are written to the database directly, as ``stageless tokens revoke`` does, so the
servers learn of them only through their periodic check (``stageless.api.revocation``).
"""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from stageless.api import create_app
from stageless.api.revocation import TOKEN_CHECK_S
from stageless.settings import Settings
from stageless.store import open_store, sqlite_url
from tests.api.conftest import Api
from tests.api.ofrep_server import (
    SECRET,
    OfrepServer,
    document_with,
    ofrep_server,
    serve_app,
)
from tests.cli.servers import SseReader

BULK = "/ofrep/v1/evaluate/flags"
STREAM = "/api/v1/flag-sets/web/stream"
SOON = TOKEN_CHECK_S + 2.0  # a check interval, plus slack for a loaded machine


@pytest.fixture
def server(tmp_path: Path) -> Iterator[OfrepServer]:
    with ofrep_server(tmp_path / "one", heartbeat=0.3) as running:
        yield running


def bulk(url: str, token: str) -> httpx.Response:
    return httpx.post(url + BULK, json={}, headers={"Authorization": f"Bearer {token}"})


def wait_for_status(url: str, token: str, status: int, timeout: float = SOON) -> float:
    """Seconds until a bulk request with ``token`` answers ``status``."""
    start = time.monotonic()
    while bulk(url, token).status_code != status:
        assert time.monotonic() - start < timeout, f"still not {status} after {timeout} s"
        time.sleep(0.05)
    return time.monotonic() - start


def ended(reader: SseReader, timeout: float = SOON) -> bool:
    """Whether the stream ends within ``timeout`` (events before the end are skipped)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if reader.next(timeout=max(deadline - time.monotonic(), 0.01)) is None:
                return True
        except queue.Empty:
            return False
    return False


def test_a_revoked_token_is_refused_on_every_instance_despite_the_cache(
    server: OfrepServer, tmp_path: Path
) -> None:
    second_store = open_store(sqlite_url(tmp_path / "one"), poll_interval=0.05)
    settings = Settings(data_dir=tmp_path / "one", secret_key=SECRET, heartbeat_s=0.3)
    try:
        with serve_app(create_app(settings, second_store)) as second:
            token = server.tokens["sdk"]
            assert bulk(server.url, token).status_code == 200  # now cached on both
            assert bulk(second, token).status_code == 200
            server.store.revoke_token("web-sdk", actor="test")

            assert wait_for_status(server.url, token, 401) < SOON
            assert wait_for_status(second, token, 401) < SOON
            assert bulk(server.url, server.tokens["read"]).status_code == 200
    finally:
        second_store.close()


def test_the_open_streams_of_a_revoked_token_end(server: OfrepServer) -> None:
    token = server.tokens["sdk"]
    events_url = bulk(server.url, token).json()["eventStreams"][0]["url"]
    sync = SseReader(server.url + STREAM, server.headers("sdk"))
    ofrep = SseReader(events_url, {})
    bystander = SseReader(server.url + STREAM, server.headers("read"))
    try:
        assert sync.next() is not None  # the current document
        assert bystander.next() is not None
        server.store.revoke_token("web-sdk", actor="test")

        assert ended(sync)
        assert ended(ofrep)
        server.put(document_with(headline="long"))
        event = bystander.next()
        assert event is not None and event.data["version"] == 2  # other tokens' streams go on
    finally:
        for reader in (sync, ofrep, bystander):
            reader.close()
    again = httpx.get(server.url + STREAM, headers=server.headers("sdk"))
    issued = httpx.get(events_url)
    assert again.status_code == 401
    assert issued.status_code == 401
    assert issued.json() == {
        "errorDetails": "the token this stream token was issued from is revoked"
    }


@pytest.fixture
def short_tokens(tmp_path: Path) -> Iterator[OfrepServer]:
    with ofrep_server(tmp_path / "short", heartbeat=5.0, stream_token_ttl_s=1.0) as running:
        yield running


def test_a_stream_ends_when_its_stream_token_expires(short_tokens: OfrepServer) -> None:
    server = short_tokens
    issued = httpx.post(server.url + STREAM + "-token", headers=server.headers("sdk")).json()
    url = f"{server.url}{STREAM}?token={issued['token']}"
    opened = time.monotonic()
    reader = SseReader(url, {})
    bearer = SseReader(server.url + STREAM, server.headers("sdk"))
    try:
        assert reader.next() is not None
        assert ended(reader, timeout=4.0)  # before the 5 s heartbeat would have woken it
        lasted = time.monotonic() - opened
        assert 0.5 < lasted < 4.0
        assert bearer.next() is not None
        assert not ended(bearer, timeout=0.5)  # Bearer tokens do not expire
    finally:
        reader.close()
        bearer.close()
    refused = httpx.get(url)
    assert refused.status_code == 401
    assert refused.json()["detail"] == "the stream token has expired"


def test_an_ofrep_event_stream_ends_when_its_url_token_expires(short_tokens: OfrepServer) -> None:
    server = short_tokens
    url = bulk(server.url, server.tokens["sdk"]).json()["eventStreams"][0]["url"]
    reader = SseReader(url, {})
    try:
        assert ended(reader, timeout=4.0)  # valid for 0.5-1 s (windows of half the lifetime)
    finally:
        reader.close()
    fresh = bulk(server.url, server.tokens["sdk"]).json()["eventStreams"][0]["url"]
    assert httpx.get(url).status_code == 401
    assert fresh != url


async def test_the_next_check_ends_cached_authentications_at_once(api: Api) -> None:
    # In-process: the check itself, without waiting for its timer.
    revocations = api.app.state.ctx.auth.revocations
    headers = api.headers("sdk")
    assert (await api.client.post(BULK, json={}, headers=headers)).status_code == 200
    api.store.revoke_token("sdk-token", actor="test")
    before = (await api.client.post(BULK, json={}, headers=headers)).status_code

    assert await revocations.check() == {"sdk-token"}
    assert await revocations.check() == set()
    after = await api.client.post(BULK, json={}, headers=headers)
    assert (before, after.status_code) == (200, 401)  # cached until the check, refused after
    assert "sdk-token" in revocations.revoked


async def test_a_stream_of_an_already_revoked_token_is_ended_when_tracked(api: Api) -> None:
    revocations = api.app.state.ctx.auth.revocations
    api.store.revoke_token("read-token", actor="test")
    await revocations.check()
    ends: list[str] = []

    untrack = revocations.track("read-token", lambda: ends.append("read"))
    keep = revocations.track("admin-token", lambda: ends.append("admin"))
    assert ends == ["read"]
    assert revocations.open_streams == 1
    keep()
    untrack()
    assert revocations.open_streams == 0
