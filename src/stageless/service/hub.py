"""Document changes (flag sets, proxy configs) delivered to asyncio code: the ``ChangeHub``.

The store calls its listeners on its own threads (after a local commit, or when PostgreSQL
LISTEN/NOTIFY or SQLite polling reports another instance's change). The hub subscribes once and
hands each event to the event loop with ``loop.call_soon_threadsafe``, where it fans out to
per-subscriber queues. ``close()`` ends every subscription, which is how open event streams
finish when the server shuts down.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import suppress

from stageless.store import ChangeEvent, ResourceKind, Store, Subscription


class Closed(Exception):  # noqa: N818  # a signal, not an error condition
    """The hub closed: the server is shutting down."""


class Listener:
    """One subscriber's queue of events for one document (or every one) of one kind."""

    def __init__(
        self, hub: ChangeHub, flag_set: str | None, kind: ResourceKind = ResourceKind.FLAG_SET
    ) -> None:
        self.flag_set = flag_set  # the name listened to (a flag set's unless kind says not)
        self.kind = kind
        self._hub = hub
        self._queue: asyncio.Queue[ChangeEvent | None] = asyncio.Queue()

    def _put(self, event: ChangeEvent | None) -> None:
        self._queue.put_nowait(event)

    async def get(self, timeout: float | None = None) -> ChangeEvent | None:
        """The next event, or ``None`` after ``timeout`` seconds; raises ``Closed``."""
        if self._hub.closed and self._queue.empty():
            raise Closed
        try:
            event = await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return None
        if event is None:
            raise Closed
        return event

    def end(self) -> None:
        """End this subscription alone: ``get`` raises ``Closed`` (the hub goes on)."""
        self._put(None)

    def close(self) -> None:
        self._hub._remove(self)

    def __enter__(self) -> Listener:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class ChangeHub:
    """Fans the store's change events out to asyncio subscribers. Use from one event loop."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._listeners: set[Listener] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subscription: Subscription | None = None
        self.closed = False

    async def start(self) -> None:
        """Subscribe to the store from the running loop (the store call runs in a thread)."""
        self._loop = asyncio.get_running_loop()
        self._subscription = await asyncio.to_thread(
            lambda: self._store.subscribe(self._from_store, kind=None)
        )

    def _from_store(self, event: ChangeEvent) -> None:  # on a store thread
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with suppress(RuntimeError):  # the loop closed between the check and the call
                loop.call_soon_threadsafe(self._dispatch, event)

    def _dispatch(self, event: ChangeEvent) -> None:
        for listener in list(self._listeners):
            if listener.kind == event.kind and listener.flag_set in (None, event.name):
                listener._put(event)

    def listen(
        self, flag_set: str | None = None, *, kind: ResourceKind = ResourceKind.FLAG_SET
    ) -> Listener:
        """A new subscription to the changes of ``flag_set`` (``None``: all), or of the document
        of ``kind`` with that name; close it when done."""
        listener = Listener(self, flag_set, kind)
        if self.closed:
            listener._put(None)
        else:
            self._listeners.add(listener)
        return listener

    async def changes(self, flag_set: str | None = None) -> AsyncIterator[ChangeEvent]:
        """Every later change of ``flag_set`` (``None``: all), until the hub closes."""
        with self.listen(flag_set) as listener:
            while True:
                try:
                    event = await listener.get()
                except Closed:
                    return
                if event is not None:
                    yield event

    @property
    def subscribers(self) -> int:
        return len(self._listeners)

    def _remove(self, listener: Listener) -> None:
        self._listeners.discard(listener)

    def close_soon(self) -> None:
        """``close()`` on the hub's event loop; safe from signal handlers and other threads."""
        loop = self._loop
        if loop is None or loop.is_closed():
            self.close()
            return
        with suppress(RuntimeError):
            loop.call_soon_threadsafe(self.close)

    def close(self) -> None:
        """End every subscription (their ``get`` raises ``Closed``) and stop listening."""
        if self.closed:
            return
        self.closed = True
        for listener in list(self._listeners):
            listener._put(None)
        self._listeners.clear()
        if self._subscription is not None:
            self._subscription.close()
            self._subscription = None
