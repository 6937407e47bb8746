"""The PostgreSQL backend (psycopg 3): several Stageless instances sharing one database.

Transactions run at READ COMMITTED; writers lock the flag-set row (``SELECT … FOR UPDATE``), so
of two writers holding the same expected version exactly one wins and the other sees the new
version and gets a conflict. Migrations hold a transaction-scoped advisory lock, so instances
starting together apply each migration once. The schema is the connection's ``search_path``
(select one with ``?options=-csearch_path%3Dmyschema`` in the URL).

Change notifications: each write calls ``pg_notify`` inside its transaction, so the message is
sent exactly when the change commits (and never for a rolled-back one). Every instance LISTENs
on a dedicated connection in a background thread; delivery typically takes milliseconds. If the
connection drops, the thread reconnects with capped, jittered backoff and, once listening
again, compares every document's version with what it last saw, turning missed changes into
events. The channel is named after the schema, so deployments in other schemas of the same
database do not hear each other.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import URL, Connection, create_engine, text

from stageless.errors import StoreError
from stageless.store.backend import Snapshot, database_errors
from stageless.store.base import ChangeEvent, ResourceKind
from stageless.store.changes import ChangeHub, Watcher

log = logging.getLogger(__name__)

#: How long ``Store.subscribe`` waits for the first LISTEN before carrying on regardless
#: (changes made meanwhile are still caught by the reconciliation after connecting).
LISTEN_READY_TIMEOUT = 5.0
MAX_RECONNECT_DELAY = 5.0

# Reconnect jitter from the OS, not the random module's global (application-owned) state.
_JITTER = random.SystemRandom()


class PostgresBackend:
    name = "postgresql"

    def __init__(self, url: URL) -> None:
        self.engine = create_engine(url, pool_pre_ping=True)
        with self.transaction(write=False) as conn:
            schema = conn.execute(text("SELECT current_schema()")).scalar_one()
        if schema is None:
            self.engine.dispose()
            where = url.render_as_string(hide_password=True)
            raise StoreError(
                f"database {where}: no schema on the search_path exists; create the schema "
                "first (CREATE SCHEMA …) or name an existing one"
            )
        self.schema = str(schema)
        channel = f"stageless_changes_{self.schema}"
        if len(channel.encode()) > 63:  # PostgreSQL identifiers (channel names) stop at 63 bytes
            channel = "stageless_changes_" + hashlib.sha256(self.schema.encode()).hexdigest()[:32]
        self.channel = channel

    @contextmanager
    def transaction(self, *, write: bool) -> Iterator[Connection]:
        with database_errors(self.engine), self.engine.begin() as conn:
            yield conn

    def lock_migrations(self, conn: Connection) -> None:
        key = f"stageless.store.migrations:{self.schema}"
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": key})

    def notify(self, conn: Connection, event: ChangeEvent) -> None:
        payload = json.dumps(notification_payload(event))
        conn.execute(
            text("SELECT pg_notify(:channel, :payload)"),
            {"channel": self.channel, "payload": payload},
        )

    def watcher(self, hub: ChangeHub, snapshot: Snapshot) -> Watcher | None:
        return _Listener(self, hub, snapshot)

    def connect_listener(self) -> psycopg.Connection[Any]:
        """A dedicated autocommit connection with the engine's parameters, outside its pool."""
        args, kwargs = self.engine.dialect.create_connect_args(self.engine.url)
        kwargs.pop("context", None)
        kwargs.setdefault("application_name", "stageless-listen")
        return psycopg.connect(*args, **kwargs, autocommit=True)

    def close(self) -> None:
        self.engine.dispose()


def notification_payload(event: ChangeEvent) -> dict[str, object]:
    """The NOTIFY payload of ``event``.

    Flag-set changes keep the original shape ``{"flag_set", "version", "deleted"}``, so
    instances of an older Stageless on the same database still understand them during a
    rolling upgrade; other kinds send ``{"kind", "name", "version", "deleted"}``, which older
    instances ignore (no ``flag_set`` key) instead of mistaking them for flag-set changes.
    """
    if event.kind is ResourceKind.FLAG_SET:
        return {"flag_set": event.name, "version": event.version, "deleted": event.deleted}
    return {
        "kind": str(event.kind),
        "name": event.name,
        "version": event.version,
        "deleted": event.deleted,
    }


def parse_payload(payload: str) -> ChangeEvent:
    data = json.loads(payload)
    kind = ResourceKind(data.get("kind", ResourceKind.FLAG_SET))
    name = data["flag_set"] if kind is ResourceKind.FLAG_SET else data["name"]
    return ChangeEvent(str(name), int(data["version"]), bool(data["deleted"]), kind)


class _Listener:
    def __init__(self, backend: PostgresBackend, hub: ChangeHub, snapshot: Snapshot) -> None:
        self._backend = backend
        self._hub = hub
        self._snapshot = snapshot
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="stageless-store-listen", daemon=True
        )

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(LISTEN_READY_TIMEOUT)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        delay = 0.1
        while not self._stop.is_set():
            try:
                self._listen()
                delay = 0.1
            except (psycopg.Error, StoreError):
                log.warning(
                    "listening for changes on PostgreSQL failed; retrying in %.1f s",
                    delay,
                    exc_info=True,
                )
                # Jitter spreads the reconnects of many instances after a server restart.
                if self._stop.wait(delay * _JITTER.uniform(0.5, 1.5)):
                    return
                delay = min(delay * 2, MAX_RECONNECT_DELAY)

    def _listen(self) -> None:
        with self._backend.connect_listener() as conn:
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._backend.channel)))
            since = self._hub.mark()
            self._hub.reconcile_all(self._snapshot(), since=since, emit=True)
            self._ready.set()
            while not self._stop.is_set():
                for note in conn.notifies(timeout=0.25):
                    self._handle(note.payload)

    def _handle(self, payload: str) -> None:
        try:
            event = parse_payload(payload)
        except (ValueError, KeyError, TypeError, AttributeError):
            log.warning("ignoring a malformed change notification: %r", payload)
            return
        self._hub.publish(event)
