"""Pushed flag documents decoded and compiled once per process, however many sources get them.

The control plane sends every stream of a flag set the same bytes for each version. A process
with many providers on one server (a pre-fork worker with several clients, a test harness, the
propagation benchmark's 250 providers per process) used to decode the JSON, validate and compile
the same document once per provider: about 0.05 ms for one flag and 2 ms for 21 targeted flags
each time. ``DocumentCache.decode`` does it once: the first source to receive an event decodes
it and the others that receive the same event meanwhile wait for that result (single flight),
and later ones find it in a small cache of recent events. What it shares is immutable: a
``FlagSet`` is, and the decoded payload is only ever read.

A key is the event's type and data (its whole text, which names the version) plus what
compiling depends on: the source's name (used in messages), the ``fractional`` version and the
clock. Equal keys compile to equal flag sets, so sharing changes no result.

Fork: a forked child keeps the finished entries and drops any still being built (the thread
building it does not exist in the child), with a fresh lock (``after_fork``).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from typing import Any

from stageless.errors import ValidationError
from stageless.flags import FlagSet
from stageless.sdk.changes import changed_flags

#: Recent events kept per process (each holds one document and its compiled flag set).
DEFAULT_SIZE = 8

Compile = Callable[[Any], FlagSet | ValidationError | None]
"""Compiles a decoded payload: its flag set, why it is invalid, or None if it has no document."""


class Decoded:
    """One event decoded once: its JSON payload (None if not JSON) and, for a flag-set event
    with a document, the compiled flags or the validation error."""

    __slots__ = ("_changed", "error", "flags", "payload")

    def __init__(self, payload: Any, compiled: FlagSet | ValidationError | None) -> None:
        self.payload = payload
        self.flags = compiled if isinstance(compiled, FlagSet) else None
        self.error = compiled if isinstance(compiled, ValidationError) else None
        self._changed: dict[int, tuple[Mapping[str, Any], list[str]]] = {}

    @property
    def document(self) -> Mapping[str, Any] | None:
        payload = self.payload
        document = payload.get("document") if isinstance(payload, dict) else None
        return document if isinstance(document, dict) else None

    def changed_since(self, previous: Mapping[str, Any]) -> list[str]:
        """``changed_flags(previous, document)``, computed once per previous document."""
        document = self.document
        if document is None:
            return []
        memo = self._changed.get(id(previous))
        if memo is not None and memo[0] is previous:
            return list(memo[1])
        changed = changed_flags(previous, document)
        if len(self._changed) >= DEFAULT_SIZE:
            self._changed.clear()
        self._changed[id(previous)] = (previous, changed)  # holds previous: its id stays unique
        return list(changed)


class _Slot:
    __slots__ = ("done", "error", "finished", "value")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.finished = False
        self.value: Decoded | None = None
        self.error: BaseException | None = None


class DocumentCache:
    """Recent events' ``Decoded`` results, by event and compile settings. Thread-safe."""

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._slots: OrderedDict[tuple[Hashable, ...], _Slot] = OrderedDict()

    def decode(
        self, kind: str, data: str, settings: tuple[Hashable, ...], compile_: Compile
    ) -> Decoded:
        """The decoded event; ``compile_`` runs at most once per key while it is cached.

        ``settings`` must name everything ``compile_``'s result depends on besides the data.
        An unexpected exception from ``compile_`` reaches every caller waiting for it and is
        not cached.
        """
        key = (kind, data, *settings)
        with self._lock:
            slot = self._slots.get(key)
            owner = slot is None
            if slot is None:
                slot = self._slots[key] = _Slot()
                while len(self._slots) > self._size:
                    self._slots.popitem(last=False)
            else:
                self._slots.move_to_end(key)
        if owner:
            return self._build(key, slot, data, compile_)
        if not slot.finished:
            slot.done.wait()
        if slot.error is not None:
            raise slot.error
        assert slot.value is not None  # noqa: S101  # finished without error means a value
        return slot.value

    def _build(
        self, key: tuple[Hashable, ...], slot: _Slot, data: str, compile_: Compile
    ) -> Decoded:
        try:
            try:
                payload = json.loads(data)
            except ValueError:
                payload = None
            slot.value = Decoded(payload, compile_(payload))
            return slot.value
        except BaseException as exc:
            slot.error = exc
            with self._lock:
                if self._slots.get(key) is slot:
                    del self._slots[key]
            raise
        finally:
            slot.finished = True
            slot.done.set()

    def after_fork(self) -> None:
        """In a forked child: a fresh lock, and only the finished entries."""
        self._lock = threading.Lock()
        finished = [(key, slot) for key, slot in self._slots.items() if slot.finished]
        self._slots = OrderedDict(finished)

    def __len__(self) -> int:
        return len(self._slots)


#: The process's cache, shared by every ``StreamSource``.
DOCUMENTS = DocumentCache()

__all__ = ["DEFAULT_SIZE", "DOCUMENTS", "Decoded", "DocumentCache"]
