"""Pairing baseline and canary batches by interval."""

from __future__ import annotations

from stageless.analysis.batch import TrafficClass, Version
from stageless.analysis.pairing import Pairer

from .factories import batch


def test_an_interval_is_released_when_both_arms_are_in_whatever_the_order() -> None:
    pairer = Pairer()
    assert pairer.add(batch(Version.CANDIDATE, ts=0.0)) == []
    (done,) = pairer.add(batch(Version.STABLE, ts=0.0))
    assert done.canary is not None
    assert done.baseline is not None
    assert (done.ts, done.interval_s) == (0.0, 10.0)


def test_a_batch_without_partner_is_released_alone_once_the_other_arm_moved_on() -> None:
    pairer = Pairer(max_lag_s=30.0)
    assert pairer.add(batch(Version.CANDIDATE, ts=0.0)) == []
    for ts in (10.0, 20.0):
        assert pairer.add(batch(Version.STABLE, ts=ts)) == []
    (orphan, *rest) = pairer.add(batch(Version.STABLE, ts=30.0))
    assert rest == []
    assert orphan.ts == 0.0
    assert orphan.canary is not None
    assert orphan.baseline is None
    flushed = pairer.flush()
    assert [(i.ts, i.canary is None) for i in flushed] == [(10.0, True), (20.0, True), (30.0, True)]


def test_duplicates_other_classes_and_other_routes_are_ignored_and_counted() -> None:
    pairer = Pairer(route="/")
    pairer.add(batch(Version.CANDIDATE, ts=0.0))
    assert pairer.add(batch(Version.CANDIDATE, ts=0.0)) == []
    assert pairer.add(batch(Version.STABLE, traffic_class=TrafficClass.SYNTHETIC)) == []
    assert pairer.add(batch(Version.STABLE, route="/other")) == []
    assert (pairer.batches, pairer.ignored, pairer.duplicates) == (4, 3, 1)


def test_routes_are_paired_separately() -> None:
    pairer = Pairer()
    pairer.add(batch(Version.CANDIDATE, route="/a"))
    pairer.add(batch(Version.STABLE, route="/b"))
    assert len(pairer.add(batch(Version.STABLE, route="/a"))) == 1
    assert len(pairer.flush()) == 1
