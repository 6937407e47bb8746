"""The control plane's durable state: flag sets and proxy configurations, their versions, the
audit log, API tokens, rollouts (state, history, requests, evidence, leases) and proxy reports.

Two backends behind one Protocol (``Store``) and one contract test suite:

* **SQLite** (the default): a file in the data directory, nothing to set up. One instance;
  several processes on the same file also work (one writer at a time).
* **PostgreSQL** (``postgresql://…``, driven by psycopg 3): several instances on one database
  act as one service, told of each other's changes through LISTEN/NOTIFY.

The API is synchronous (SQLAlchemy Core over blocking drivers). The ASGI layer calls it from a
thread pool (e.g. ``anyio.to_thread.run_sync``); a ``Store`` is safe to share between threads.
Change listeners are called on the store's own threads and must hand events over quickly.

Typical use::

    store = open_store(sqlite_url(data_dir))       # applies migrations
    record = store.create_flag_set("web", text, actor="ci")
    store.update_flag_set("web", new_text, expected=record.etag, actor="ci")
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from stageless.clock import SYSTEM_CLOCK, Clock
from stageless.errors import Issue, ValidationError
from stageless.store.backend import Backend
from stageless.store.base import (
    ApiToken,
    AuditAction,
    AuditEntry,
    ChangeEvent,
    FlagSetRecord,
    FlagSetVersion,
    LeaseLostError,
    Listener,
    NewRollout,
    NewToken,
    ProxyConfigRecord,
    ProxyConfigVersion,
    ProxyReport,
    ResourceKind,
    RolloutAction,
    RolloutRecord,
    RolloutRequest,
    RolloutTransition,
    Store,
    Subscription,
    TokenScope,
    TransitionWrite,
)
from stageless.store.migrations import apply_migrations
from stageless.store.rollouts import rollout_target
from stageless.store.sqlite import DEFAULT_POLL_INTERVAL
from stageless.store.sqlstore import SqlStore, flag_set_target, proxy_config_target, token_target

__all__ = [
    "DEFAULT_DATABASE_FILENAME",
    "ApiToken",
    "AuditAction",
    "AuditEntry",
    "ChangeEvent",
    "FlagSetRecord",
    "FlagSetVersion",
    "LeaseLostError",
    "Listener",
    "NewRollout",
    "NewToken",
    "ProxyConfigRecord",
    "ProxyConfigVersion",
    "ProxyReport",
    "ResourceKind",
    "RolloutAction",
    "RolloutRecord",
    "RolloutRequest",
    "RolloutTransition",
    "SqlStore",
    "Store",
    "Subscription",
    "TokenScope",
    "TransitionWrite",
    "flag_set_target",
    "open_store",
    "proxy_config_target",
    "rollout_target",
    "sqlite_url",
    "token_target",
]

#: The SQLite file ``sqlite_url`` names inside the data directory.
DEFAULT_DATABASE_FILENAME = "stageless.db"

_SQLITE_DRIVERS = {"sqlite", "sqlite+pysqlite"}
_POSTGRES_DRIVERS = {"postgresql", "postgres", "postgresql+psycopg"}


def sqlite_url(data_dir: str | Path) -> str:
    """The URL of the default SQLite database inside ``data_dir`` (created on first open)."""
    path = Path(data_dir).absolute() / DEFAULT_DATABASE_FILENAME
    return URL.create("sqlite", database=str(path)).render_as_string()


def open_store(
    url: str, *, clock: Clock = SYSTEM_CLOCK, poll_interval: float = DEFAULT_POLL_INTERVAL
) -> SqlStore:
    """Connect to the database at ``url``, apply pending migrations and return the store.

    ``url`` is ``sqlite:///path/to/file.db``, ``sqlite://`` (in memory, one process) or
    ``postgresql://user@host:port/dbname`` (any libpq parameter may follow as a query, e.g.
    ``?options=-csearch_path%3Dstageless``). ``poll_interval`` is how often (seconds) a SQLite
    store looks for changes made by other processes. Raises ``ValidationError`` for a URL
    Stageless cannot use and ``StoreError`` if the database cannot be opened or migrated.
    """
    backend = _backend_for(url, poll_interval=poll_interval)
    try:
        apply_migrations(backend, clock=clock)
    except BaseException:
        backend.close()
        raise
    return SqlStore(backend, clock=clock)


def _backend_for(url: str, *, poll_interval: float) -> Backend:
    # Imported here so that a SQLite-only deployment never imports psycopg.
    from stageless.store.postgres import PostgresBackend
    from stageless.store.sqlite import SqliteBackend

    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ValidationError([Issue("database", f"{url!r} is not a database URL")]) from exc
    if parsed.drivername in _SQLITE_DRIVERS:
        return SqliteBackend(parsed, poll_interval=poll_interval)
    if parsed.drivername in _POSTGRES_DRIVERS:
        return PostgresBackend(parsed.set(drivername="postgresql+psycopg"))
    where = parsed.render_as_string(hide_password=True)
    raise ValidationError(
        [
            Issue(
                "database",
                f"{where!r} uses {parsed.drivername!r}; expected sqlite:///… or postgresql://…",
            )
        ]
    )
