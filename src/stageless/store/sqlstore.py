"""``SqlStore``: the one implementation of the ``Store`` Protocol, over any ``Backend``.

All queries are SQLAlchemy Core and identical for SQLite and PostgreSQL; the backend supplies
transactions, locks and notifications. A flag-set write reads the current row under a write
lock (``FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), checks the caller's
expected version or ETag, then writes the row, its version row, its audit entry and its change
notification in one transaction.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Row, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from stageless.clock import SYSTEM_CLOCK, Clock
from stageless.errors import ConflictError, Issue, NotFoundError, StoreError, ValidationError
from stageless.store.backend import Backend
from stageless.store.base import (
    ApiToken,
    AuditAction,
    AuditEntry,
    ChangeEvent,
    FlagSetRecord,
    FlagSetVersion,
    Listener,
    NewToken,
    Subscription,
    TokenScope,
    check_name,
)
from stageless.store.changes import ChangeHub, Watcher
from stageless.store.schema import api_tokens, audit_log, flag_set_versions, flag_sets
from stageless.store.tokens import generate_token, hash_token

#: ``last_used_at`` is refreshed at most this often (seconds), so authenticating a request is a
#: read, not a write, nearly always: a write per request would serialise every OFREP call.
LAST_USED_RESOLUTION = 60.0


def flag_set_target(name: str) -> str:
    """The audit ``target`` of a flag set."""
    return f"flag_set:{name}"


def token_target(name: str) -> str:
    """The audit ``target`` of a token."""
    return f"token:{name}"


def compute_etag(name: str, version: int, document: str) -> str:
    """A strong validator: equal only for the same flag set, version and document."""
    digest = hashlib.sha256(f"{name}\n{version}\n{document}".encode())
    return digest.hexdigest()[:32]


class SqlStore:
    """The control plane's durable state; see ``stageless.store.base.Store`` for the contract."""

    def __init__(self, backend: Backend, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self._backend = backend
        self._clock = clock
        self._hub = ChangeHub()
        self._watch_lock = threading.Lock()
        self._watcher: Watcher | None = None
        self._watching = False
        self._closed = False

    @property
    def backend(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._backend.name

    def __enter__(self) -> SqlStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def ping(self) -> None:
        """Raise ``StoreError`` unless the database answers."""
        with self._backend.transaction(write=False) as conn:
            conn.execute(select(1)).scalar_one()

    # Flag sets.

    def list_flag_sets(self) -> list[FlagSetRecord]:
        with self._backend.transaction(write=False) as conn:
            rows = conn.execute(select(flag_sets).order_by(flag_sets.c.name)).all()
        return [_flag_set(row) for row in rows]

    def get_flag_set(self, name: str) -> FlagSetRecord:
        with self._backend.transaction(write=False) as conn:
            row = conn.execute(select(flag_sets).where(flag_sets.c.name == name)).first()
        if row is None:
            raise NotFoundError(f"flag set {name!r} not found")
        return _flag_set(row)

    def create_flag_set(
        self, name: str, document: str, *, actor: str, message: str = ""
    ) -> FlagSetRecord:
        check_name("name", name)
        now = self._clock.now()
        with self._backend.transaction(write=True) as conn:
            exists = conn.execute(select(flag_sets.c.name).where(flag_sets.c.name == name))
            if exists.first() is not None:
                raise ConflictError(f"flag set {name!r} already exists")
            last = conn.execute(
                select(func.max(flag_set_versions.c.version)).where(
                    flag_set_versions.c.flag_set == name
                )
            ).scalar()
            record = FlagSetRecord(
                name, document, (last or 0) + 1, "", created_at=now, updated_at=now
            )
            record = _with_etag(record)
            try:
                conn.execute(insert(flag_sets).values(**_flag_set_values(record)))
            except IntegrityError as exc:  # a concurrent create won the race
                raise ConflictError(f"flag set {name!r} already exists") from exc
            self._record_version(conn, record, actor=actor, message=message)
            self._audit(conn, AuditAction.FLAG_SET_CREATE, name, None, document, actor=actor)
            self._backend.notify(conn, ChangeEvent(name, record.version))
        self._hub.publish(ChangeEvent(name, record.version))
        return record

    def update_flag_set(
        self, name: str, document: str, *, expected: int | str | None, actor: str, message: str = ""
    ) -> FlagSetRecord:
        return self._replace(
            name,
            lambda _conn: document,
            expected=expected,
            action=AuditAction.FLAG_SET_UPDATE,
            actor=actor,
            message=message,
        )

    def restore_version(
        self, name: str, version: int, *, expected: int | str | None, actor: str
    ) -> FlagSetRecord:
        def old_document(conn: Connection) -> str:
            return _version(self._version_row(conn, name, version)).document

        return self._replace(
            name,
            old_document,
            expected=expected,
            action=AuditAction.FLAG_SET_RESTORE,
            actor=actor,
            message=f"restore version {version}",
        )

    def delete_flag_set(self, name: str, *, expected: int | str | None, actor: str) -> None:
        with self._backend.transaction(write=True) as conn:
            current = self._lock_current(conn, name, expected)
            conn.execute(delete(flag_sets).where(flag_sets.c.name == name))
            self._audit(
                conn, AuditAction.FLAG_SET_DELETE, name, current.document, None, actor=actor
            )
            self._backend.notify(conn, ChangeEvent(name, current.version, deleted=True))
        self._hub.publish(ChangeEvent(name, current.version, deleted=True))

    def _replace(
        self,
        name: str,
        new_document: Callable[[Connection], str],  # read inside the transaction
        *,
        expected: int | str | None,
        action: AuditAction,
        actor: str,
        message: str,
    ) -> FlagSetRecord:
        now = self._clock.now()
        with self._backend.transaction(write=True) as conn:
            current = self._lock_current(conn, name, expected)
            document: str = new_document(conn)
            record = _with_etag(
                FlagSetRecord(name, document, current.version + 1, "", current.created_at, now)
            )
            conn.execute(
                update(flag_sets).where(flag_sets.c.name == name).values(**_flag_set_values(record))
            )
            self._record_version(conn, record, actor=actor, message=message)
            self._audit(conn, action, name, current.document, document, actor=actor)
            self._backend.notify(conn, ChangeEvent(name, record.version))
        self._hub.publish(ChangeEvent(name, record.version))
        return record

    def _lock_current(
        self, conn: Connection, name: str, expected: int | str | None
    ) -> FlagSetRecord:
        row = conn.execute(
            select(flag_sets).where(flag_sets.c.name == name).with_for_update()
        ).first()
        if row is None:
            raise NotFoundError(f"flag set {name!r} not found")
        current = _flag_set(row)
        if isinstance(expected, int) and expected != current.version:
            raise ConflictError(
                f"flag set {name!r} is at version {current.version}, "
                f"not the expected version {expected}"
            )
        if isinstance(expected, str) and expected != current.etag:
            raise ConflictError(
                f"flag set {name!r} has ETag {current.etag!r}, not the expected {expected!r}"
            )
        return current

    def _record_version(
        self, conn: Connection, record: FlagSetRecord, *, actor: str, message: str
    ) -> None:
        conn.execute(
            insert(flag_set_versions).values(
                flag_set=record.name,
                version=record.version,
                document=record.document,
                etag=record.etag,
                author=actor,
                message=message,
                created_at=record.updated_at,
            )
        )

    def _audit(
        self,
        conn: Connection,
        action: AuditAction,
        name: str,
        before: str | None,
        after: str | None,
        *,
        actor: str,
    ) -> None:
        target = token_target(name) if action.startswith("token.") else flag_set_target(name)
        conn.execute(
            insert(audit_log).values(
                ts=self._clock.now(),
                actor=actor,
                action=str(action),
                target=target,
                before_json=before,
                after_json=after,
            )
        )

    # History.

    def list_versions(self, name: str, *, limit: int = 100) -> list[FlagSetVersion]:
        query = (
            select(flag_set_versions)
            .where(flag_set_versions.c.flag_set == name)
            .order_by(flag_set_versions.c.version.desc())
            .limit(limit)
        )
        with self._backend.transaction(write=False) as conn:
            rows = conn.execute(query).all()
        if not rows:
            raise NotFoundError(f"flag set {name!r} not found")
        return [_version(row) for row in rows]

    def get_version(self, name: str, version: int) -> FlagSetVersion:
        with self._backend.transaction(write=False) as conn:
            return _version(self._version_row(conn, name, version))

    def _version_row(self, conn: Connection, name: str, version: int) -> Row[Any]:
        row = conn.execute(
            select(flag_set_versions).where(
                flag_set_versions.c.flag_set == name, flag_set_versions.c.version == version
            )
        ).first()
        if row is None:
            raise NotFoundError(f"flag set {name!r} has no version {version}")
        return row

    # Audit log.

    def list_audit(
        self, *, after_id: int = 0, limit: int = 100, target: str | None = None
    ) -> list[AuditEntry]:
        query = select(audit_log).where(audit_log.c.id > after_id)
        if target is not None:
            query = query.where(audit_log.c.target == target)
        with self._backend.transaction(write=False) as conn:
            rows = conn.execute(query.order_by(audit_log.c.id).limit(limit)).all()
        return [
            AuditEntry(
                id=row.id,
                ts=row.ts,
                actor=row.actor,
                action=AuditAction(row.action),
                target=row.target,
                before=row.before_json,
                after=row.after_json,
            )
            for row in rows
        ]

    # Tokens.

    def create_token(
        self, name: str, scope: TokenScope, *, flag_set: str | None = None, actor: str
    ) -> NewToken:
        check_name("name", name)
        scope = TokenScope(scope)
        if scope is TokenScope.SDK and flag_set is None:
            raise ValidationError([Issue("flag_set", "an sdk token needs the flag set it reads")])
        if scope is not TokenScope.SDK and flag_set is not None:
            raise ValidationError(
                [Issue("flag_set", f"only sdk tokens are bound to a flag set, not {scope} ones")]
            )
        if flag_set is not None:
            check_name("flag_set", flag_set)
        plaintext = generate_token()
        token = ApiToken(name, scope, flag_set, self._clock.now(), None, None)
        with self._backend.transaction(write=True) as conn:
            taken = conn.execute(select(api_tokens.c.name).where(api_tokens.c.name == name))
            if taken.first() is not None:
                raise ConflictError(f"token {name!r} already exists")
            try:
                conn.execute(
                    insert(api_tokens).values(
                        name=name,
                        token_hash=hash_token(plaintext),
                        scope=str(scope),
                        flag_set=flag_set,
                        created_at=token.created_at,
                    )
                )
            except IntegrityError as exc:
                raise ConflictError(f"token {name!r} already exists") from exc
            after = _token_json(token)
            self._audit(conn, AuditAction.TOKEN_CREATE, name, None, after, actor=actor)
        return NewToken(token, plaintext)

    def authenticate(self, plaintext: str) -> ApiToken | None:
        digest = hash_token(plaintext)
        with self._backend.transaction(write=False) as conn:
            row = conn.execute(select(api_tokens).where(api_tokens.c.token_hash == digest)).first()
        if row is None or row.revoked_at is not None:
            return None
        token = _token(row)
        now = self._clock.now()
        if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
            with self._backend.transaction(write=True) as conn:
                conn.execute(
                    update(api_tokens)
                    .where(api_tokens.c.name == token.name)
                    .values(last_used_at=now)
                )
            token = _token(row, last_used_at=now)
        return token

    def list_tokens(self) -> list[ApiToken]:
        with self._backend.transaction(write=False) as conn:
            rows = conn.execute(select(api_tokens).order_by(api_tokens.c.name)).all()
        return [_token(row) for row in rows]

    def revoke_token(self, name: str, *, actor: str) -> ApiToken:
        """Revoke ``name``; revoking a revoked token changes (and audits) nothing."""
        now = self._clock.now()
        with self._backend.transaction(write=True) as conn:
            row = conn.execute(
                select(api_tokens).where(api_tokens.c.name == name).with_for_update()
            ).first()
            if row is None:
                raise NotFoundError(f"token {name!r} not found")
            before = _token(row)
            if before.revoked:
                return before
            conn.execute(update(api_tokens).where(api_tokens.c.name == name).values(revoked_at=now))
            after = _token(row, revoked_at=now)
            self._audit(
                conn,
                AuditAction.TOKEN_REVOKE,
                name,
                _token_json(before),
                _token_json(after),
                actor=actor,
            )
        return after

    # Change notifications and lifecycle.

    def subscribe(self, listener: Listener) -> Subscription:
        with self._watch_lock:
            if self._closed:
                raise StoreError("the store is closed")
            subscription = self._hub.subscribe(listener)
            if not self._watching:
                try:
                    since = self._hub.mark()
                    self._hub.reconcile(self.versions(), since=since, emit=False)
                except StoreError:
                    subscription.close()
                    raise
                self._watcher = self._backend.watcher(self._hub, self.versions)
                if self._watcher is not None:
                    self._watcher.start()
                self._watching = True
        return subscription

    def versions(self) -> dict[str, int]:
        """Every flag set's current version, by name (cheap: no documents are read)."""
        with self._backend.transaction(write=False) as conn:
            rows = conn.execute(select(flag_sets.c.name, flag_sets.c.version)).all()
        return {row.name: row.version for row in rows}

    def close(self) -> None:
        with self._watch_lock:
            if self._closed:
                return
            self._closed = True
            watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.stop()
        self._backend.close()


def _with_etag(record: FlagSetRecord) -> FlagSetRecord:
    etag = compute_etag(record.name, record.version, record.document)
    return FlagSetRecord(
        record.name, record.document, record.version, etag, record.created_at, record.updated_at
    )


def _flag_set_values(record: FlagSetRecord) -> dict[str, Any]:
    return {
        "name": record.name,
        "document": record.document,
        "version": record.version,
        "etag": record.etag,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
    }


def _flag_set(row: Row[Any]) -> FlagSetRecord:
    return FlagSetRecord(
        row.name, row.document, row.version, row.etag, row.created_at, row.updated_at
    )


def _version(row: Row[Any]) -> FlagSetVersion:
    return FlagSetVersion(
        flag_set=row.flag_set,
        version=row.version,
        document=row.document,
        etag=row.etag,
        author=row.author,
        message=row.message,
        created_at=row.created_at,
    )


def _token(row: Row[Any], **changes: float) -> ApiToken:
    values: dict[str, Any] = {
        "name": row.name,
        "scope": TokenScope(row.scope),
        "flag_set": row.flag_set,
        "created_at": row.created_at,
        "last_used_at": row.last_used_at,
        "revoked_at": row.revoked_at,
    }
    values.update(changes)
    return ApiToken(**values)


def _token_json(token: ApiToken) -> str:
    return json.dumps(
        {
            "name": token.name,
            "scope": str(token.scope),
            "flag_set": token.flag_set,
            "created_at": token.created_at,
            "revoked_at": token.revoked_at,
        },
        sort_keys=True,
    )
