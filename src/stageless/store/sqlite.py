"""The SQLite backend: a file in the data directory, zero set-up; or ``:memory:`` for tests.

Every connection runs with ``journal_mode=WAL`` (readers never block the writer),
``synchronous=FULL`` (a commit is on disk before it returns, so every acknowledged change
survives a crash or power loss), ``foreign_keys=ON`` and a busy timeout. Writes open with
``BEGIN IMMEDIATE`` under a process-wide lock: one writer at a time within the process, and
other processes on the same file wait their turn for up to the busy timeout instead of failing
half-way through a transaction.

Change notifications: writes in this process reach subscribers at once; writes by another
process on the same file are noticed by a poll of ``PRAGMA data_version`` every
``poll_interval`` seconds (0.2 s by default), so their latency is at most that plus a query.
A ``:memory:`` database lives in one process, over one shared connection serialised by a lock.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

from sqlalchemy import URL, Connection, create_engine, event
from sqlalchemy.pool import StaticPool

from stageless.errors import StoreError
from stageless.store.backend import Snapshot, database_errors
from stageless.store.base import ChangeEvent
from stageless.store.changes import ChangeHub, Watcher

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 10_000
DEFAULT_POLL_INTERVAL = 0.2
_WRITE_OPTION = "stageless_write"


def is_memory(url: URL) -> bool:
    return url.database in (None, "", ":memory:")


class SqliteBackend:
    name = "sqlite"

    def __init__(self, url: URL, *, poll_interval: float = DEFAULT_POLL_INTERVAL) -> None:
        self.memory = is_memory(url)
        self.poll_interval = poll_interval
        if self.memory:
            self.engine = create_engine(
                url, poolclass=StaticPool, connect_args={"check_same_thread": False}
            )
        else:
            Path(str(url.database)).parent.mkdir(parents=True, exist_ok=True)
            self.engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(self.engine, "connect", self._configure)
        event.listen(self.engine, "begin", _begin)
        self._writer = threading.RLock()
        # One connection for a memory database: every transaction, read or write, takes turns.
        self._all: threading.RLock | None = threading.RLock() if self.memory else None

    def _configure(self, dbapi_connection: Any, _record: object) -> None:
        # Let SQLAlchemy's "begin" hook issue BEGIN (sqlite3's own transaction handling
        # would defer it to the first INSERT and never make it IMMEDIATE).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        if not self.memory:
            _enable_wal(cursor)
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.close()

    @contextmanager
    def transaction(self, *, write: bool) -> Iterator[Connection]:
        lock: AbstractContextManager[object] = self._all or (
            self._writer if write else nullcontext()
        )
        with (
            lock,
            database_errors(self.engine),
            self.engine.connect().execution_options(**{_WRITE_OPTION: write}) as conn,
            conn.begin(),
        ):
            yield conn

    def lock_migrations(self, conn: Connection) -> None:
        """Nothing to add: the write transaction's BEGIN IMMEDIATE already excludes others."""

    def notify(self, conn: Connection, event: ChangeEvent) -> None:
        """Nothing to send: other processes poll ``PRAGMA data_version``."""

    def watcher(self, hub: ChangeHub, snapshot: Snapshot) -> Watcher | None:
        if self.memory:
            return None  # one process, and its own writes are published directly
        return _DataVersionPoller(self, hub, snapshot)

    def close(self) -> None:
        self.engine.dispose()


def _enable_wal(cursor: Any) -> None:
    """Switch the file to WAL, waiting for other openers instead of failing.

    Switching a new file to WAL needs an exclusive lock, and SQLite answers "database is locked"
    at once, without its busy handler, while other connections are opening the same file: so
    retry within the busy timeout (WAL is then recorded in the file and later opens find it set).
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.005)


def _begin(conn: Connection) -> None:
    write = conn.get_execution_options().get(_WRITE_OPTION, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


class _DataVersionPoller:
    """Notices commits by other connections (this process's or others') on the same file."""

    def __init__(self, backend: SqliteBackend, hub: ChangeHub, snapshot: Snapshot) -> None:
        self._backend = backend
        self._hub = hub
        self._snapshot = snapshot
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stageless-store-poll", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        raw = self._backend.engine.raw_connection()
        try:
            last = None
            while True:
                try:
                    current = _data_version(raw.driver_connection)
                    if current != last:
                        since = self._hub.mark()
                        self._hub.reconcile_all(self._snapshot(), since=since, emit=True)
                        last = current
                except (sqlite3.Error, StoreError):
                    log.warning("polling the SQLite database for changes failed", exc_info=True)
                if self._stop.wait(self._backend.poll_interval):
                    return
        finally:
            raw.close()


def _data_version(conn: Any) -> int:
    # Changes whenever another connection commits to the file; a cheap read of a counter.
    cursor = conn.execute("PRAGMA data_version")
    (value,) = cursor.fetchone()
    return int(value)
