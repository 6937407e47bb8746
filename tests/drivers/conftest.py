"""A service over a real SQLite store in the test's directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from stageless.service import Service
from stageless.store import open_store, sqlite_url


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    store = open_store(sqlite_url(tmp_path), poll_interval=0.05)
    svc = Service(store)
    yield svc
    svc.close()
    store.close()
