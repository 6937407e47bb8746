"""Fixtures for the provider tests: a clean OpenFeature API and an event recorder."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from openfeature import api

from tests.sdk.support import Events


@pytest.fixture
def openfeature_api() -> Iterator[None]:
    """The OpenFeature SDK keeps a global registry: start and end every test with a clean one."""
    api.shutdown()
    yield
    api.shutdown()


@pytest.fixture
def events(openfeature_api: None) -> Events:
    """Every provider event of the provider named "stageless", as the SDK delivers it."""
    recorder = Events()
    recorder.register()
    return recorder
