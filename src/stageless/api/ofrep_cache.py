"""The compiled flag sets the OFREP routes evaluate, looked up without blocking the event loop.

``FlagSetService.compiled(name)`` caches compiled sets but is synchronous: on a miss it reads the
database, which must not happen on the event loop (a slow or unreachable PostgreSQL would stall
every request). ``CompiledCache`` keeps the entries the routes use in a dict read on the loop; a
miss calls the service in a worker thread. Entries are dropped from the store's change listener
(this instance's writes and other instances' alike), and a per-name generation keeps a lookup
that raced with a change from caching the older version; so does a version check, since the
service's own cache may still hold the older set for a moment after the change.
"""

from __future__ import annotations

import enum
import json
import threading
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool

from stageless.errors import NotFoundError
from stageless.flags import FlagSet
from stageless.service import Compiled, Service
from stageless.store import ChangeEvent, Subscription

#: The engine's variable for the evaluation time; rules reading it can change result with time.
TIME_VARIABLE = "$flagd.timestamp"


class Missing(enum.Enum):
    """Not in the cache (``None`` is a cached answer: the flag set is absent)."""

    MISSING = enum.auto()


MISSING = Missing.MISSING


@dataclass(frozen=True, slots=True)
class Entry:
    """A compiled flag set and whether any of its rules reads the time."""

    compiled: Compiled
    reads_time: bool


def reads_time(flags: FlagSet) -> bool:
    """Whether any flag's targeting mentions ``$flagd.timestamp`` (conservatively, as text)."""
    for key in flags:
        targeting = flags.flag(key).targeting
        if targeting is not None and TIME_VARIABLE in json.dumps(targeting):
            return True
    return False


class CompiledCache:
    """Compiled flag sets by name for the OFREP routes; ``None`` for a flag set that is absent."""

    def __init__(self, service: Service) -> None:
        self._service = service
        self._entries: dict[str, Entry | None] = {}  # None: known to be absent
        self._generation: dict[str, int] = {}
        self._latest: dict[str, int] = {}  # the lowest version that may be cached, per name
        self._lock = threading.Lock()
        # Its own lock: the store may call _forget (which takes _lock) while holding its own
        # listener lock, so subscribing under _lock could deadlock.
        self._subscribe_lock = threading.Lock()
        self._subscription: Subscription | None = None

    async def get(self, name: str) -> Entry | None:
        """The entry of ``name``; reads the store in a worker thread on a miss."""
        try:
            return self._entries[name]
        except KeyError:
            return await run_in_threadpool(self._load, name)

    def peek(self, name: str) -> Entry | Missing | None:
        """The entry of ``name`` if it is cached, else ``MISSING`` (then ``await get``).

        For the bulk route: an ``await`` of ``get`` creates and runs a coroutine even on a hit.
        """
        return self._entries.get(name, MISSING)

    def _load(self, name: str) -> Entry | None:
        self._ensure_subscribed()
        with self._lock:
            generation = self._generation.get(name, 0)
        entry: Entry | None
        try:
            compiled = self._service.flag_sets.compiled(name)
            entry = Entry(compiled, reads_time(compiled.flags))
        except NotFoundError:
            entry = None
        with self._lock:
            if len(self._entries) > 10_000:  # bound memory under requests for random names
                self._entries.clear()
            fresh = entry is None or entry.compiled.version >= self._latest.get(name, 0)
            if fresh and self._generation.get(name, 0) == generation:
                self._entries[name] = entry
        return entry

    def _ensure_subscribed(self) -> None:
        with self._subscribe_lock:
            if self._subscription is None:
                self._subscription = self._service.store.subscribe(self._forget)

    def _forget(self, event: ChangeEvent) -> None:  # on a store thread
        with self._lock:
            name = event.flag_set
            self._generation[name] = self._generation.get(name, 0) + 1
            # A deleted set's version is gone for good: a re-created set gets a later one.
            floor = event.version + 1 if event.deleted else event.version
            self._latest[name] = max(self._latest.get(name, 0), floor)
            self._entries.pop(event.flag_set, None)

    def close(self) -> None:
        """Stop listening to the store (idempotent)."""
        with self._subscribe_lock:
            subscription, self._subscription = self._subscription, None
        if subscription is not None:
            subscription.close()
