"""The provider reloads its flag file: edits, atomic replaces, broken edits, fixes, deletion."""

from __future__ import annotations

import copy
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from openfeature import api
from openfeature.event import ProviderEvent
from openfeature.exception import ErrorCode
from openfeature.provider import ProviderStatus

from stageless.sdk import FileSource, StagelessProvider
from tests.sdk.support import BOOL, Events, flag, replace_json, write_json

VERSION_1: dict[str, Any] = {
    "flags": {
        "checkout": flag({"classic": "classic", "one-page": "one-page"}, "classic"),
        "banner": flag(BOOL, "off"),
    }
}


def version_2() -> dict[str, Any]:
    document = copy.deepcopy(VERSION_1)
    document["flags"]["checkout"]["defaultVariant"] = "one-page"
    return document


@pytest.fixture
def flags_file(tmp_path: Path) -> Path:
    path = tmp_path / "flags.json"
    write_json(path, VERSION_1)
    return path


@pytest.fixture
def provider(flags_file: Path, events: Events) -> StagelessProvider:
    provider = StagelessProvider.from_file(flags_file)
    api.set_provider_and_wait(provider)
    events.wait_for(ProviderEvent.PROVIDER_READY)
    return provider


def checkout() -> str:
    return api.get_client().get_string_value("checkout", "none")


def test_an_edit_in_place_is_served_and_reported(
    flags_file: Path, provider: StagelessProvider, events: Events
) -> None:
    mark = len(events)
    write_json(flags_file, version_2())
    changed = events.wait_for(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, after=mark)
    assert changed.flags_changed == ["checkout"]
    assert checkout() == "one-page"


def test_an_atomic_replace_is_served_and_reported(
    flags_file: Path, provider: StagelessProvider, events: Events
) -> None:
    mark = len(events)
    replace_json(flags_file, version_2())
    changed = events.wait_for(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, after=mark)
    assert changed.flags_changed == ["checkout"]
    assert checkout() == "one-page"
    # The watcher follows the new file, not the replaced inode.
    mark = len(events)
    replace_json(flags_file, VERSION_1)
    events.wait_for(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, after=mark)
    assert checkout() == "classic"


def test_added_and_removed_flags_are_reported(
    flags_file: Path, provider: StagelessProvider, events: Events
) -> None:
    document = copy.deepcopy(VERSION_1)
    del document["flags"]["banner"]
    document["flags"]["search"] = flag(BOOL, "on")
    mark = len(events)
    write_json(flags_file, document)
    changed = events.wait_for(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, after=mark)
    assert changed.flags_changed == ["banner", "search"]


def test_a_broken_edit_keeps_the_last_good_flags_until_fixed(
    flags_file: Path, provider: StagelessProvider, events: Events
) -> None:
    mark = len(events)
    broken = copy.deepcopy(VERSION_1)
    broken["flags"]["checkout"]["defaultVariant"] = "blue"
    write_json(flags_file, broken)
    error = events.wait_for(ProviderEvent.PROVIDER_ERROR, after=mark)
    assert error.error_code == ErrorCode.PARSE_ERROR
    assert "flags.checkout.defaultVariant" in (error.message or "")
    assert "last good" in (error.message or "")
    client = api.get_client()
    assert client.get_provider_status() is ProviderStatus.ERROR
    assert checkout() == "classic"  # still served
    assert provider.last_error is not None

    mark = len(events)
    write_json(flags_file, version_2())
    events.wait_for(ProviderEvent.PROVIDER_READY, after=mark)
    changed = events.wait_for(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, after=mark)
    assert changed.flags_changed == ["checkout"]
    assert events.kinds()[mark:] == [
        ProviderEvent.PROVIDER_READY,
        ProviderEvent.PROVIDER_CONFIGURATION_CHANGED,
    ]
    assert client.get_provider_status() is ProviderStatus.READY
    assert checkout() == "one-page"
    assert provider.last_error is None


def test_restoring_the_last_good_content_is_ready_without_a_change(
    flags_file: Path, provider: StagelessProvider, events: Events
) -> None:
    mark = len(events)
    flags_file.write_text("{ not json")
    events.wait_for(ProviderEvent.PROVIDER_ERROR, after=mark)
    write_json(flags_file, VERSION_1)
    events.wait_for(ProviderEvent.PROVIDER_READY, after=mark)
    # A real change afterwards is the next event: nothing else was reported in between.
    write_json(flags_file, version_2())
    events.wait_for(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, after=mark)
    assert events.kinds()[mark:] == [
        ProviderEvent.PROVIDER_ERROR,
        ProviderEvent.PROVIDER_READY,
        ProviderEvent.PROVIDER_CONFIGURATION_CHANGED,
    ]


def test_rewriting_identical_content_reports_nothing(
    flags_file: Path, provider: StagelessProvider, events: Events
) -> None:
    mark = len(events)
    write_json(flags_file, VERSION_1)  # same bytes, new mtime
    (flags_file.parent / "unrelated.txt").write_text("noise")
    write_json(flags_file, version_2())
    events.wait_for(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, after=mark)
    assert events.kinds()[mark:] == [ProviderEvent.PROVIDER_CONFIGURATION_CHANGED]


def test_a_deleted_file_is_an_error_and_its_return_is_ready(
    flags_file: Path, provider: StagelessProvider, events: Events
) -> None:
    mark = len(events)
    flags_file.unlink()
    error = events.wait_for(ProviderEvent.PROVIDER_ERROR, after=mark)
    assert error.error_code == ErrorCode.GENERAL
    assert "cannot read flag file" in (error.message or "")
    assert checkout() == "classic"
    mark = len(events)
    write_json(flags_file, version_2())
    events.wait_for(ProviderEvent.PROVIDER_READY, after=mark)
    assert checkout() == "one-page"


def test_a_broken_first_version_becomes_ready_when_fixed(tmp_path: Path, events: Events) -> None:
    path = tmp_path / "flags.json"
    path.write_text("{")
    with pytest.raises(Exception, match=r"flags\.json"):
        api.set_provider_and_wait(StagelessProvider.from_file(path))
    mark = len(events)
    write_json(path, VERSION_1)
    events.wait_for(ProviderEvent.PROVIDER_READY, after=mark)
    changed = events.wait_for(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, after=mark)
    assert changed.flags_changed == ["banner", "checkout"]
    assert checkout() == "classic"


def watcher_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("stageless-watch:")]


def test_shutdown_stops_the_watcher(flags_file: Path, provider: StagelessProvider) -> None:
    source = provider.source
    assert isinstance(source, FileSource)
    assert source.watching
    assert watcher_threads()
    provider.shutdown()
    assert not source.watching
    assert not watcher_threads()


def test_the_sdk_shutdown_stops_the_watcher(flags_file: Path, provider: StagelessProvider) -> None:
    api.shutdown()
    assert not watcher_threads()


def test_watch_false_starts_no_thread(flags_file: Path, openfeature_api: None) -> None:
    api.set_provider_and_wait(StagelessProvider.from_file(flags_file, watch=False))
    assert not watcher_threads()


def test_a_missing_directory_fails_fast_and_reports_the_watcher(
    tmp_path: Path, events: Events
) -> None:
    provider = StagelessProvider.from_file(tmp_path / "no-such-dir" / "flags.json")
    started = time.monotonic()
    with pytest.raises(Exception, match="cannot read flag file"):
        api.set_provider_and_wait(provider)
    assert time.monotonic() - started < 3
    assert events.wait_for(ProviderEvent.PROVIDER_ERROR).error_code == ErrorCode.GENERAL
    source = provider.source
    assert isinstance(source, FileSource)
    assert not source.watching
