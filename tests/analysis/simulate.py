"""A small seeded traffic simulator producing batches, for the judges' tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from stageless.analysis.batch import Batch, Histogram, TrafficClass, Version

BUCKETS = (5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, np.inf)


@dataclass(frozen=True)
class Scenario:
    share: float = 0.05
    rps: float = 100.0
    interval_s: float = 10.0
    error_rate: float = 0.01
    error_ratio: float = 1.0
    slowdown: float = 1.0
    sigma: float = 0.5
    median_ms: float = 100.0
    tail_share: float = 0.0  # share of canary requests given +500 ms
    users_per_request: float = 0.8
    user_share: float | None = None  # the canary's real share of users, if the split is broken
    samples: bool = True
    histogram: bool = False


def batches(scenario: Scenario, seed: int, intervals: int = 720) -> Iterator[Batch]:
    """Baseline then canary batch for each interval (10 s by default)."""
    rng = np.random.default_rng(seed)
    s = scenario
    for i in range(intervals):
        ts = 1_764_000_000.0 + i * s.interval_s
        n = int(rng.poisson(s.rps * s.interval_s))
        share = s.share if s.user_share is None else s.user_share
        n_canary = int(rng.binomial(n, share))
        for version, count in ((Version.STABLE, n - n_canary), (Version.CANDIDATE, n_canary)):
            canary = version is Version.CANDIDATE
            p = s.error_rate * (s.error_ratio if canary else 1.0)
            latency = s.median_ms * np.exp(s.sigma * rng.standard_normal(count))
            if canary:
                latency *= s.slowdown
                latency += 500.0 * (rng.random(count) < s.tail_share)
            sample = latency[:1000]
            hist = Histogram()
            if s.histogram:
                idx = np.searchsorted(np.asarray(BUCKETS), latency)
                hist = Histogram(
                    BUCKETS, tuple(int(c) for c in np.bincount(idx, minlength=len(BUCKETS)))
                )
            configured = s.share if canary else 1.0 - s.share
            yield Batch(
                ts=ts,
                interval_s=s.interval_s,
                service="shop",
                route="/",
                version=version,
                traffic_class=TrafficClass.USER,
                configured_share=configured,
                requests=count,
                errors=int(rng.binomial(count, min(p, 1.0))),
                client_errors=0,
                users=(users := int(rng.binomial(count, s.users_per_request))),
                new_users=users,  # every user is seen once: all are new
                samples=tuple(sample.tolist()) if s.samples else (),
                histogram=hist,
            )
