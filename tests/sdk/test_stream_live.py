"""The SDK's live sync against a real ``stageless serve`` (SQLite, loopback, killed for real)."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from openfeature import api
from openfeature.event import ProviderEvent

from stageless.client import ControlPlaneClient
from stageless.sdk import SourceUnavailableError, StagelessProvider, StreamOptions, StreamSource
from tests.live_server import LiveServer
from tests.sdk.support import Events, flag
from tests.sdk.test_stream_source import checkout, doc, wait_until

FAST = StreamOptions(heartbeat_s=0.5, backoff_initial_s=0.05, backoff_max_s=0.3, initial_wait_s=5.0)


class Plane:
    """A running server, an admin client and an sdk token per flag set."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.admin = ControlPlaneClient(server.url, server.create_token("admin", "admin"))
        self.sdk_tokens = {
            name: server.create_token(f"{name}-sdk", "sdk", flag_set=name)
            for name in ("web", "fork", "refused")
        }

    def put(self, document: dict[str, object], name: str = "web") -> int:
        applied = self.admin.apply_flag_set(name, json.dumps(document), format="json")
        return applied.flag_set.version


def running_plane(data_dir: Path) -> Iterator[Plane]:
    server = LiveServer(data_dir)
    plane = Plane(server)  # tokens first: the database exists before the server starts
    server.start()
    try:
        yield plane
    finally:
        plane.admin.close()
        server.kill()


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plane]:
    """One server for the tests that do not stop it (each uses its own flag set)."""
    yield from running_plane(tmp_path_factory.mktemp("server"))


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[Plane]:
    """A server of the test's own, which it may kill."""
    yield from running_plane(tmp_path / "server")


def serve(plane: Plane, name: str = "web", cache_path: Path | None = None) -> StagelessProvider:
    provider = StagelessProvider.from_server(
        plane.server.url, name, plane.sdk_tokens[name], cache_path=cache_path, options=FAST
    )
    api.set_provider_and_wait(provider)
    return provider


def test_initial_load_and_a_change_within_a_second(shared: Plane, events: Events) -> None:
    plane = shared
    plane.put(doc("off"))
    provider = serve(plane)
    assert checkout() is False
    assert provider.source.version == 1  # type: ignore[attr-defined]
    version = plane.put(doc("on", theme=flag({"dark": "dark"}, "dark")))
    started = time.monotonic()
    wait_until(checkout, timeout=1.0)
    assert time.monotonic() - started < 1.0
    changed = events.wait_for(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED)
    assert changed.flags_changed == ["new-checkout", "theme"]
    assert provider.source.version == version  # type: ignore[attr-defined]


def test_killed_server_zero_errors_cache_at_restart_then_recovery(
    plane: Plane, events: Events, tmp_path: Path
) -> None:
    cache = tmp_path / "flags-cache.json"
    plane.put(doc("off"))
    plane.put(doc("on"))
    serve(plane, cache_path=cache)
    wait_until(cache.exists)
    errors: list[object] = []
    evaluations = 0
    stop = threading.Event()

    def evaluate_all_the_time() -> None:
        nonlocal evaluations
        client = api.get_client()
        while not stop.is_set():
            details = client.get_boolean_details("new-checkout", False)
            evaluations += 1
            if details.error_code is not None or details.value is not True:
                errors.append(details)

    worker = threading.Thread(target=evaluate_all_the_time)
    worker.start()
    try:
        plane.server.kill()  # SIGKILL, streams cut
        events.wait_for(ProviderEvent.PROVIDER_STALE)
        time.sleep(1.0)  # reconnections fail for a while; evaluation goes on
    finally:
        stop.set()
        worker.join()
    assert errors == []
    assert evaluations > 1000

    # A new process starting while the server is still down serves the cached flags.
    api.shutdown()
    events.register()
    before = len(events)
    provider = serve(plane, cache_path=cache)
    source = provider.source
    assert isinstance(source, StreamSource)
    assert checkout() is True and source.from_cache and source.version == 2
    events.wait_for(ProviderEvent.PROVIDER_STALE, after=before)

    plane.server.start()  # and it recovers by itself
    events.wait_for(ProviderEvent.PROVIDER_READY, after=before + 2)
    wait_until(lambda: source.connected)
    plane.put(doc("off"))
    wait_until(lambda: not checkout(), timeout=1.0)
    wait_until(lambda: json.loads(cache.read_text())["version"] == 3)


def test_a_forked_child_sees_later_changes(shared: Plane) -> None:
    plane = shared
    plane.put(doc("off"), "fork")
    serve(plane, "fork")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            before = checkout()
            deadline = time.monotonic() + 10.0
            while not checkout() and time.monotonic() < deadline:
                time.sleep(0.01)
            os.write(write_end, json.dumps({"before": before, "after": checkout()}).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        time.sleep(0.3)  # let the child connect (a later connection would also catch up)
        plane.put(doc("on"), "fork")
        wait_until(checkout)
        with os.fdopen(read_end) as pipe:
            report = json.loads(pipe.read())
    finally:
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert report == {"before": False, "after": True}


def test_an_sdk_token_for_another_flag_set_is_refused(shared: Plane) -> None:
    plane = shared
    plane.put(doc("on"), "refused")
    source = StreamSource(plane.server.url, "refused", plane.sdk_tokens["fork"], options=FAST)
    with pytest.raises(SourceUnavailableError, match=r"HTTP 403"):
        source.load()
    source.close()
