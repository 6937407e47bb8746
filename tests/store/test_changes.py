"""The change hub: each change delivered once, in order per flag set, whatever the echoes."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stageless.store import ChangeEvent, ResourceKind
from stageless.store.changes import ChangeHub


def _listening(hub: ChangeHub) -> list[ChangeEvent]:
    heard: list[ChangeEvent] = []
    hub.subscribe(heard.append)
    return heard


def test_an_echo_of_a_published_change_is_not_delivered_again() -> None:
    hub = ChangeHub()
    heard = _listening(hub)
    hub.publish(ChangeEvent("web", 1))
    hub.publish(ChangeEvent("web", 1))
    hub.publish(ChangeEvent("web", 2))
    hub.publish(ChangeEvent("web", 1))  # a late echo of an older change
    assert heard == [ChangeEvent("web", 1), ChangeEvent("web", 2)]


def test_a_deletion_outranks_the_change_that_made_its_version() -> None:
    hub = ChangeHub()
    heard = _listening(hub)
    hub.publish(ChangeEvent("web", 3, deleted=True))
    hub.publish(ChangeEvent("web", 3))  # the echo of the write before the deletion
    hub.publish(ChangeEvent("web", 4))  # re-created
    assert heard == [ChangeEvent("web", 3, deleted=True), ChangeEvent("web", 4)]


def test_a_baseline_is_silent_and_later_snapshots_report_differences() -> None:
    hub = ChangeHub()
    heard = _listening(hub)
    hub.reconcile({"web": 2, "api": 1}, since=hub.mark(), emit=False)
    assert heard == []
    hub.reconcile({"web": 3}, since=hub.mark(), emit=True)
    assert heard == [ChangeEvent("web", 3), ChangeEvent("api", 1, deleted=True)]


def test_a_snapshot_older_than_a_published_change_does_not_undo_it() -> None:
    hub = ChangeHub()
    heard = _listening(hub)
    since = hub.mark()
    hub.publish(ChangeEvent("new", 1))  # committed after the snapshot below was read
    hub.reconcile({}, since=since, emit=True)
    assert heard == [ChangeEvent("new", 1)]
    hub.publish(ChangeEvent("old", 2, deleted=True))
    hub.reconcile({"new": 1, "old": 2}, since=hub.mark(), emit=True)  # stale: still deleted
    assert heard == [ChangeEvent("new", 1), ChangeEvent("old", 2, deleted=True)]


def test_a_failing_listener_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    hub = ChangeHub()

    def broken(event: ChangeEvent) -> None:
        raise RuntimeError("boom")

    hub.subscribe(broken)
    heard = _listening(hub)
    with caplog.at_level(logging.ERROR, logger="stageless.store.changes"):
        hub.publish(ChangeEvent("web", 1))
    assert heard == [ChangeEvent("web", 1)]
    assert "change listener" in caplog.text


def test_closing_a_subscription_twice_is_harmless() -> None:
    hub = ChangeHub()
    subscription = hub.subscribe(lambda _event: None)
    assert hub.listener_count == 1
    subscription.close()
    subscription.close()
    assert hub.listener_count == 0


@st.composite
def _two_streams(draw: st.DrawFn) -> tuple[list[ChangeEvent], list[ChangeEvent]]:
    """A flag set's true history, and an interleaving of two in-order copies of it."""
    history: list[ChangeEvent] = []
    version = 0
    for deleting in draw(st.lists(st.booleans(), max_size=15)):
        if deleting and history and not history[-1].deleted:
            history.append(ChangeEvent("web", version, deleted=True))
        else:
            version += 1
            history.append(ChangeEvent("web", version))
    local, echo = list(history), list(history)
    merged = []
    while local or echo:
        source = local if (local and (not echo or draw(st.booleans()))) else echo
        merged.append(source.pop(0))
    return history, merged


@given(_two_streams())
def test_two_in_order_copies_deliver_the_history_once(
    streams: tuple[list[ChangeEvent], list[ChangeEvent]],
) -> None:
    history, merged = streams
    hub = ChangeHub()
    heard = _listening(hub)
    for event in merged:
        hub.publish(event)
    assert heard == history


def test_kinds_are_separate_namespaces_and_listeners_hear_their_kind() -> None:
    proxy = ResourceKind.PROXY_CONFIG
    hub = ChangeHub()
    flags = _listening(hub)
    proxies: list[ChangeEvent] = []
    everything: list[ChangeEvent] = []
    hub.subscribe(proxies.append, kind=proxy)
    hub.subscribe(everything.append, kind=None)
    hub.publish(ChangeEvent("web", 2))
    hub.publish(ChangeEvent("web", 1, kind=proxy))  # not "older than" the flag set's version 2
    hub.publish(ChangeEvent("web", 1, kind=proxy))  # an echo
    assert flags == [ChangeEvent("web", 2)]
    assert proxies == [ChangeEvent("web", 1, kind=proxy)]
    assert everything == [ChangeEvent("web", 2), ChangeEvent("web", 1, kind=proxy)]


def test_reconciling_one_kind_leaves_the_other_alone() -> None:
    proxy = ResourceKind.PROXY_CONFIG
    hub = ChangeHub()
    heard: list[ChangeEvent] = []
    hub.subscribe(heard.append, kind=None)
    hub.reconcile_all({ResourceKind.FLAG_SET: {"web": 1}, proxy: {"edge": 1}}, since=0, emit=False)
    # A snapshot without "web" among the proxy configs deletes nothing among the flag sets.
    hub.reconcile_all({ResourceKind.FLAG_SET: {"web": 1}, proxy: {}}, since=hub.mark(), emit=True)
    assert heard == [ChangeEvent("edge", 1, deleted=True, kind=proxy)]
