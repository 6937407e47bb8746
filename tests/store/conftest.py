"""Store fixtures: every backend, against real databases.

PostgreSQL is the server this machine kind runs on 127.0.0.1:5432 (database ``test``, trust
auth). Each test gets a fresh, uniquely named schema (dropped afterwards), so parallel runs and
other suites sharing the database never clash. A missing server fails the tests: it is never
a reason to skip them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine, create_engine

from stageless.clock import FakeClock
from stageless.store import SqlStore, open_store, sqlite_url

PG_SERVER = "host=127.0.0.1 port=5432 dbname=test user=postgres"
PG_URL = "postgresql://postgres@127.0.0.1:5432/test"

ALL_BACKENDS = ["sqlite-file", "sqlite-memory", "postgresql"]
#: Backends whose data outlives the store object (and can be reached by a second store).
SHARED_BACKENDS = ["sqlite-file", "postgresql"]


@dataclass(frozen=True)
class Database:
    """Where one test's database lives; ``open()`` makes another store on it."""

    kind: str
    url: str
    path: Path | None = None  # the SQLite file
    schema: str | None = None  # the PostgreSQL schema

    def open(self, clock: FakeClock | None = None, poll_interval: float = 0.05) -> SqlStore:
        return open_store(self.url, clock=clock or FakeClock(), poll_interval=poll_interval)

    def raw_engine(self) -> Engine:
        """A plain SQLAlchemy engine on the same database, bypassing the store."""
        return create_engine(self.url.replace("postgresql://", "postgresql+psycopg://", 1))


def _admin() -> psycopg.Connection[tuple[object, ...]]:
    try:
        return psycopg.connect(PG_SERVER, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at 127.0.0.1:5432 (database 'test', user 'postgres'): "
            f"{exc}. The store contract tests need it (this machine kind and CI run one): "
            "start the server; these tests are never skipped.",
            pytrace=False,
        )


@pytest.fixture
def pg_schema() -> Iterator[str]:
    schema = f"stageless_test_{uuid.uuid4().hex[:12]}"
    with _admin() as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield schema
    finally:
        with _admin() as admin:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


def _database(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Database:
    if kind == "sqlite-file":
        return Database(
            kind, sqlite_url(tmp_path / "data"), path=tmp_path / "data" / "stageless.db"
        )
    if kind == "sqlite-memory":
        return Database(kind, "sqlite://")
    schema = request.getfixturevalue("pg_schema")
    return Database(kind, f"{PG_URL}?options=-csearch_path%3D{schema}", schema=schema)


@pytest.fixture(params=ALL_BACKENDS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    return _database(request.param, tmp_path, request)


@pytest.fixture(params=SHARED_BACKENDS)
def shared_database(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    return _database(request.param, tmp_path, request)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(database: Database, clock: FakeClock) -> Iterator[SqlStore]:
    with database.open(clock) as opened:
        yield opened


@pytest.fixture
def shared_store(shared_database: Database, clock: FakeClock) -> Iterator[SqlStore]:
    with shared_database.open(clock) as opened:
        yield opened
