"""Versioned schema migrations, applied when a store opens.

Each migration is a module ``vNNNN_<what>.py`` in this package with a ``DESCRIPTION`` and, per
backend name, the tuple of SQL ``STATEMENTS`` that take the schema from version NNNN-1 to NNNN.
The ``schema_version`` table lists the versions applied. ``apply_migrations`` runs in one write
transaction under the backend's migration lock (an advisory lock on PostgreSQL, BEGIN IMMEDIATE
on SQLite), so it is idempotent and safe when several processes start at once; both databases
have transactional DDL, so a failed migration leaves the schema as it was.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, insert, select

from stageless.clock import SYSTEM_CLOCK, Clock
from stageless.errors import StoreError
from stageless.store.backend import Backend
from stageless.store.schema import schema_version

_MODULE_NAME = re.compile(r"v(\d{4})_\w+")

_CREATE_SCHEMA_VERSION = """
CREATE TABLE IF NOT EXISTS schema_version (
    version BIGINT PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at DOUBLE PRECISION NOT NULL
)
"""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    statements: Mapping[str, Sequence[str]]


def discover() -> list[Migration]:
    """Every migration in this package, by version; versions must run 1, 2, 3… without gaps."""
    found = []
    for info in pkgutil.iter_modules(__path__):
        match = _MODULE_NAME.fullmatch(info.name)
        if match is None:
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        found.append(Migration(int(match[1]), module.DESCRIPTION, module.STATEMENTS))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise StoreError(f"migrations must be numbered 1, 2, 3… without gaps; found {versions}")
    return found


def applied_versions(conn: Connection) -> list[int]:
    return list(conn.execute(select(schema_version.c.version).order_by("version")).scalars())


def apply_migrations(
    backend: Backend,
    *,
    clock: Clock = SYSTEM_CLOCK,
    migrations: Sequence[Migration] | None = None,
) -> list[int]:
    """Bring the database to the newest schema; return the versions applied by this call."""
    todo = discover() if migrations is None else list(migrations)
    known = max((m.version for m in todo), default=0)
    with backend.transaction(write=True) as conn:
        backend.lock_migrations(conn)
        conn.exec_driver_sql(_CREATE_SCHEMA_VERSION)
        done = set(applied_versions(conn))
        newest = max(done, default=0)
        if newest > known:
            raise StoreError(
                f"the database schema is at version {newest}, newer than this Stageless "
                f"knows (up to {known}); upgrade Stageless before using this database"
            )
        applied = []
        for migration in todo:
            if migration.version in done:
                continue
            statements = migration.statements.get(backend.name)
            if statements is None:
                raise StoreError(f"migration {migration.version} has no SQL for {backend.name}")
            for statement in statements:
                conn.exec_driver_sql(statement)
            conn.execute(
                insert(schema_version).values(
                    version=migration.version,
                    description=migration.description,
                    applied_at=clock.now(),
                )
            )
            applied.append(migration.version)
    return applied
