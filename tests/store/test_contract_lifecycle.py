"""The store contract, continued: migrations, durability (including a killed writer) and change
notifications, against every backend or the two whose data is shared between store objects."""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from stageless.errors import StoreError
from stageless.store import ChangeEvent, SqlStore, TokenScope, open_store, sqlite_url
from stageless.store.migrations import apply_migrations, discover
from stageless.store.schema import metadata
from tests.store.conftest import Database
from tests.store.support import DOC_1, DOC_2, DOC_3, pg_url, race

# Schema and migrations.

ALL_VERSIONS = [migration.version for migration in discover()]


def test_the_migrations_create_the_tables_the_queries_use(
    shared_store: SqlStore, shared_database: Database
) -> None:
    engine = shared_database.raw_engine()
    try:
        with engine.connect() as conn:
            inspector = inspect(conn)
            for table in metadata.sorted_tables:
                columns = {column["name"] for column in inspector.get_columns(table.name)}
                assert columns == set(table.columns.keys()), table.name
    finally:
        engine.dispose()


def test_migrations_are_idempotent(shared_database: Database) -> None:
    with shared_database.open() as first:
        first.create_flag_set("web", DOC_1, actor="alice")
    with shared_database.open() as second:
        assert apply_migrations(second._backend) == []
        assert second.get_flag_set("web").document == DOC_1
    assert _schema_versions(shared_database) == ALL_VERSIONS


def test_stores_starting_together_migrate_once(shared_database: Database) -> None:
    results = race(5, lambda _i: shared_database.open())
    stores = [r for r in results if isinstance(r, SqlStore)]
    try:
        assert len(stores) == 5, results
        assert _schema_versions(shared_database) == ALL_VERSIONS
        stores[0].create_flag_set("web", DOC_1, actor="alice")
        assert all(s.get_flag_set("web").document == DOC_1 for s in stores)
    finally:
        for opened in stores:
            opened.close()


def test_a_database_from_a_newer_stageless_is_refused(shared_database: Database) -> None:
    shared_database.open().close()
    engine = shared_database.raw_engine()
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO schema_version VALUES (99, 'from the future', 0)"))
    finally:
        engine.dispose()
    with pytest.raises(StoreError, match="schema is at version 99"):
        shared_database.open()


_OPENER = """
import sys
from stageless.store import open_store
print("ready", flush=True)
sys.stdin.readline()
open_store(sys.argv[1]).close()
"""


