"""Versioned documents: the SQL behind flag sets and proxy configurations alike.

A kind of document (``DocumentKind``) has a current-state table (name, document, version, etag,
times) and a history table (one row per version, kept after a delete), four audit actions and
an audit target. ``VersionedDocuments`` implements create, update, delete, history and restore
for one kind; every write reads the current row under a write lock, checks the caller's
expected version or ETag, then writes the row, its version row, its audit entry and its change
notification in one transaction, and publishes the change to this process's subscribers once
it has committed.

Proxy configurations hold routing-token signing secrets, which must not leak into the audit
log (readable with a ``read`` token): their audit entries keep the documents with every
``"secret"`` string replaced by a fingerprint (:func:`redact_secrets`), which still shows that a
secret changed and to which value, by hash.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy import Connection, Row, Table, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from stageless.clock import Clock
from stageless.errors import ConflictError, NotFoundError
from stageless.store.backend import Backend
from stageless.store.base import AuditAction, ChangeEvent, ResourceKind, check_name
from stageless.store.changes import ChangeHub

#: What a secret's value becomes in a redacted document: this prefix and 16 hex digits of its
#: SHA-256. The service refuses documents that carry such a placeholder as a secret.
REDACTED_PREFIX = "redacted:sha256:"


class DocumentRecord(Protocol):
    """The current state of a document (``FlagSetRecord``, ``ProxyConfigRecord``)."""

    @property
    def name(self) -> str: ...
    @property
    def document(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def etag(self) -> str: ...
    @property
    def created_at(self) -> float: ...
    @property
    def updated_at(self) -> float: ...


R = TypeVar("R", bound=DocumentRecord)
V = TypeVar("V")
#: Appends an audit entry: (conn, action, target, before, after, actor).
AuditWriter = Callable[[Connection, AuditAction, str, str | None, str | None, str], None]


@dataclass(frozen=True, slots=True)
class DocumentKind(Generic[R, V]):
    """Everything that differs between two kinds of versioned document."""

    kind: ResourceKind
    noun: str  # in messages: "flag set 'web' not found"
    table: Table
    versions: Table
    owner: str  # the history table's column holding the document's name
    record: Callable[..., R]  # (name, document, version, etag, created_at, updated_at)
    version_record: Callable[..., V]  # (name, version, document, etag, author, message, at)
    create: AuditAction
    update: AuditAction
    restore: AuditAction | None
    delete: AuditAction
    target_prefix: str
    audit_text: Callable[[str], str] = lambda document: document

    def target(self, name: str) -> str:
        """The audit ``target`` of the document ``name``."""
        return f"{self.target_prefix}:{name}"


def compute_etag(name: str, version: int, document: str) -> str:
    """A strong validator: equal only for the same name, version and document."""
    digest = hashlib.sha256(f"{name}\n{version}\n{document}".encode())
    return digest.hexdigest()[:32]


def redact_secrets(document: str) -> str:
    """``document`` (JSON text) with every string under a ``"secret"`` key replaced by
    ``redacted:sha256:<16 hex>``; text that is not JSON comes back unchanged."""
    try:
        parsed = json.loads(document)
    except ValueError:
        return document
    return json.dumps(_redacted(parsed), ensure_ascii=False, separators=(",", ":"))


def _redacted(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: fingerprint(item) if key == "secret" and isinstance(item, str) else _redacted(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_redacted(item) for item in value]
    return value


def fingerprint(secret: str) -> str:
    """The placeholder standing for ``secret`` in redacted documents."""
    return REDACTED_PREFIX + hashlib.sha256(secret.encode()).hexdigest()[:16]


class VersionedDocuments(Generic[R, V]):
    """The operations on one kind of document; the store supplies the backend and audit."""

    def __init__(
        self,
        spec: DocumentKind[R, V],
        backend: Backend,
        clock: Clock,
        hub: ChangeHub,
        audit: AuditWriter,
    ) -> None:
        self.spec = spec
        self._backend = backend
        self._clock = clock
        self._hub = hub
        self._audit = audit

    def list_all(self) -> list[R]:
        table = self.spec.table
        with self._backend.transaction(write=False) as conn:
            rows = conn.execute(select(table).order_by(table.c.name)).all()
        return [self._record(row) for row in rows]

    def get(self, name: str) -> R:
        table = self.spec.table
        with self._backend.transaction(write=False) as conn:
            row = conn.execute(select(table).where(table.c.name == name)).first()
        if row is None:
            raise NotFoundError(f"{self.spec.noun} {name!r} not found")
        return self._record(row)

    def create(self, name: str, document: str, *, actor: str, message: str) -> R:
        spec = self.spec
        check_name("name", name)
        now = self._clock.now()
        with self._backend.transaction(write=True) as conn:
            exists = conn.execute(select(spec.table.c.name).where(spec.table.c.name == name))
            if exists.first() is not None:
                raise ConflictError(f"{spec.noun} {name!r} already exists")
            owner = spec.versions.c[spec.owner]
            last = conn.execute(
                select(func.max(spec.versions.c.version)).where(owner == name)
            ).scalar()
            version = (last or 0) + 1
            record = spec.record(
                name, document, version, compute_etag(name, version, document), now, now
            )
            try:
                conn.execute(insert(spec.table).values(**_values(record)))
            except IntegrityError as exc:  # a concurrent create won the race
                raise ConflictError(f"{spec.noun} {name!r} already exists") from exc
            self._record_version(conn, record, actor=actor, message=message)
            self._write_audit(conn, spec.create, name, None, document, actor)
            event = ChangeEvent(name, record.version, kind=spec.kind)
            self._backend.notify(conn, event)
        self._hub.publish(event)
        return record

    def update(
        self, name: str, document: str, *, expected: int | str | None, actor: str, message: str
    ) -> R:
        return self._replace(
            name,
            lambda _conn: document,
            expected=expected,
            action=self.spec.update,
            actor=actor,
            message=message,
        )

    def restore(self, name: str, version: int, *, expected: int | str | None, actor: str) -> R:
        action = self.spec.restore
        if action is None:  # a wiring error: the store offers no restore for this kind
            raise NotImplementedError(f"{self.spec.noun}s have no restore")

        def old_document(conn: Connection) -> str:
            return str(self._version_row(conn, name, version).document)

        return self._replace(
            name,
            old_document,
            expected=expected,
            action=action,
            actor=actor,
            message=f"restore version {version}",
        )

    def delete(self, name: str, *, expected: int | str | None, actor: str) -> None:
        spec = self.spec
        with self._backend.transaction(write=True) as conn:
            current = self._lock_current(conn, name, expected)
            conn.execute(delete(spec.table).where(spec.table.c.name == name))
            self._write_audit(conn, spec.delete, name, current.document, None, actor)
            event = ChangeEvent(name, current.version, deleted=True, kind=spec.kind)
            self._backend.notify(conn, event)
        self._hub.publish(event)

    def _replace(
        self,
        name: str,
        new_document: Callable[[Connection], str],  # read inside the transaction
        *,
        expected: int | str | None,
        action: AuditAction,
        actor: str,
        message: str,
    ) -> R:
        spec = self.spec
        now = self._clock.now()
        with self._backend.transaction(write=True) as conn:
            current = self._lock_current(conn, name, expected)
            document = new_document(conn)
            version = current.version + 1
            etag = compute_etag(name, version, document)
            record = spec.record(name, document, version, etag, current.created_at, now)
            conn.execute(
                update(spec.table).where(spec.table.c.name == name).values(**_values(record))
            )
            self._record_version(conn, record, actor=actor, message=message)
            self._write_audit(conn, action, name, current.document, document, actor)
            event = ChangeEvent(name, record.version, kind=spec.kind)
            self._backend.notify(conn, event)
        self._hub.publish(event)
        return record

    def _lock_current(self, conn: Connection, name: str, expected: int | str | None) -> R:
        spec = self.spec
        row = conn.execute(
            select(spec.table).where(spec.table.c.name == name).with_for_update()
        ).first()
        if row is None:
            raise NotFoundError(f"{spec.noun} {name!r} not found")
        current = self._record(row)
        if isinstance(expected, int) and expected != current.version:
            raise ConflictError(
                f"{spec.noun} {name!r} is at version {current.version}, "
                f"not the expected version {expected}"
            )
        if isinstance(expected, str) and expected != current.etag:
            raise ConflictError(
                f"{spec.noun} {name!r} has ETag {current.etag!r}, not the expected {expected!r}"
            )
        return current

    def _record_version(self, conn: Connection, record: R, *, actor: str, message: str) -> None:
        conn.execute(
            insert(self.spec.versions).values(
                {
                    self.spec.owner: record.name,
                    "version": record.version,
                    "document": record.document,
                    "etag": record.etag,
                    "author": actor,
                    "message": message,
                    "created_at": record.updated_at,
                }
            )
        )

    def _write_audit(
        self,
        conn: Connection,
        action: AuditAction,
        name: str,
        before: str | None,
        after: str | None,
        actor: str,
    ) -> None:
        shown = self.spec.audit_text
        self._audit(
            conn,
            action,
            self.spec.target(name),
            None if before is None else shown(before),
            None if after is None else shown(after),
            actor,
        )

    # History.

    def list_versions(self, name: str, *, limit: int) -> list[V]:
        versions = self.spec.versions
        query = (
            select(versions)
            .where(versions.c[self.spec.owner] == name)
            .order_by(versions.c.version.desc())
            .limit(limit)
        )
        with self._backend.transaction(write=False) as conn:
            rows = conn.execute(query).all()
        if not rows:
            raise NotFoundError(f"{self.spec.noun} {name!r} not found")
        return [self._version(row) for row in rows]

    def get_version(self, name: str, version: int) -> V:
        with self._backend.transaction(write=False) as conn:
            return self._version(self._version_row(conn, name, version))

    def _version_row(self, conn: Connection, name: str, version: int) -> Row[Any]:
        versions = self.spec.versions
        row = conn.execute(
            select(versions).where(
                versions.c[self.spec.owner] == name, versions.c.version == version
            )
        ).first()
        if row is None:
            raise NotFoundError(f"{self.spec.noun} {name!r} has no version {version}")
        return row

    def current_versions(self) -> dict[str, int]:
        """Every document's current version, by name (reads no documents)."""
        table = self.spec.table
        with self._backend.transaction(write=False) as conn:
            rows = conn.execute(select(table.c.name, table.c.version)).all()
        return {row.name: row.version for row in rows}

    def _record(self, row: Row[Any]) -> R:
        return self.spec.record(
            row.name, row.document, row.version, row.etag, row.created_at, row.updated_at
        )

    def _version(self, row: Row[Any]) -> V:
        return self.spec.version_record(
            row._mapping[self.spec.owner],
            row.version,
            row.document,
            row.etag,
            row.author,
            row.message,
            row.created_at,
        )


def _values(record: DocumentRecord) -> dict[str, Any]:
    return {
        "name": record.name,
        "document": record.document,
        "version": record.version,
        "etag": record.etag,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
    }
