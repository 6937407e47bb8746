"""Pushed documents decoded and compiled once per process (``stageless.sdk.documents``).

Unit tests of ``DocumentCache`` with real threads, then many ``StreamSource``s in this process
against a real SSE server (tests/sdk/contract_server.py): they share one compiled flag set.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from stageless.errors import Issue, ValidationError
from stageless.flags import FlagSet, parse_flag_set
from stageless.sdk import StreamOptions, StreamSource
from stageless.sdk.changes import changed_flags
from stageless.sdk.documents import Decoded, DocumentCache
from tests.sdk.contract_server import ContractServer
from tests.sdk.support import BOOL, flag
from tests.sdk.test_stream_source import FAST, doc, wait_until


def payload(checkout: str = "on", version: int = 1) -> str:
    return json.dumps({"flag_set": "web", "version": version, "document": doc(checkout)})


class Compiler:
    """Counts its calls; can be made slow, failing or blocked."""

    def __init__(self, *, delay: float = 0.0, error: BaseException | None = None) -> None:
        self.calls = 0
        self.delay = delay
        self.error = error
        self.release = threading.Event()
        self.release.set()
        self.started = threading.Event()

    def __call__(self, decoded: Any) -> FlagSet | ValidationError | None:
        self.calls += 1
        self.started.set()
        self.release.wait(5)
        time.sleep(self.delay)
        if self.error is not None:
            raise self.error
        return parse_flag_set(decoded["document"])


def test_concurrent_sources_compile_an_event_once_and_share_the_result() -> None:
    cache = DocumentCache()
    compiler = Compiler(delay=0.05)
    data = payload()

    with ThreadPoolExecutor(16) as pool:
        results = list(
            pool.map(lambda _: cache.decode("flag-set", data, ("s",), compiler), range(16))
        )

    assert compiler.calls == 1
    assert all(result is results[0] for result in results)
    assert isinstance(results[0].flags, FlagSet)
    assert results[0].flags.evaluate("new-checkout").value is True
    assert results[0].document == doc("on")


def test_other_data_or_settings_compile_separately() -> None:
    cache = DocumentCache()
    compiler = Compiler()
    first = cache.decode("flag-set", payload("on"), ("a", 2), compiler)

    assert cache.decode("flag-set", payload("on"), ("a", 2), compiler) is first
    assert cache.decode("flag-set", payload("on"), ("a", 3), compiler) is not first
    assert cache.decode("flag-set", payload("off", 2), ("a", 2), compiler) is not first
    assert cache.decode("deleted", payload("on"), ("a", 2), compiler) is not first
    assert compiler.calls == 4


def test_bad_json_and_invalid_documents_are_results_too() -> None:
    cache = DocumentCache()
    invalid = ValidationError([Issue("flags", "nope")])

    garbage = cache.decode("flag-set", "{not json", ("s",), lambda _: None)
    refused = cache.decode("flag-set", payload(), ("s",), lambda _: invalid)

    assert (garbage.payload, garbage.flags, garbage.error) == (None, None, None)
    assert refused.error is invalid and refused.flags is None


def test_an_unexpected_failure_reaches_every_waiter_and_is_not_kept() -> None:
    cache = DocumentCache()
    compiler = Compiler(delay=0.05, error=RuntimeError("boom"))
    data = payload()

    def decode(_: int) -> str:
        try:
            cache.decode("flag-set", data, ("s",), compiler)
        except RuntimeError as exc:
            return str(exc)
        return "no error"

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(decode, range(8)))
    compiler.error = None
    retried = cache.decode("flag-set", data, ("s",), compiler)

    assert outcomes == ["boom"] * 8
    assert compiler.calls == 2
    assert retried.flags is not None


def test_only_the_most_recent_events_are_kept() -> None:
    cache = DocumentCache(size=2)
    compiler = Compiler()
    one = cache.decode("flag-set", payload(version=1), ("s",), compiler)
    cache.decode("flag-set", payload(version=2), ("s",), compiler)
    cache.decode("flag-set", payload(version=1), ("s",), compiler)  # used again: kept
    cache.decode("flag-set", payload(version=3), ("s",), compiler)

    assert len(cache) == 2
    assert cache.decode("flag-set", payload(version=1), ("s",), compiler) is one
    assert compiler.calls == 3


def test_after_fork_an_event_still_being_built_is_built_again() -> None:
    # In a forked child the building thread is gone: waiting for it would hang forever.
    cache = DocumentCache()
    blocked = Compiler()
    blocked.release.clear()
    data = payload()
    done = cache.decode("flag-set", payload(version=2), ("s",), Compiler())
    builder = threading.Thread(target=cache.decode, args=("flag-set", data, ("s",), blocked))
    builder.start()
    assert blocked.started.wait(5)

    cache.after_fork()  # what the child runs
    fresh = Compiler()
    rebuilt = cache.decode("flag-set", data, ("s",), fresh)
    blocked.release.set()
    builder.join(5)

    assert fresh.calls == 1 and rebuilt.flags is not None
    assert cache.decode("flag-set", payload(version=2), ("s",), Compiler()) is done


def test_changed_flags_are_computed_once_per_previous_document() -> None:
    old = doc("off", theme=flag({"dark": "dark"}, "dark"))
    new = doc("on", theme=flag({"dark": "dark"}, "dark"))
    decoded = Decoded({"version": 2, "document": new}, parse_flag_set(new))

    first = decoded.changed_since(old)
    first.append("mutated by a listener")
    again = decoded.changed_since(old)
    other = decoded.changed_since(copy.deepcopy(new))

    assert again == changed_flags(old, new) == ["new-checkout"]
    assert other == []


@pytest.fixture
def server() -> Iterator[ContractServer]:
    with ContractServer(heartbeat_s=0.5) as running:
        yield running


def test_sources_in_one_process_share_one_compiled_flag_set(server: ContractServer) -> None:
    server.publish(doc("off"))
    sources = [StreamSource(server.url, "web", server.token, options=FAST) for _ in range(5)]
    v3 = StreamOptions(
        heartbeat_s=0.5, backoff_initial_s=0.05, initial_wait_s=2.0, fractional_version=3
    )
    other = StreamSource(server.url, "web", server.token, options=v3)
    try:
        for source in [*sources, other]:
            source.load()
        server.publish(doc("on", theme=flag({"dark": "dark"}, "dark")))
        wait_until(lambda: all(s.version == 2 for s in [*sources, other]))
        loaded = [source.load() for source in sources]

        assert all(flags is loaded[0] for flags in loaded)
        assert loaded[0].evaluate("new-checkout").value is True
        assert other.load() is not loaded[0]  # compiled with other settings
        assert other.load().fractional_version == 3
    finally:
        for source in [*sources, other]:
            source.close()


def test_a_shared_bad_document_fails_every_source_and_keeps_their_flags(
    server: ContractServer,
) -> None:
    server.publish(doc("on"))
    sources = [StreamSource(server.url, "web", server.token, options=FAST) for _ in range(3)]
    try:
        good = [source.load() for source in sources]
        server.publish({"flags": {"new-checkout": flag(BOOL, "blue")}})
        wait_until(lambda: all(s._last_event_id == "2" for s in sources))

        assert [source.load() for source in sources] == good
        assert all(source.version == 1 for source in sources)
    finally:
        for source in sources:
            source.close()
