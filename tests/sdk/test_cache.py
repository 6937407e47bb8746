"""The stream source's cache file: atomic replacement and what a reader accepts."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from stageless.sdk.cache import CACHE_FORMAT, CachedFlags, read_cache, write_cache

SERVER = "http://127.0.0.1:7411"


def cached(version: int = 3, flag_set: str = "web") -> CachedFlags:
    document = {
        "flags": {"a": {"state": "ENABLED", "variants": {"on": True}, "defaultVariant": "on"}}
    }
    return CachedFlags(SERVER, flag_set, version, f'"e{version}"', document, 1700000000.5)


def test_round_trip_and_no_temporary_left(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "cache.json"
    write_cache(path, cached(3))
    write_cache(path, cached(4))
    assert read_cache(path, server=SERVER, flag_set="web") == cached(4)
    assert sorted(p.name for p in path.parent.iterdir()) == ["cache.json"]
    assert json.loads(path.read_text())["stageless_flag_cache"] == CACHE_FORMAT


def test_a_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "cache.json"
    write_cache(path, cached(3))
    broken = CachedFlags(SERVER, "web", 4, "e", {"x": object()}, 0.0)  # not JSON-serialisable
    with pytest.raises(TypeError):
        write_cache(path, broken)
    assert read_cache(path, server=SERVER, flag_set="web") == cached(3)
    assert [p.name for p in tmp_path.iterdir()] == ["cache.json"]


def test_missing_file_is_none_silently(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert read_cache(tmp_path / "none.json", server=SERVER, flag_set="web") is None
    assert caplog.records == []


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("{not json", "not JSON"),
        ('{"stageless_flag_cache": 99}', "not a Stageless flag cache"),
        ('{"stageless_flag_cache": 1, "server": "x"}', "not a Stageless flag cache"),
        ("[]", "not a Stageless flag cache"),
    ],
)
def test_unusable_files_are_ignored_with_a_reason(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: str, reason: str
) -> None:
    path = tmp_path / "cache.json"
    path.write_text(content)
    with caplog.at_level(logging.WARNING):
        assert read_cache(path, server=SERVER, flag_set="web") is None
    assert reason in caplog.text


def test_another_server_or_flag_set_is_ignored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "cache.json"
    write_cache(path, cached(flag_set="mobile"))
    with caplog.at_level(logging.WARNING):
        assert read_cache(path, server=SERVER, flag_set="web") is None
        assert read_cache(path, server="http://elsewhere:1", flag_set="mobile") is None
    assert "holds flag set 'mobile'" in caplog.text
