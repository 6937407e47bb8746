"""One store read and one encoding per document version, shared by every stream of it.

A flag set's change used to cost each open stream its own store read (in the thread pool) and
its own JSON encoding: with 1,000 subscribers the server spent about a second reading the same
row a thousand times. Here one ``Channel`` per flag set with subscribers listens to the
``ChangeHub``, reads the changed flag set once per version, encodes the SSE event once and hands
the same bytes (a ``Frame``) to every ``Subscriber``.

* Ordering: one channel processes its flag set's changes one at a time, so frames reach each
  subscriber in version order.
* Slow subscribers: handing out a frame only appends to a subscriber's bounded queue; it never
  waits for a client. A subscriber whose queue is full is *folded*: its pending frames are
  dropped and only the newest is kept. Every frame carries the whole state (the full document,
  or the deletion), so the newest one alone brings the client up to date; the contract lets
  versions be skipped.
* Lifetime: a channel starts with its first subscriber and stops with its last one. When the
  hub closes (server shutdown) or a store read fails unexpectedly, the channel ends every
  subscription, so their streams end and the clients reconnect (and read the state afresh).

The same machinery serves proxy-config streams: a ``Topic`` says which kind of document a
``Fanout`` streams, how to read one and how to encode its frames (``FLAG_SETS`` by default).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool

from stageless.api.context import AppContext
from stageless.errors import NotFoundError
from stageless.service import Closed, Listener
from stageless.service.documents import load_stored
from stageless.store import ChangeEvent, FlagSetRecord, ResourceKind

log = logging.getLogger("stageless.api.fanout")

QUEUE_LIMIT = 8  # frames a subscriber may have pending before it is folded to the newest


@dataclass(frozen=True, slots=True)
class Frame:
    """One encoded SSE event of a flag set: a version of it, or its deletion."""

    version: int
    data: bytes
    deleted: bool = False


def flag_set_frame(record: FlagSetRecord) -> Frame:
    """``id: <version>`` / ``event: flag-set`` with the flag set's document."""
    data = {
        "flag_set": record.name,
        "version": record.version,
        "etag": record.etag,
        "document": load_stored(record.document),
    }
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    text = f"id: {record.version}\nevent: flag-set\ndata: {payload}\n\n"
    return Frame(record.version, text.encode())


def deleted_frame(name: str, version: int) -> Frame:
    """``event: deleted`` for the flag set's deletion at ``version``."""
    payload = json.dumps({"flag_set": name, "version": version}, separators=(",", ":"))
    return Frame(version, f"event: deleted\ndata: {payload}\n\n".encode(), deleted=True)


@dataclass(frozen=True, slots=True)
class Topic:
    """A kind of document streamed through a ``Fanout``.

    ``read(ctx, name)`` returns the current record (it has a ``version``; ``NotFoundError`` if
    the document is gone) and runs in the thread pool; ``frame`` encodes a record's event and
    ``deleted`` the event of a deletion at a version.
    """

    kind: ResourceKind
    read: Callable[[AppContext, str], Any]
    frame: Callable[[Any], Frame]
    deleted: Callable[[str, int], Frame]


def _read_flag_set(ctx: AppContext, name: str) -> FlagSetRecord:
    return ctx.service.flag_sets.current(name)


FLAG_SETS = Topic(ResourceKind.FLAG_SET, _read_flag_set, flag_set_frame, deleted_frame)