def test_processes_starting_together_migrate_once(shared_database: Database) -> None:
    # Real processes: each imports Stageless, then all open the store on the same signal.
    processes = [
        subprocess.Popen(  # noqa: S603 - this interpreter running _OPENER
            [sys.executable, "-c", _OPENER, shared_database.url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    for process in processes:
        assert process.stdout is not None
        assert process.stdout.readline() == "ready\n"
    for process in processes:
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()
    failures = [
        stderr
        for process in processes
        for _, stderr in [process.communicate(timeout=30)]
        if process.returncode != 0
    ]
    assert failures == []
    assert _schema_versions(shared_database) == ALL_VERSIONS


def _schema_versions(database: Database) -> list[int]:
    engine = database.raw_engine()
    try:
        with engine.connect() as conn:
            return list(conn.execute(text("SELECT version FROM schema_version")).scalars())
    finally:
        engine.dispose()


# Durability.


def test_everything_written_is_there_for_a_new_store(shared_database: Database) -> None:
    with shared_database.open() as writer:
        writer.create_flag_set("web", DOC_1, actor="alice")
        record = writer.update_flag_set("web", DOC_3, expected=1, actor="bob", message="m")
        token = writer.create_token("sdk", TokenScope.SDK, flag_set="web", actor="admin")
        history = writer.list_versions("web")
        audit = writer.list_audit()
    with shared_database.open() as reader:
        assert reader.get_flag_set("web") == record
        assert reader.list_versions("web") == history
        assert reader.list_audit() == audit
        assert reader.authenticate(token.plaintext) is not None


_WRITER = """
import sys
from stageless.store import open_store
store = open_store(sys.argv[1])
version = store.create_flag_set("web", '{"n": 1}', actor="writer").version
print(version, flush=True)
while True:
    version = store.update_flag_set(
        "web", '{"n": %d}' % (version + 1), expected=version, actor="writer"
    ).version
    print(version, flush=True)
"""


def test_every_acknowledged_write_survives_a_killed_writer(shared_database: Database) -> None:
    with subprocess.Popen(  # noqa: S603 - this interpreter running _WRITER
        [sys.executable, "-c", _WRITER, shared_database.url],
        stdout=subprocess.PIPE,
        text=True,
    ) as writer:
        assert writer.stdout is not None
        acknowledged = [int(writer.stdout.readline()) for _ in range(25)]
        writer.send_signal(signal.SIGKILL)  # mid-burst: no chance to end a transaction cleanly
        writer.wait(timeout=10)
        acknowledged += [int(line) for line in writer.stdout.read().split()]
    with shared_database.open() as reader:
        current = reader.get_flag_set("web")
        # Everything acknowledged is there; at most one write committed unacknowledged.
        assert acknowledged[-1] <= current.version <= acknowledged[-1] + 1
        assert current.document == f'{{"n": {current.version}}}'
        history = reader.list_versions("web", limit=1_000)
        assert [v.version for v in history] == list(range(current.version, 0, -1))
        audit = reader.list_audit(limit=1_000)
        assert [e.after for e in audit] == [v.document for v in reversed(history)]


def test_sqlite_runs_in_wal_mode_with_full_synchronous_writes(tmp_path: Path) -> None:
    with (
        open_store(sqlite_url(tmp_path)) as opened,
        opened._backend.transaction(write=False) as conn,
    ):
        pragmas = {
            name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
        }
    assert pragmas == {
        "journal_mode": "wal",
        "synchronous": 2,  # FULL
        "foreign_keys": 1,
        "busy_timeout": 10_000,
    }


# Change notifications.


def _events(sink: queue.Queue[ChangeEvent], count: int, timeout: float) -> list[ChangeEvent]:
    deadline = time.monotonic() + timeout
    events: list[ChangeEvent] = []
    while len(events) < count:
        events.append(sink.get(timeout=max(0.0, deadline - time.monotonic())))
    return events


def test_subscribers_hear_every_change_in_order(store: SqlStore) -> None:
    sink: queue.Queue[ChangeEvent] = queue.Queue()
    with store.subscribe(sink.put):
        store.create_flag_set("web", DOC_1, actor="alice")
        store.update_flag_set("web", DOC_2, expected=1, actor="alice")
        store.restore_version("web", 1, expected=2, actor="alice")
        store.delete_flag_set("web", expected=3, actor="alice")
        assert _events(sink, 4, timeout=2) == [
            ChangeEvent("web", 1),
            ChangeEvent("web", 2),
            ChangeEvent("web", 3),
            ChangeEvent("web", 3, deleted=True),
        ]
        time.sleep(0.2)  # the backend's own echo of these writes must not repeat them
        assert sink.empty()


def test_a_closed_subscription_hears_nothing(store: SqlStore) -> None:
    heard: list[ChangeEvent] = []
    subscription = store.subscribe(heard.append)
    store.create_flag_set("web", DOC_1, actor="alice")
    subscription.close()
    store.update_flag_set("web", DOC_2, expected=1, actor="alice")
    time.sleep(0.2)
    assert heard == [ChangeEvent("web", 1)]


def test_a_change_through_one_instance_reaches_another_within_a_second(
    shared_database: Database,
) -> None:
    with shared_database.open() as writer, shared_database.open() as reader:
        writer.create_flag_set("web", DOC_1, actor="alice")  # before subscribing: not an event
        sink: queue.Queue[ChangeEvent] = queue.Queue()
        reader.subscribe(sink.put)
        started = time.monotonic()
        writer.update_flag_set("web", DOC_2, expected=1, actor="alice")
        assert _events(sink, 1, timeout=1.0) == [ChangeEvent("web", 2)]
        assert time.monotonic() - started < 1.0
        writer.delete_flag_set("web", expected=2, actor="alice")
        writer.create_flag_set("api", DOC_1, actor="alice")
        # Ordered per flag set; a poll may report changes to different sets in either order.
        assert set(_events(sink, 2, timeout=1.0)) == {
            ChangeEvent("web", 2, deleted=True),
            ChangeEvent("api", 1),
        }


def test_a_postgresql_listener_reconnects_and_catches_up(pg_schema: str) -> None:
    database = Database("postgresql", pg_url(pg_schema), schema=pg_schema)
    with database.open() as writer, database.open() as reader:
        sink: queue.Queue[ChangeEvent] = queue.Queue()
        reader.subscribe(sink.put)
        engine = database.raw_engine()
        try:
            with engine.begin() as conn:
                killed = conn.execute(
                    text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE application_name = 'stageless-listen' AND query LIKE :listen"
                    ),
                    {"listen": f'LISTEN "stageless_changes_{pg_schema}"%'},
                ).scalar_one()
        finally:
            engine.dispose()
        assert killed == 1
        # Written while the listener may be down: the reconciliation after reconnecting sends it.
        writer.create_flag_set("web", DOC_1, actor="alice")
        assert _events(sink, 1, timeout=5) == [ChangeEvent("web", 1)]
        writer.update_flag_set("web", DOC_2, expected=1, actor="alice")
        assert _events(sink, 1, timeout=2) == [ChangeEvent("web", 2)]
