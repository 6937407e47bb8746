"""``stageless serve`` as a real process: streams, graceful shutdown, several instances, SIGKILL.

Every test here runs uvicorn in subprocesses on ephemeral loopback ports and talks HTTP to
them; PostgreSQL tests use a fresh schema of the test server (tests/store/conftest.py).
"""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from stageless.store import sqlite_url
from tests.cli.servers import SseReader, make_token, start_server
from tests.store.conftest import PG_URL, pg_schema  # noqa: F401  # the fixture, reused

DOC = {
    "flags": {
        "banner": {
            "state": "ENABLED",
            "variants": {"on": True, "off": False},
            "defaultVariant": "on",
        }
    }
}


def _doc(default: str = "on", marker: int = 0) -> str:
    document = json.loads(json.dumps(DOC))
    document["flags"]["banner"]["defaultVariant"] = default
    document["metadata"] = {"marker": marker}
    return json.dumps(document)


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_stream_gets_the_set_then_every_change_and_ends_at_shutdown(tmp_path: Path) -> None:
    data = tmp_path / "data"
    token = make_token(sqlite_url(data))
    server = start_server(data, heartbeat=0.3, cli=True)
    try:
        url = server.url + "/api/v1/flag-sets/web"
        assert httpx.put(url, content=_doc("on"), headers=_auth(token)).status_code == 201
        reader = SseReader(url + "/stream", _auth(token))
        first = reader.next()
        assert first is not None
        assert (first.name, first.event_id, first.data["version"]) == ("flag-set", "1", 1)
        assert first.data["document"]["flags"]["banner"]["defaultVariant"] == "on"

        sent = time.monotonic()
        assert httpx.put(url, content=_doc("off"), headers=_auth(token)).status_code == 200
        change = reader.next()
        assert change is not None
        assert change.data["version"] == 2
        assert change.data["document"]["flags"]["banner"]["defaultVariant"] == "off"
        assert change.arrived - sent < 1.0

        assert httpx.delete(url, headers=_auth(token)).status_code == 204
        deleted = reader.next()
        assert deleted is not None
        assert (deleted.name, deleted.data) == ("deleted", {"flag_set": "web", "version": 2})

        # Last-Event-ID equal to the current version skips the first event.
        httpx.put(url, content=_doc("on"), headers=_auth(token))
        skipping = SseReader(url + "/stream", {**_auth(token), "Last-Event-ID": "3"})
        stopped = time.monotonic()
        assert server.stop(signal.SIGTERM) == 0
        assert time.monotonic() - stopped < 3.0, "open streams held up the shutdown"
        assert skipping.next() is None  # the stream ended without a first event
        while (event := reader.next()) is not None:
            assert event.data["version"] == 3
        reader.close()
        skipping.close()
        assert '"principal": "admin"' in server.output()
        assert token not in server.output()
    finally:
        server.stop(signal.SIGKILL)


def test_two_instances_on_postgresql_act_as_one(tmp_path: Path, pg_schema: str) -> None:  # noqa: F811
    database = f"{PG_URL}?options=-csearch_path%3D{pg_schema}"
    token = make_token(database)
    first = start_server(tmp_path / "a", database=database)
    second = start_server(tmp_path / "b", database=database)
    try:
        path = "/api/v1/flag-sets/web"
        httpx.put(first.url + path, content=_doc("on"), headers=_auth(token)).raise_for_status()
        reader = SseReader(second.url + path + "/stream", _auth(token))
        assert reader.next() is not None  # the current version, from the second instance

        sent = time.monotonic()
        changed = httpx.put(first.url + path, content=_doc("off"), headers=_auth(token))
        assert changed.status_code == 200
        event = reader.next(timeout=2)
        assert event is not None
        assert event.data["version"] == 2
        assert event.arrived - sent < 1.0, "the other instance's subscribers heard late"

        seen = httpx.get(second.url + path, headers=_auth(token)).json()
        assert seen["version"] == 2
        assert seen["etag"] == changed.json()["etag"]
        # A stream token issued by one instance is good on the other (shared key).
        issued = httpx.post(first.url + path + "/stream-token", headers=_auth(token)).json()
        other = SseReader(second.url + path + "/stream?token=" + issued["token"], {})
        assert other.status == 200
        other.close()
        audit = httpx.get(second.url + "/api/v1/audit", headers=_auth(token)).json()
        assert [e["action"] for e in audit["entries"]][-2:] == [
            "flag_set.create",
            "flag_set.update",
        ]
        reader.close()
    finally:
        first.stop(signal.SIGKILL)
        second.stop(signal.SIGKILL)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_every_acknowledged_write_survives_kill_9(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    data = tmp_path / "data"
    if backend == "sqlite":
        database = sqlite_url(data)
    else:
        database = f"{PG_URL}?options=-csearch_path%3D{request.getfixturevalue('pg_schema')}"
    token = make_token(database)
    server = start_server(data, database=database)
    acknowledged: list[tuple[str, str]] = []  # (flag set, document)
    lock = threading.Lock()
    stop = threading.Event()

    def writer(worker: int) -> None:
        with httpx.Client(base_url=server.url, headers=_auth(token), timeout=5) as client:
            for n in range(10_000):
                if stop.is_set():
                    return
                name = f"set-{worker % 3}"
                document = _doc("on" if n % 2 else "off", marker=worker * 100_000 + n)
                try:
                    response = client.put(f"/api/v1/flag-sets/{name}", content=document)
                except httpx.TransportError:
                    return  # the server died mid-request: not acknowledged
                if response.is_success:
                    with lock:
                        acknowledged.append((name, document))

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while len(acknowledged) < 40 and time.monotonic() < deadline:
        time.sleep(0.01)
    server.stop(signal.SIGKILL)
    stop.set()
    for thread in threads:
        thread.join(10)
    assert len(acknowledged) >= 40, server.output()

    restarted = start_server(data, database=database)
    try:
        with httpx.Client(base_url=restarted.url, headers=_auth(token), timeout=10) as client:
            stored: set[tuple[str, str]] = set()
            for name in ("set-0", "set-1", "set-2"):
                versions = client.get(f"/api/v1/flag-sets/{name}/versions?limit=1000").json()
                for version in versions["versions"]:
                    one = client.get(f"/api/v1/flag-sets/{name}/versions/{version['version']}")
                    stored.add((name, json.dumps(one.json()["document"])))
            audited: list[tuple[str, str]] = []
            after = 0
            while page := client.get(f"/api/v1/audit?after={after}&limit=1000").json()["entries"]:
                audited += [
                    (e["target"].removeprefix("flag_set:"), json.dumps(e["after"]))
                    for e in page
                    if e["target"].startswith("flag_set:")
                ]
                after = page[-1]["id"]
    finally:
        restarted.stop(signal.SIGKILL)
    canonical = {(name, json.dumps(json.loads(doc))) for name, doc in acknowledged}
    assert canonical <= stored, "an acknowledged write was lost"
    assert sorted(audited) == sorted(stored), "the audit log does not match the versions"
    assert len(audited) == len(set(audited))
