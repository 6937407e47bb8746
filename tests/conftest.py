"""Suite-wide test settings: hypothesis profiles and a hermetic environment."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

# "fast" runs in CI and by default; "deep" (HYPOTHESIS_PROFILE=deep) searches much harder.
# No deadline: the machines have 2 cores shared with other work, and timing is the benchmarks' job.
settings.register_profile(
    "fast", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "deep", max_examples=5_000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fast"))


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No STAGELESS_* or OFREP_* variable from the developer's shell leaks into a test."""
    for name in list(os.environ):
        if name.startswith(("STAGELESS_", "OFREP_")):
            monkeypatch.delenv(name)
    yield
