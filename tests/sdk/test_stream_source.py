"""StreamSource against a real SSE server on loopback that follows the live-sync contract.

These tests pin the wire format (tests/sdk/contract_server.py writes every byte itself); the
same behaviours against the real ``stageless serve`` are in test_stream_live.py.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from email.utils import formatdate
from pathlib import Path

import pytest
from openfeature import api
from openfeature.event import ProviderEvent
from openfeature.exception import ErrorCode as OFErrorCode
from openfeature.exception import GeneralError

from stageless.errors import ValidationError
from stageless.sdk import SourceUnavailableError, StagelessProvider, StreamOptions, StreamSource
from tests.sdk.contract_server import ContractServer
from tests.sdk.support import BOOL, Events, flag

FAST = StreamOptions(heartbeat_s=0.5, backoff_initial_s=0.05, backoff_max_s=0.3, initial_wait_s=2.0)


def doc(checkout: str = "on", **flags: object) -> dict[str, object]:
    return {"flags": {"new-checkout": flag(BOOL, checkout), **flags}}


def wait_until(predicate: object, timeout: float = 5.0) -> float:
    """Seconds until ``predicate()`` is true; fails after ``timeout``."""
    assert callable(predicate)
    start = time.monotonic()
    while not predicate():
        assert time.monotonic() - start < timeout, "condition not met in time"
        time.sleep(0.005)
    return time.monotonic() - start


@pytest.fixture
def server() -> Iterator[ContractServer]:
    with ContractServer(heartbeat_s=0.5) as running:
        yield running


def serve(server: ContractServer, **kwargs: object) -> StagelessProvider:
    provider = StagelessProvider.from_server(
        server.url,
        server.flag_set,
        server.token,
        options=FAST,
        **kwargs,  # type: ignore[arg-type]
    )
    api.set_provider_and_wait(provider)
    return provider


def checkout() -> bool:
    return api.get_client().get_boolean_value("new-checkout", False)


def test_loads_the_current_version_with_the_token(server: ContractServer, events: Events) -> None:
    server.publish(doc("off"))
    server.publish(doc("on"))
    provider = serve(server)
    assert checkout() is True
    source = provider.source
    assert isinstance(source, StreamSource)
    assert source.version == 2 and source.connected and not source.from_cache
    first = server.stream_requests()[0]
    assert first.headers["Authorization"] == f"Bearer {server.token}"
    assert first.headers["Accept"] == "text/event-stream"
    assert "Last-Event-ID" not in first.headers  # a new process always gets the full document
    events.wait_for(ProviderEvent.PROVIDER_READY)
    assert events.kinds() == [ProviderEvent.PROVIDER_READY]


def test_a_pushed_change_is_served_within_a_second(server: ContractServer, events: Events) -> None:
    server.publish(doc("off"))
    serve(server)
    assert checkout() is False
    server.publish(doc("on", theme=flag({"dark": "dark"}, "dark")))
    assert wait_until(checkout, timeout=1.0) < 1.0
    changed = events.wait_for(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED)
    assert changed.flags_changed == ["new-checkout", "theme"]


def test_a_bad_document_keeps_the_last_good_flags(server: ContractServer, events: Events) -> None:
    server.publish(doc("on"))
    provider = serve(server)
    server.publish({"flags": {"new-checkout": flag(BOOL, "blue")}})
    error = events.wait_for(ProviderEvent.PROVIDER_ERROR)
    assert error.error_code == OFErrorCode.PARSE_ERROR
    assert "flags.new-checkout.defaultVariant" in str(error.message)
    assert checkout() is True
    assert isinstance(provider.last_error, ValidationError)
    server.publish(doc("off"))
    events.wait_for(ProviderEvent.PROVIDER_READY, after=1)
    wait_until(lambda: not checkout())
    # The bad version's id was remembered: a reconnection does not fetch it again.
    assert provider.source.version == 3  # type: ignore[attr-defined]


def test_server_down_keeps_serving_then_recovers(server: ContractServer, events: Events) -> None:
    server.publish(doc("on"))
    provider = serve(server)
    errors: list[object] = []
    stop = threading.Event()

    def evaluate_all_the_time() -> None:
        client = api.get_client()
        while not stop.is_set():
            details = client.get_boolean_details("new-checkout", False)
            if details.error_code is not None or details.value is not True:
                errors.append(details)

    worker = threading.Thread(target=evaluate_all_the_time)
    worker.start()
    try:
        server.stop()
        stale = events.wait_for(ProviderEvent.PROVIDER_STALE)
        assert "serving the last good flags" in str(stale.message)
        assert not provider.source.connected  # type: ignore[attr-defined]
        time.sleep(0.5)  # several failed reconnections
        server.start()  # same port
        events.wait_for(ProviderEvent.PROVIDER_READY, after=2)
    finally:
        stop.set()
        worker.join()
    assert errors == []
    reconnect = server.stream_requests()[-1]
    assert reconnect.headers["Last-Event-ID"] == "1"
    server.publish(doc("off"))
    wait_until(lambda: not checkout())


def test_a_change_made_while_down_arrives_on_reconnection(
    server: ContractServer, events: Events
) -> None:
    server.publish(doc("on"))
    serve(server)
    server.stop()
    events.wait_for(ProviderEvent.PROVIDER_STALE)
    server.publish(doc("off"))  # stored while no one can connect
    server.start()
    wait_until(lambda: not checkout())
    stale_at = events.kinds().index(ProviderEvent.PROVIDER_STALE)
    changed = events.wait_for(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, after=stale_at)
    assert changed.flags_changed == ["new-checkout"]


def test_a_silent_connection_is_replaced(server: ContractServer, events: Events) -> None:
    server.publish(doc("on"))
    serve(server)
    server.mute_connections()  # no heartbeat, no event: a dead peer behind a live socket
    server.publish(doc("off"))  # not delivered on the muted connection
    elapsed = wait_until(lambda: not checkout(), timeout=5.0)
    assert elapsed >= 1.0  # three 0.5 s heartbeats missed, minus the time already waited
    assert len(server.stream_requests()) == 2
    assert server.stream_requests()[1].headers["Last-Event-ID"] == "1"


def test_restart_with_the_server_down_serves_the_cache(
    server: ContractServer, events: Events, tmp_path: Path
) -> None:
    cache = tmp_path / "cache" / "web.json"
    server.publish(doc("off"))
    server.publish(doc("on"))
    first = serve(server, cache_path=cache)
    assert checkout() is True
    wait_until(cache.exists)  # written by the stream thread just after the flags are in force
    saved = json.loads(cache.read_text())
    assert saved["version"] == 2 and saved["flag_set"] == "web" and saved["server"] == server.url
    assert [p.name for p in cache.parent.iterdir()] == ["web.json"]  # no temporary left behind
    api.shutdown()  # also forgets every event handler: register the recorder again
    events.register()
    assert not first.source.connected  # type: ignore[attr-defined]
    server.stop()

    before = len(events)
    second = serve(server, cache_path=cache)  # a new process, the server down
    assert checkout() is True
    source = second.source
    assert isinstance(source, StreamSource)
    assert source.from_cache and source.version == 2
    events.wait_for(ProviderEvent.PROVIDER_STALE)  # after the SDK's READY for initialize
    assert events.kinds()[before:] == [ProviderEvent.PROVIDER_READY, ProviderEvent.PROVIDER_STALE]
    assert api.get_client().get_provider_status().value == "STALE"
    assert checkout() is True  # stale flags are still served
    server.start()
    events.wait_for(ProviderEvent.PROVIDER_READY, after=before + 2)
    wait_until(lambda: source.connected)
    assert server.stream_requests()[-1].headers["Last-Event-ID"] == "2"
    server.publish(doc("off"))
    wait_until(lambda: not checkout())
    # the cache is written just after the new flags are served (an atomic replace)
    wait_until(lambda: json.loads(cache.read_text())["version"] == 3)


def test_a_cache_for_another_flag_set_is_not_served(server: ContractServer, tmp_path: Path) -> None:
    cache = tmp_path / "web.json"
    server.publish(doc("on"))
    source = StreamSource(server.url, "web", server.token, cache_path=cache, options=FAST)
    source.load()
    source.close()
    server.stop()
    other = StreamSource(
        server.url,
        "mobile",
        server.token,
        cache_path=cache,
        options=StreamOptions(initial_wait_s=0.5, backoff_initial_s=0.05, backoff_max_s=0.1),
    )
    with pytest.raises(SourceUnavailableError, match="cannot connect"):
        other.load()
    other.close()


def test_server_down_at_start_without_cache_becomes_ready_later(events: Events) -> None:
    server = ContractServer(heartbeat_s=0.5).start()
    url = server.url
    server.stop()
    provider = StagelessProvider.from_server(url, "web", server.token, options=FAST)
    with pytest.raises(GeneralError, match="cannot connect"):
        api.set_provider_and_wait(provider)
    assert checkout() is False  # the caller's default, never an exception
    server.publish(doc("on"))
    server.start()
    try:
        events.wait_for(ProviderEvent.PROVIDER_READY)
        assert checkout() is True
    finally:
        server.stop()


def test_a_rejected_token_is_reported_in_plain_words(server: ContractServer) -> None:
    server.publish(doc("on"))
    source = StreamSource(server.url, "web", "stl_wrong", options=FAST)
    with pytest.raises(
        SourceUnavailableError, match=r"rejected the token \(HTTP 401\).*valid token"
    ):
        source.load()
    source.close()


@pytest.mark.parametrize("status", [429, 503])
def test_a_refusal_with_retry_after_is_honoured(server: ContractServer, status: int) -> None:
    server.publish(doc("on"))
    server.refuse(status, {"Retry-After": "1"}, times=2)
    source = StreamSource(server.url, "web", server.token, options=FAST)
    try:
        with pytest.raises(SourceUnavailableError, match=rf"\(HTTP {status}\).*after 1 s"):
            source.load()
        wait_until(lambda: source.version == 1, timeout=6.0)
        first, second, third = server.request_times()[:3]

        assert second - first >= 1.0  # FAST's backoff alone is at most 0.3 s
        assert third - second >= 1.0
    finally:
        source.close()


def test_retry_after_as_a_date_and_its_ceiling(server: ContractServer) -> None:
    server.publish(doc("on"))
    in_two_seconds = formatdate(time.time() + 2, usegmt=True)
    server.refuse(429, {"Retry-After": in_two_seconds})
    server.refuse(429, {"Retry-After": "3600"})
    capped = replace(FAST, retry_after_max_s=1.5)
    source = StreamSource(server.url, "web", server.token, options=capped)
    try:
        with pytest.raises(SourceUnavailableError, match="rate limiting"):
            source.load()
        wait_until(lambda: source.version == 1, timeout=8.0)
        first, second, third = server.request_times()[:3]

        assert second - first >= 1.0  # the date is whole seconds: one to two from now
        assert 1.5 <= third - second < 3.0  # an hour, capped at a second and a half
    finally:
        source.close()


def test_a_refusal_without_retry_after_backs_off_as_usual(server: ContractServer) -> None:
    server.publish(doc("on"))
    server.refuse(429, {})
    source = StreamSource(server.url, "web", server.token, options=FAST)
    try:
        with pytest.raises(SourceUnavailableError, match=r"\(HTTP 429\) for flag set 'web'"):
            source.load()
        wait_until(lambda: source.version == 1)
        first, second = server.request_times()[:2]
        assert second - first < 1.0
    finally:
        source.close()


def test_a_deleted_flag_set_keeps_the_last_good_flags(
    server: ContractServer, events: Events
) -> None:
    server.publish(doc("on"))
    serve(server)
    server.delete()
    error = events.wait_for(ProviderEvent.PROVIDER_ERROR)
    assert "was deleted (version 2)" in str(error.message)
    assert checkout() is True


def test_close_stops_the_thread_promptly(server: ContractServer) -> None:
    server.publish(doc("on"))
    source = StreamSource(server.url, "web", server.token, options=FAST)
    source.load()
    started = time.monotonic()
    source.close()
    assert time.monotonic() - started < 1.0
    assert not any(t.name == "stageless-stream:web" for t in threading.enumerate())


def test_a_forked_child_streams_on_its_own(server: ContractServer) -> None:
    server.publish(doc("off"))
    serve(server)
    assert checkout() is False
    read_end, write_end = os.pipe()
    ready_read, ready_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: evaluate, wait for the parent's change, report through the pipe
        try:
            before = checkout()
            os.write(ready_write, b"1")  # only now may the parent publish the change
            deadline = time.monotonic() + 5.0
            while not checkout() and time.monotonic() < deadline:
                time.sleep(0.01)
            report = {"before": before, "after": checkout()}
            os.write(write_end, json.dumps(report).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    os.close(ready_write)
    try:
        assert os.read(ready_read, 1) == b"1"
        os.close(ready_read)
        wait_until(lambda: len(server.stream_requests()) == 2)  # the child's own connection
        server.publish(doc("on"))
        wait_until(checkout)  # the parent's connection survived the child's start
        with os.fdopen(read_end) as pipe:
            report = json.loads(pipe.read())
    finally:
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert report == {"before": False, "after": True}
    child_request = server.stream_requests()[1]
    assert child_request.headers["Last-Event-ID"] == "1"
