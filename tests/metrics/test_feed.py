"""Feeding the real sequential judge from a source: no data is INCONCLUSIVE, never PASS."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from stageless.analysis.batch import Batch, Histogram, Version
from stageless.analysis.judge import SequentialJudge
from stageless.analysis.verdict import Verdict
from stageless.metrics import BatchFile, SourceFeed, inconclusive, judge_window
from tests.metrics.factories import batch
from tests.metrics.test_source import ListSource

LE = (50.0, 100.0, 250.0, float("inf"))


def traffic(n: int, candidate_error_rate: float, seed: int = 1) -> list[Batch]:
    """``n`` 10-second intervals at 100 req/s, 10 % canary, 1 % errors on stable."""
    rng = np.random.default_rng(seed)
    batches = []
    for i in range(n):
        for version, requests, rate in (
            (Version.STABLE, 900, 0.01),
            (Version.CANDIDATE, 100, candidate_error_rate),
        ):
            latencies = rng.lognormal(np.log(100.0), 0.5, requests)
            counts, _ = np.histogram(latencies, bins=(0.0, *LE))
            batches.append(
                batch(
                    ts=1_000.0 + 10.0 * i,
                    version=version,
                    configured_share=0.1 if version is Version.CANDIDATE else 0.9,
                    requests=requests,
                    errors=int(rng.binomial(requests, rate)),
                    client_errors=0,
                    users=requests,
                    samples=tuple(float(x) for x in latencies),
                    histogram=Histogram(LE, tuple(int(c) for c in counts)),
                )
            )
    return batches


def test_a_failing_source_is_inconclusive_with_its_reason() -> None:
    source = ListSource([], failure="cannot reach Prometheus at http://127.0.0.1:1: refused")
    decision = judge_window(SequentialJudge(), source, "checkout", "/api", 0, 10_000)
    assert decision.verdict is Verdict.INCONCLUSIVE
    assert decision.summary == (
        "INCONCLUSIVE: no data: cannot reach Prometheus at http://127.0.0.1:1: refused"
    )


def test_an_empty_window_is_inconclusive_not_pass() -> None:
    decision = judge_window(SequentialJudge(), ListSource([]), "checkout", "/api", 0, 10_000)
    assert decision.verdict is Verdict.INCONCLUSIVE
    assert "no user-traffic batch for checkout /api" in decision.summary


def test_a_window_without_the_candidate_is_inconclusive() -> None:
    stable_only = [b for b in traffic(60, 0.01) if b.version is Version.STABLE]
    decision = judge_window(SequentialJudge(), ListSource(stable_only), "checkout", "/api", 0, 1e9)
    assert decision.verdict is Verdict.INCONCLUSIVE
    assert decision.summary == "INCONCLUSIVE: no data: no candidate batch for checkout /api"


def test_a_regression_in_a_recorded_file_fails(tmp_path: Path) -> None:
    path = tmp_path / "batches.jsonl"
    path.write_text("".join(json.dumps(b.to_json()) + "\n" for b in traffic(120, 0.05)))
    decision = judge_window(SequentialJudge(), BatchFile(path), "checkout", "/api", 0, 1e9)
    assert decision.verdict is Verdict.FAIL
    assert decision.summary.startswith("FAIL: ")


def test_a_feed_reports_outages_and_resumes_where_it_stopped() -> None:
    source = ListSource(traffic(120, 0.03))
    feed = SourceFeed(SequentialJudge(), source, "checkout", "/api", start=1_000.0)
    first = feed.poll(1_010.0)
    assert first.verdict is Verdict.CONTINUE
    source.failure = "Prometheus at http://127.0.0.1:9 timed out"
    outage = feed.poll(1_100.0)
    assert outage.verdict is Verdict.INCONCLUSIVE
    assert outage.summary == "INCONCLUSIVE: no data: Prometheus at http://127.0.0.1:9 timed out"
    assert feed.cursor == 1_010.0  # the failed span is asked again
    source.failure = None
    decision = feed.poll(3_000.0)
    assert decision.verdict is Verdict.FAIL
    assert feed.poll(4_000.0) == decision  # final: the judge stopped listening


def test_a_feed_with_nothing_new_is_inconclusive_and_keeps_its_cursor() -> None:
    feed = SourceFeed(SequentialJudge(), ListSource([]), "checkout", "/api", start=1_000.0)
    decision = feed.poll(2_000.0)
    assert decision.verdict is Verdict.INCONCLUSIVE
    assert decision.summary == (
        "INCONCLUSIVE: no data: the source returned no batch for checkout /api since 1000"
    )
    assert feed.cursor == 1_000.0


def test_a_fail_reached_on_partial_data_stands() -> None:
    only_early = ListSource(traffic(120, 0.2))
    judge = SequentialJudge()
    decision = judge_window(judge, only_early, "checkout", "/api", 0, 1e9)
    assert decision.verdict is Verdict.FAIL
    assert inconclusive(decision, "no data: the source went away") == decision
