"""Flag-set use cases: validated writes with preconditions, history, diff, restore, compiled sets.

Every write is validated with ``stageless.flags`` first: a bad document raises
``ValidationError`` (every path-level issue) and nothing reaches the store. Preconditions follow
HTTP's: ``Precondition.create_only`` (``If-None-Match: *``) and ``if_match`` (an ETag, or
``"*"`` for "must exist"); when one fails the service raises ``PreconditionFailedError``.

``compiled(name)`` serves evaluation (OFREP, streams): it keeps the compiled ``FlagSet`` of each
flag set's latest version in memory and drops it when the store reports a change, from this
instance or any other on the same database.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from stageless.errors import ConflictError, Issue, NotFoundError
from stageless.flags import FlagSet, parse_flag_set
from stageless.flags.decode import DocumentFormat
from stageless.service.diff import DocumentDiff, diff_documents
from stageless.service.documents import check_document, load_stored
from stageless.service.errors import PreconditionFailedError
from stageless.store import ChangeEvent, FlagSetRecord, FlagSetVersion, Store, Subscription


@dataclass(frozen=True, slots=True)
class Precondition:
    """What the caller expects: nothing, a new flag set only, or a given ETag (``"*"``: any)."""

    create_only: bool = False
    if_match: str | None = None


@dataclass(frozen=True, slots=True)
class FlagSetView:
    """A flag set as the API shows it: the record, its parsed document and its warnings."""

    record: FlagSetRecord
    document: dict[str, Any]
    warnings: tuple[Issue, ...]


@dataclass(frozen=True, slots=True)
class Written:
    """The outcome of a write: the new state and whether it created the flag set."""

    view: FlagSetView
    created: bool


@dataclass(frozen=True, slots=True)
class Compiled:
    """A flag set ready to evaluate, with the version and ETag it was compiled from."""

    flags: FlagSet
    version: int
    etag: str


class FlagSetService:
    """Flag-set use cases over a ``Store``; thread-safe (the API calls it from worker threads)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._compiled: dict[str, Compiled] = {}
        self._latest: dict[str, int] = {}  # the newest version any change event announced
        self._subscription: Subscription | None = None
        self._subscribe_lock = threading.Lock()

    def list_all(self) -> list[FlagSetRecord]:
        return self._store.list_flag_sets()

    def current(self, name: str) -> FlagSetRecord:
        """The stored record of ``name`` (no parsing); ``NotFoundError`` if absent."""
        return self._store.get_flag_set(name)

    def get(self, name: str) -> FlagSetView:
        return _view(self._store.get_flag_set(name))

    def put(
        self,
        name: str,
        source: str | bytes,
        *,
        precondition: Precondition,
        actor: str,
        message: str = "",
        format: DocumentFormat | None = None,  # noqa: A002  # as stageless.flags names it
    ) -> Written:
        """Validate ``source`` and create or replace ``name`` under ``precondition``."""
        checked = check_document(source, format=format)
        store, text = self._store, checked.text
        if precondition.create_only:
            try:
                record = store.create_flag_set(name, text, actor=actor, message=message)
            except ConflictError as exc:
                raise PreconditionFailedError(f"flag set {name!r} already exists") from exc
            return Written(FlagSetView(record, checked.document, checked.warnings), True)
        if precondition.if_match is not None:
            record = self._update(name, text, precondition.if_match, actor, message)
            return Written(FlagSetView(record, checked.document, checked.warnings), False)
        for _ in range(3):  # create-or-replace; a concurrent create/delete makes us go round
            try:
                record = store.update_flag_set(
                    name, text, expected=None, actor=actor, message=message
                )
                return Written(FlagSetView(record, checked.document, checked.warnings), False)
            except NotFoundError:
                pass
            try:
                record = store.create_flag_set(name, text, actor=actor, message=message)
                return Written(FlagSetView(record, checked.document, checked.warnings), True)
            except ConflictError:
                continue
        raise ConflictError(f"flag set {name!r} is being created and deleted concurrently")

    def _update(
        self, name: str, text: str, if_match: str, actor: str, message: str
    ) -> FlagSetRecord:
        expected = None if if_match == "*" else if_match
        try:
            return self._store.update_flag_set(
                name, text, expected=expected, actor=actor, message=message
            )
        except NotFoundError as exc:
            raise PreconditionFailedError(f"flag set {name!r} does not exist") from exc
        except ConflictError as exc:
            raise PreconditionFailedError(str(exc)) from exc

    def delete(self, name: str, *, if_match: str | None, actor: str) -> None:
        expected = None if if_match in (None, "*") else if_match
        try:
            self._store.delete_flag_set(name, expected=expected, actor=actor)
        except ConflictError as exc:
            raise PreconditionFailedError(str(exc)) from exc

    def versions(self, name: str, *, limit: int = 100) -> list[FlagSetVersion]:
        return self._store.list_versions(name, limit=limit)

    def version(self, name: str, version: int) -> FlagSetVersion:
        return self._store.get_version(name, version)

    def diff(self, name: str, old: int, new: int) -> DocumentDiff:
        before = load_stored(self._store.get_version(name, old).document)
        after = load_stored(self._store.get_version(name, new).document)
        return diff_documents(before, after)

    def restore(self, name: str, version: int, *, if_match: str | None, actor: str) -> FlagSetView:
        expected = None if if_match in (None, "*") else if_match
        try:
            record = self._store.restore_version(name, version, expected=expected, actor=actor)
        except ConflictError as exc:
            raise PreconditionFailedError(str(exc)) from exc
        return _view(record)

    def compiled(self, name: str) -> Compiled:
        """The compiled latest version of ``name`` (cached until a change); ``NotFoundError``."""
        self._ensure_subscribed()
        with self._lock:
            cached = self._compiled.get(name)
        if cached is not None:
            return cached
        record = self._store.get_flag_set(name)
        compiled = Compiled(parse_flag_set(record.document), record.version, record.etag)
        with self._lock:
            # A change announced while we read must not be overwritten by the older version.
            if record.version >= self._latest.get(name, 0):
                self._compiled[name] = compiled
        return compiled

    def _ensure_subscribed(self) -> None:
        if self._subscription is None:
            # Its own lock: the store may call _forget (which takes self._lock) while it holds
            # its hub's lock, so subscribing under self._lock could deadlock.
            with self._subscribe_lock:
                if self._subscription is None:
                    self._subscription = self._store.subscribe(self._forget)

    def _forget(self, event: ChangeEvent) -> None:
        with self._lock:
            self._latest[event.flag_set] = max(self._latest.get(event.flag_set, 0), event.version)
            cached = self._compiled.get(event.flag_set)
            if cached is not None and (event.deleted or cached.version < event.version):
                del self._compiled[event.flag_set]

    def close(self) -> None:
        if self._subscription is not None:
            self._subscription.close()


def _view(record: FlagSetRecord) -> FlagSetView:
    flags = parse_flag_set(record.document)
    return FlagSetView(record, load_stored(record.document), flags.warnings)
