"""Small builders of batches and intervals for the analysis tests."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from stageless.analysis.batch import Batch, Histogram, TrafficClass, Version
from stageless.analysis.pairing import Interval


def batch(
    version: Version = Version.CANDIDATE,
    *,
    ts: float = 0.0,
    requests: int = 100,
    errors: int = 0,
    users: int = 80,
    new_users: int | None = None,
    share: float | None = None,
    samples: Sequence[float] = (),
    histogram: Histogram | None = None,
    traffic_class: TrafficClass = TrafficClass.USER,
    route: str = "/",
    interval_s: float = 10.0,
) -> Batch:
    canary = version is Version.CANDIDATE
    return Batch(
        ts=ts,
        interval_s=interval_s,
        service="shop",
        route=route,
        version=version,
        traffic_class=traffic_class,
        configured_share=share if share is not None else (0.05 if canary else 0.95),
        requests=requests,
        errors=errors,
        client_errors=0,
        users=users,
        new_users=new_users,
        samples=tuple(float(s) for s in samples),
        histogram=histogram if histogram is not None else Histogram(),
    )


def interval(
    canary: Batch | None, baseline: Batch | None, *, ts: float = 0.0, interval_s: float = 10.0
) -> Interval:
    def arr(b: Batch | None) -> np.ndarray:
        return np.asarray(b.samples if b is not None else (), dtype=np.float64)

    return Interval(
        ts=ts,
        interval_s=interval_s,
        baseline=baseline,
        canary=canary,
        baseline_samples=arr(baseline),
        canary_samples=arr(canary),
    )


def latency_interval(
    canary: np.ndarray, baseline: np.ndarray, *, ts: float = 0.0, interval_s: float = 10.0
) -> Interval:
    """An interval carrying only latency samples (arrays are used as they are)."""
    c = batch(Version.CANDIDATE, ts=ts, requests=canary.size, samples=())
    b = batch(Version.STABLE, ts=ts, requests=baseline.size, samples=())
    return Interval(
        ts=ts,
        interval_s=interval_s,
        baseline=b,
        canary=c,
        baseline_samples=baseline,
        canary_samples=canary,
    )