class Subscriber:
    """One stream's bounded queue of frames; ``get`` them until it raises ``Closed``."""

    def __init__(self, channel: Channel, limit: int) -> None:
        self._channel = channel
        self._limit = limit
        self._frames: deque[Frame] = deque()
        self._wake = asyncio.Event()
        self._closed = False
        self.folded = 0  # how many times pending frames were dropped for the newest

    @property
    def latest(self) -> Frame | None:
        """The newest frame its channel handed out, if any (to reuse its encoding)."""
        return self._channel.latest

    def _push(self, frame: Frame) -> None:
        if len(self._frames) >= self._limit:
            self._frames.clear()
            self.folded += 1
        self._frames.append(frame)
        self._wake.set()

    def _end(self) -> None:
        self._closed = True
        self._wake.set()

    async def get(self, timeout: float | None = None) -> Frame | None:
        """The next frame, or ``None`` after ``timeout`` seconds; raises ``Closed`` once the
        channel ended and every pending frame was taken."""
        if not self._frames and not self._closed:
            self._wake.clear()
            try:
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            except TimeoutError:
                return None
        if self._frames:
            return self._frames.popleft()
        raise Closed

    def cut(self) -> None:
        """End the stream now (its token was revoked): pending frames are dropped and ``get``
        raises ``Closed``."""
        self._frames.clear()
        self._end()

    def close(self) -> None:
        """Stop receiving frames (the stream ended)."""
        self._channel.remove(self)


class Channel:
    """The subscribers of one document and the task that reads, encodes and hands out frames."""

    def __init__(self, fanout: Fanout, ctx: AppContext, name: str) -> None:
        self.name = name
        self._topic = fanout.topic
        self.latest: Frame | None = None
        self._fanout = fanout
        self._ctx = ctx
        self._subscribers: set[Subscriber] = set()
        # Listening starts now, before any subscriber reads its initial state, so no change
        # can fall between that read and the first frame.
        self._listener: Listener = ctx.hub.listen(name, kind=self._topic.kind)
        self._task = asyncio.get_running_loop().create_task(
            self._pump(), name=f"stageless-sync-{name}"
        )

    def add(self, limit: int) -> Subscriber:
        subscriber = Subscriber(self, limit)
        self._subscribers.add(subscriber)
        return subscriber

    def remove(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)
        if not self._subscribers:
            self._stop()

    def _stop(self) -> None:
        # Synchronously, so a stream connecting right after gets a fresh channel.
        self._fanout._forget(self)
        self._listener.close()
        self._task.cancel()

    async def _pump(self) -> None:
        try:
            while True:
                try:
                    event = await self._listener.get()
                except Closed:
                    return
                if event is None:
                    continue
                frame = await self._frame(event)
                if frame is not None:
                    self.latest = frame
                    for subscriber in self._subscribers:
                        subscriber._push(frame)
        except Exception:
            log.exception("live sync of %s %r failed; its streams end", self._topic.kind, self.name)
        finally:
            self._fanout._forget(self)
            self._listener.close()
            for subscriber in self._subscribers:
                subscriber._end()

    async def _frame(self, event: ChangeEvent) -> Frame | None:
        if event.deleted:
            return self._topic.deleted(self.name, event.version)
        latest = self.latest
        if latest is not None and not latest.deleted and event.version <= latest.version:
            return None  # already read: an earlier read saw this version or a newer one
        try:
            record = await run_in_threadpool(self._topic.read, self._ctx, self.name)
        except NotFoundError:
            return None  # deleted since; its own event follows
        latest = self.latest
        if latest is not None and not latest.deleted and record.version <= latest.version:
            return None
        return self._topic.frame(record)


class Fanout:
    """The channels of one app, one per document of ``topic`` with open streams. Use from one
    loop."""

    def __init__(self, queue_limit: int = QUEUE_LIMIT, topic: Topic = FLAG_SETS) -> None:
        self.queue_limit = queue_limit
        self.topic = topic
        self._channels: dict[str, Channel] = {}

    def subscribe(self, ctx: AppContext, name: str) -> Subscriber:
        """A new subscriber to ``name``'s frames; ``close()`` it when its stream ends."""
        channel = self._channels.get(name)
        if channel is None:
            channel = self._channels[name] = Channel(self, ctx, name)
        return channel.add(self.queue_limit)

    def _forget(self, channel: Channel) -> None:
        if self._channels.get(channel.name) is channel:
            del self._channels[channel.name]
