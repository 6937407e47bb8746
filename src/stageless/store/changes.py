"""Fan-out of document change events to listeners, with de-duplication.

Events reach the hub from two directions: a store publishes its own writes right after they
commit (so same-process subscribers hear at once), and a backend watcher (PostgreSQL
LISTEN/NOTIFY, SQLite polling) reports changes made anywhere, including the same writes again.
The hub delivers each change once and in order per document: it remembers the last version seen
for every (kind, name) (with deletions kept as tombstones; versions never repeat because a
re-created document continues its numbering) and drops anything not newer.

After a watcher (re)connects it calls ``reconcile_all`` with a snapshot of every document's
version, by kind, which turns whatever it missed while away into events.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from stageless.store.base import ChangeEvent, Listener, ResourceKind

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Seen:
    version: int
    deleted: bool
    seq: int  # the hub's counter when this was recorded

    def key(self) -> tuple[int, bool]:
        # At equal version a deletion is newer than the change that made that version.
        return (self.version, self.deleted)


class Watcher(Protocol):
    """A backend's background source of change events."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


class ChangeHub:
    """Thread-safe listener registry and de-duplicating dispatcher."""

    def __init__(self) -> None:
        # Re-entrant: a listener may call back into the store, even write to it.
        self._lock = threading.RLock()
        self._seen: dict[tuple[ResourceKind, str], _Seen] = {}
        self._listeners: dict[int, tuple[ResourceKind | None, Listener]] = {}
        self._ids = itertools.count(1)
        self._seq = 0

    def subscribe(
        self, listener: Listener, *, kind: ResourceKind | None = ResourceKind.FLAG_SET
    ) -> HubSubscription:
        """Deliver later events of ``kind`` (``None``: every kind) to ``listener``."""
        with self._lock:
            ident = next(self._ids)
            self._listeners[ident] = (kind, listener)
        return HubSubscription(lambda: self._unsubscribe(ident))

    def _unsubscribe(self, ident: int) -> None:
        with self._lock:
            self._listeners.pop(ident, None)

    @property
    def listener_count(self) -> int:
        with self._lock:
            return len(self._listeners)

    def mark(self) -> int:
        """The current position; pass it to ``reconcile`` for a snapshot taken after this call."""
        with self._lock:
            return self._seq

    def publish(self, event: ChangeEvent) -> None:
        """Deliver ``event`` unless the hub has already seen it or something newer."""
        with self._lock:
            if self._record(event):
                self._deliver(event)

    def reconcile(
        self,
        snapshot: Mapping[str, int],
        *,
        since: int,
        emit: bool,
        kind: ResourceKind = ResourceKind.FLAG_SET,
    ) -> None:
        """Bring the hub in line with ``snapshot`` (name → version of every document of
        ``kind``), read after ``mark()``.

        With ``emit`` false the snapshot only sets the baseline (at start, nothing has changed
        yet for a new subscriber); with ``emit`` true differences become events. A name the hub
        learnt of after ``since`` is newer than the snapshot and is left alone.
        """
        with self._lock:
            events = [
                ChangeEvent(name, version, kind=kind) for name, version in sorted(snapshot.items())
            ]
            events.extend(
                ChangeEvent(name, seen.version, deleted=True, kind=kind)
                for (seen_kind, name), seen in sorted(self._seen.items())
                if seen_kind == kind
                and name not in snapshot
                and not seen.deleted
                and seen.seq <= since
            )
            for event in events:
                if self._record(event) and emit:
                    self._deliver(event)

    def reconcile_all(
        self, snapshots: Mapping[ResourceKind, Mapping[str, int]], *, since: int, emit: bool
    ) -> None:
        """``reconcile`` for every kind in ``snapshots`` (one snapshot per kind)."""
        for kind, snapshot in snapshots.items():
            self.reconcile(snapshot, since=since, emit=emit, kind=kind)

    def _record(self, event: ChangeEvent) -> bool:
        new = _Seen(event.version, event.deleted, self._seq + 1)
        key = (event.kind, event.name)
        old = self._seen.get(key)
        if old is not None and new.key() <= old.key():
            return False
        self._seq += 1
        self._seen[key] = new
        return True

    def _deliver(self, event: ChangeEvent) -> None:
        for kind, listener in list(self._listeners.values()):
            if kind is not None and kind != event.kind:
                continue
            try:
                listener(event)
            except Exception:
                # The one boundary where any listener failure is caught: a broken subscriber
                # must not stop deliveries to the others or kill the watcher thread.
                log.exception("change listener %r failed on %r", listener, event)


class HubSubscription:
    """Returned by ``Store.subscribe``; ``close()`` unregisters the listener."""

    def __init__(self, on_close: Callable[[], None]) -> None:
        self._on_close: Callable[[], None] | None = on_close

    def close(self) -> None:
        if self._on_close is not None:
            self._on_close()
            self._on_close = None

    def __enter__(self) -> HubSubscription:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
