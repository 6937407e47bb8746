"""The evaluation tally: counts added without the counter's lock reach it exactly once."""

from __future__ import annotations

import threading

from stageless.api.metrics import Batch, EvaluationTally, Metrics


def count(metrics: Metrics, flag: str, reason: str = "STATIC") -> float:
    value = metrics.registry.get_sample_value(
        "stageless_flag_evaluations_total", {"flag_set": "web", "flag": flag, "reason": reason}
    )
    return 0.0 if value is None else value


def test_pending_counts_reach_the_counter_when_rendered() -> None:
    metrics = Metrics()
    a = metrics.evaluations.labels("web", "a", "STATIC")
    b = metrics.evaluations.labels("web", "b", "STATIC")
    batch = Batch([a, b])
    metrics.tally.add(batch)
    metrics.tally.add(batch)
    metrics.tally.add_all([a, a])

    assert count(metrics, "a") == 0  # not folded yet
    text = metrics.render().decode()

    assert 'stageless_flag_evaluations_total{flag="a",flag_set="web",reason="STATIC"} 4.0' in text
    assert count(metrics, "b") == 2
    metrics.render()
    assert count(metrics, "a") == 4  # folded once, not again


def test_the_tally_folds_by_itself_once_many_items_are_pending() -> None:
    metrics = Metrics()
    child = metrics.evaluations.labels("web", "a", "STATIC")
    batches = [Batch([child]) for _ in range(EvaluationTally.FOLD_AT)]
    for batch in batches:
        metrics.tally.add(batch)

    assert count(metrics, "a") == EvaluationTally.FOLD_AT


def test_counts_added_from_many_threads_while_folding_are_all_kept() -> None:
    metrics = Metrics()
    child = metrics.evaluations.labels("web", "a", "STATIC")
    batch = Batch([child, child])
    per_thread = 20_000

    def add() -> None:
        for _ in range(per_thread):
            metrics.tally.add(batch)

    threads = [threading.Thread(target=add) for _ in range(4)]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        metrics.tally.fold()
    for thread in threads:
        thread.join()
    metrics.tally.fold()

    assert count(metrics, "a") == 4 * per_thread * 2
