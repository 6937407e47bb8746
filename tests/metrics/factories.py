"""Batches for the metric-source tests."""

from __future__ import annotations

from typing import Any

from stageless.analysis.batch import Batch, Histogram, TrafficClass, Version


def batch(**overrides: Any) -> Batch:
    """A valid candidate batch of user traffic; any field may be overridden."""
    fields: dict[str, Any] = {
        "ts": 1_000.0,
        "interval_s": 10.0,
        "service": "checkout",
        "route": "/api",
        "version": Version.CANDIDATE,
        "traffic_class": TrafficClass.USER,
        "configured_share": 0.05,
        "requests": 50,
        "errors": 1,
        "client_errors": 2,
        "users": 40,
        "samples": (12.5, 80.0, 101.25),
        "histogram": Histogram((5.0, 10.0, 25.0, float("inf")), (0, 1, 1, 1)),
    }
    fields.update(overrides)
    return Batch(**fields)
