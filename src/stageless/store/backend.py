"""What a database backend supplies to the shared SQL store: transactions, locks, notifications.

``SqlStore`` (stageless.store.sqlstore) holds every query; a backend only knows how its
database opens transactions, serialises migrations, announces changes and watches for them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from stageless.errors import StoreError
from stageless.store.base import ChangeEvent, ResourceKind
from stageless.store.changes import ChangeHub, Watcher

#: Reads every document's current version (kind → name → version), for watchers to reconcile
#: with (``ChangeHub.reconcile_all``).
Snapshot = Callable[[], Mapping[ResourceKind, Mapping[str, int]]]


class Backend(Protocol):
    """One database kind. ``name`` is ``"sqlite"`` or ``"postgresql"``."""

    name: str
    engine: Engine

    def transaction(self, *, write: bool) -> AbstractContextManager[Connection]:
        """A connection inside a transaction, committed on success and rolled back on error.

        Database failures surface as ``StoreError``; other exceptions pass through unchanged.
        """
        ...

    def lock_migrations(self, conn: Connection) -> None:
        """Within a write transaction: hold off other processes migrating the same database."""
        ...

    def notify(self, conn: Connection, event: ChangeEvent) -> None:
        """Within the writing transaction: announce ``event`` to other instances on commit."""
        ...

    def watcher(self, hub: ChangeHub, snapshot: Snapshot) -> Watcher | None:
        """A background source of other instances' changes, or ``None`` if none can exist."""
        ...

    def close(self) -> None: ...


@contextmanager
def database_errors(engine: Engine) -> Iterator[None]:
    """Turn SQLAlchemy and driver errors into ``StoreError`` naming the database (no password)."""
    try:
        yield
    except SQLAlchemyError as exc:
        where = engine.url.render_as_string(hide_password=True)
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise StoreError(f"database {where}: {type(exc).__name__}: {detail}") from exc
