"""OFREP event streams (``/ofrep/v1/events``) on a server on a loopback port."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.api.ofrep_server import DOCUMENT, OfrepServer, document_with, ofrep_server
from tests.cli.servers import SseReader

BULK = "/ofrep/v1/evaluate/flags"


@pytest.fixture
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OfrepServer]:
    with ofrep_server(tmp_path_factory.mktemp("ofrep-stream"), heartbeat=0.3) as running:
        yield running


def stream_url(server: OfrepServer) -> str:
    response = httpx.post(server.url + BULK, json={}, headers=server.headers("sdk"))
    assert response.status_code == 200, response.text
    url: str = response.json()["eventStreams"][0]["url"]
    return url


def test_each_change_sends_refetch_evaluation(server: OfrepServer) -> None:
    url = stream_url(server)
    reader = SseReader(url, {})
    try:
        record = server.put(document_with(headline="long")).json()
        event = reader.next()
    finally:
        reader.close()

    assert reader.status == 200
    assert event is not None
    assert event.name == "message"
    assert event.event_id == "2"
    assert event.data == {
        "type": "refetchEvaluation",
        "etag": record["etag"],
        "lastModified": int(event.data["lastModified"]),
    }
    assert url.startswith(server.url + "/ofrep/v1/events?token=sst_")


def test_connecting_with_an_old_version_refetches_at_once(server: OfrepServer) -> None:
    url = stream_url(server)  # made at version 1
    server.put(document_with(headline="long"))  # version 2, before the client connects
    stale = SseReader(url, {})
    resumed = SseReader(url, {"Last-Event-ID": "2"})  # a reconnect that saw version 2
    try:
        first = stale.next()
        server.put(document_with(headline="short"))
        after = resumed.next()
    finally:
        stale.close()
        resumed.close()

    assert first is not None and first.event_id == "2"
    assert after is not None and after.event_id == "3"  # nothing before version 3


def test_deletion_sends_refetch_without_etag(server: OfrepServer) -> None:
    reader = SseReader(stream_url(server), {})
    try:
        deleted = httpx.delete(
            server.url + "/api/v1/flag-sets/web", headers=server.headers("admin")
        )
        event = reader.next()
        server.put(DOCUMENT)
        recreated = reader.next()
    finally:
        reader.close()

    assert deleted.status_code == 204
    assert event is not None and event.data == {"type": "refetchEvaluation"}
    assert event.event_id == "none"
    assert recreated is not None and recreated.event_id == "2"  # versions go on


def test_idle_streams_send_keepalive_comments(server: OfrepServer) -> None:
    with (
        httpx.Client(timeout=5) as client,
        client.stream("GET", stream_url(server)) as response,
    ):
        lines = []
        for line in response.iter_lines():
            lines.append(line)
            if line == ": keepalive":
                break

    assert response.headers["content-type"].startswith("text/event-stream")
    assert lines[0] == "retry: 2000"
    assert lines[-1] == ": keepalive"


@pytest.mark.parametrize(
    ("query", "status", "details"),
    [
        ("", 401, "a token is needed"),
        ("?token=sst_forged.signature", 401, "not valid"),
    ],
)
def test_bad_stream_tokens_are_refused_in_ofreps_shape(
    server: OfrepServer, query: str, status: int, details: str
) -> None:
    response = httpx.get(f"{server.url}/ofrep/v1/events{query}")

    assert response.status_code == status
    assert details in response.json()["errorDetails"]


def test_stream_token_only_opens_its_own_flag_set(server: OfrepServer) -> None:
    url = stream_url(server)
    response = httpx.get(url, headers={"X-Stageless-Flag-Set": "other"})

    assert response.status_code == 403
    assert "for flag set 'web' only" in response.json()["errorDetails"]
