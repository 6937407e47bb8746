"""``SqlStore``: the one implementation of the ``Store`` Protocol, over any ``Backend``.

All queries are SQLAlchemy Core and identical for SQLite and PostgreSQL; the backend supplies
transactions, locks and notifications. Flag sets and proxy configurations are two kinds of
versioned document with the same SQL (``stageless.store.documents``): a write reads the current
row under a write lock (``FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), checks the
caller's expected version or ETag, then writes the row, its version row, its audit entry and its
change notification in one transaction.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, Row, insert, select, update
from sqlalchemy.exc import IntegrityError

from stageless.clock import SYSTEM_CLOCK, Clock
from stageless.errors import ConflictError, Issue, NotFoundError, StoreError, ValidationError
from stageless.store.backend import Backend
from stageless.store.base import (
    ApiToken,
    AuditAction,
    AuditEntry,
    FlagSetRecord,
    FlagSetVersion,
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
    Subscription,
    TokenScope,
    TransitionWrite,
    check_name,
)
from stageless.store.changes import ChangeHub, Watcher
from stageless.store.documents import (
    DocumentKind,
    VersionedDocuments,
    compute_etag,
    redact_secrets,
)
from stageless.store.rollouts import ProxyReports, Rollouts
from stageless.store.schema import (
    api_tokens,
    audit_log,
    flag_set_versions,
    flag_sets,
    proxy_config_versions,
    proxy_configs,
)
from stageless.store.tokens import generate_token, hash_token

#: ``last_used_at`` is refreshed at most this often (seconds), so authenticating a request is a
#: read, not a write, nearly always: a write per request would serialise every OFREP call.
LAST_USED_RESOLUTION = 60.0


FLAG_SETS: DocumentKind[FlagSetRecord, FlagSetVersion] = DocumentKind(
    kind=ResourceKind.FLAG_SET,
    noun="flag set",
    table=flag_sets,
    versions=flag_set_versions,
    owner="flag_set",
    record=FlagSetRecord,
    version_record=FlagSetVersion,
    create=AuditAction.FLAG_SET_CREATE,
    update=AuditAction.FLAG_SET_UPDATE,
    restore=AuditAction.FLAG_SET_RESTORE,
    delete=AuditAction.FLAG_SET_DELETE,
    target_prefix="flag_set",
)
PROXY_CONFIGS: DocumentKind[ProxyConfigRecord, ProxyConfigVersion] = DocumentKind(
    kind=ResourceKind.PROXY_CONFIG,
    noun="proxy config",
    table=proxy_configs,
    versions=proxy_config_versions,
    owner="proxy_config",
    record=ProxyConfigRecord,
    version_record=ProxyConfigVersion,
    create=AuditAction.PROXY_CONFIG_CREATE,
    update=AuditAction.PROXY_CONFIG_UPDATE,
    restore=None,
    delete=AuditAction.PROXY_CONFIG_DELETE,
    target_prefix="proxy_config",
    audit_text=redact_secrets,  # signing secrets never reach the audit log
)


def flag_set_target(name: str) -> str:
    """The audit ``target`` of a flag set."""
    return FLAG_SETS.target(name)


def proxy_config_target(name: str) -> str:
    """The audit ``target`` of a proxy configuration."""
    return PROXY_CONFIGS.target(name)


def token_target(name: str) -> str:
    """The audit ``target`` of a token."""
    return f"token:{name}"


__all__ = [
    "FLAG_SETS",
    "PROXY_CONFIGS",
    "SqlStore",
    "compute_etag",
    "flag_set_target",
    "proxy_config_target",
    "token_target",
]


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
        self._flag_sets = VersionedDocuments(FLAG_SETS, backend, clock, self._hub, self._audit)
        self._proxy_configs = VersionedDocuments(
            PROXY_CONFIGS, backend, clock, self._hub, self._audit
        )
        self._rollouts = Rollouts(backend, clock, self._audit)
        self._reports = ProxyReports(backend, clock)

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
        return self._flag_sets.list_all()

    def get_flag_set(self, name: str) -> FlagSetRecord:
        return self._flag_sets.get(name)

    def create_flag_set(
        self, name: str, document: str, *, actor: str, message: str = ""
    ) -> FlagSetRecord:
        return self._flag_sets.create(name, document, actor=actor, message=message)

    def update_flag_set(
        self, name: str, document: str, *, expected: int | str | None, actor: str, message: str = ""
    ) -> FlagSetRecord:
        return self._flag_sets.update(
            name, document, expected=expected, actor=actor, message=message
        )

    def restore_version(
        self, name: str, version: int, *, expected: int | str | None, actor: str
    ) -> FlagSetRecord:
        return self._flag_sets.restore(name, version, expected=expected, actor=actor)

    def delete_flag_set(self, name: str, *, expected: int | str | None, actor: str) -> None:
        self._flag_sets.delete(name, expected=expected, actor=actor)

    def list_versions(self, name: str, *, limit: int = 100) -> list[FlagSetVersion]:
        return self._flag_sets.list_versions(name, limit=limit)

    def get_version(self, name: str, version: int) -> FlagSetVersion:
        return self._flag_sets.get_version(name, version)

    # Proxy configurations.

    def list_proxy_configs(self) -> list[ProxyConfigRecord]:
        return self._proxy_configs.list_all()

    def get_proxy_config(self, name: str) -> ProxyConfigRecord:
        return self._proxy_configs.get(name)

    def create_proxy_config(
        self, name: str, document: str, *, actor: str, message: str = ""
    ) -> ProxyConfigRecord:
        return self._proxy_configs.create(name, document, actor=actor, message=message)

    def update_proxy_config(
        self, name: str, document: str, *, expected: int | str | None, actor: str, message: str = ""
    ) -> ProxyConfigRecord:
        return self._proxy_configs.update(
            name, document, expected=expected, actor=actor, message=message
        )

    def delete_proxy_config(self, name: str, *, expected: int | str | None, actor: str) -> None:
        self._proxy_configs.delete(name, expected=expected, actor=actor)

    def list_proxy_config_versions(
        self, name: str, *, limit: int = 100
    ) -> list[ProxyConfigVersion]:
        return self._proxy_configs.list_versions(name, limit=limit)

    def get_proxy_config_version(self, name: str, version: int) -> ProxyConfigVersion:
        return self._proxy_configs.get_version(name, version)

    # Rollouts (stageless.store.rollouts).

    def create_rollout(self, rollout: NewRollout, *, actor: str) -> RolloutRecord:
        return self._rollouts.create(rollout, actor=actor)

    def get_rollout(self, rollout_id: str) -> RolloutRecord:
        return self._rollouts.get(rollout_id)

    def list_rollouts(
        self, *, unfinished: bool | None = None, limit: int = 100
    ) -> list[RolloutRecord]:
        return self._rollouts.list_all(unfinished=unfinished, limit=limit)

    def get_rollout_with_evidence(self, rollout_id: str) -> tuple[RolloutRecord, int]:
        return self._rollouts.get_with_evidence(rollout_id)

    def list_rollouts_with_evidence(
        self, *, unfinished: bool | None = None, limit: int = 100
    ) -> list[tuple[RolloutRecord, int]]:
        return self._rollouts.list_with_evidence(unfinished=unfinished, limit=limit)

    def add_rollout_request(
        self,
        rollout_id: str,
        action: RolloutAction,
        *,
        actor: str,
        step: int | None = None,
        reason: str = "",
    ) -> RolloutRequest:
        return self._rollouts.add_request(rollout_id, action, actor=actor, step=step, reason=reason)

    def pending_rollout_requests(self, rollout_id: str) -> list[RolloutRequest]:
        return self._rollouts.pending_requests(rollout_id)

    def acquire_rollout_lease(self, rollout_id: str, owner: str, *, ttl_s: float) -> bool:
        return self._rollouts.acquire_lease(rollout_id, owner, ttl_s=ttl_s)

    def release_rollout_lease(self, rollout_id: str, owner: str) -> None:
        self._rollouts.release_lease(rollout_id, owner)

    def record_rollout_transition(
        self, rollout_id: str, write: TransitionWrite, *, owner: str
    ) -> RolloutRecord:
        return self._rollouts.record_transition(rollout_id, write, owner=owner)

    def list_rollout_transitions(
        self, rollout_id: str, *, after_seq: int = 0, limit: int = 100
    ) -> list[RolloutTransition]:
        return self._rollouts.transitions(rollout_id, after_seq=after_seq, limit=limit)

    def add_rollout_evidence(
        self, rollout_id: str, step: int, batches: list[str], *, judge: str | None, owner: str
    ) -> int:
        return self._rollouts.add_evidence(rollout_id, step, batches, judge=judge, owner=owner)

    def list_rollout_evidence(self, rollout_id: str, step: int) -> list[str]:
        return self._rollouts.evidence(rollout_id, step)

    def count_rollout_evidence(self, rollout_id: str, step: int) -> int:
        return self._rollouts.count_evidence(rollout_id, step)

    # Proxy reports.

    def add_proxy_report(
        self, proxy_config: str, batches: str, diff: str | None, *, keep_s: float
    ) -> ProxyReport:
        return self._reports.add(proxy_config, batches, diff, keep_s=keep_s)

    def list_proxy_reports(self, proxy_config: str, *, since: float) -> list[ProxyReport]:
        return self._reports.since(proxy_config, since=since)

    def _audit(
        self,
        conn: Connection,
        action: AuditAction,
        target: str,
        before: str | None,
        after: str | None,
        actor: str,
    ) -> None:
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
        self,
        name: str,
        scope: TokenScope,
        *,
        flag_set: str | None = None,
        proxy_config: str | None = None,
        actor: str,
    ) -> NewToken:
        check_name("name", name)
        scope = TokenScope(scope)
        _check_binding(scope, flag_set, proxy_config)
        plaintext = generate_token()
        token = ApiToken(
            name, scope, flag_set, self._clock.now(), None, None, proxy_config=proxy_config
        )
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
                        proxy_config=proxy_config,
                        created_at=token.created_at,
                    )
                )
            except IntegrityError as exc:
                raise ConflictError(f"token {name!r} already exists") from exc
            after = _token_json(token)
            self._audit(conn, AuditAction.TOKEN_CREATE, token_target(name), None, after, actor)
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
                token_target(name),
                _token_json(before),
                _token_json(after),
                actor,
            )
        return after

    # Change notifications and lifecycle.

    def subscribe(
        self, listener: Listener, *, kind: ResourceKind | None = ResourceKind.FLAG_SET
    ) -> Subscription:
        with self._watch_lock:
            if self._closed:
                raise StoreError("the store is closed")
            subscription = self._hub.subscribe(listener, kind=kind)
            if not self._watching:
                try:
                    since = self._hub.mark()
                    self._hub.reconcile_all(self._snapshot(), since=since, emit=False)
                except StoreError:
                    subscription.close()
                    raise
                self._watcher = self._backend.watcher(self._hub, self._snapshot)
                if self._watcher is not None:
                    self._watcher.start()
                self._watching = True
        return subscription

    def versions(self) -> dict[str, int]:
        """Every flag set's current version, by name (cheap: no documents are read)."""
        return self._flag_sets.current_versions()

    def _snapshot(self) -> Mapping[ResourceKind, Mapping[str, int]]:
        """Every document's current version, by kind, for the change hub to reconcile with."""
        return {
            ResourceKind.FLAG_SET: self._flag_sets.current_versions(),
            ResourceKind.PROXY_CONFIG: self._proxy_configs.current_versions(),
        }

    def close(self) -> None:
        with self._watch_lock:
            if self._closed:
                return
            self._closed = True
            watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.stop()
        self._backend.close()


def _check_binding(scope: TokenScope, flag_set: str | None, proxy_config: str | None) -> None:
    """sdk tokens need a flag set, proxy tokens a proxy config; no other token takes either."""
    issues = []
    if scope is TokenScope.SDK and flag_set is None:
        issues.append(Issue("flag_set", "an sdk token needs the flag set it reads"))
    if scope is not TokenScope.SDK and flag_set is not None:
        issues.append(
            Issue("flag_set", f"only sdk tokens are bound to a flag set, not {scope} ones")
        )
    if scope is TokenScope.PROXY and proxy_config is None:
        issues.append(Issue("proxy_config", "a proxy token needs the proxy config it reads"))
    if scope is not TokenScope.PROXY and proxy_config is not None:
        issues.append(
            Issue(
                "proxy_config",
                f"only proxy tokens are bound to a proxy config, not {scope} ones",
            )
        )
    if issues:
        raise ValidationError(issues)
    if flag_set is not None:
        check_name("flag_set", flag_set)
    if proxy_config is not None:
        check_name("proxy_config", proxy_config)


def _token(row: Row[Any], **changes: float) -> ApiToken:
    values: dict[str, Any] = {
        "name": row.name,
        "scope": TokenScope(row.scope),
        "flag_set": row.flag_set,
        "created_at": row.created_at,
        "last_used_at": row.last_used_at,
        "revoked_at": row.revoked_at,
        "proxy_config": row.proxy_config,
    }
    values.update(changes)
    return ApiToken(**values)


def _token_json(token: ApiToken) -> str:
    state: dict[str, Any] = {
        "name": token.name,
        "scope": str(token.scope),
        "flag_set": token.flag_set,
        "created_at": token.created_at,
        "revoked_at": token.revoked_at,
    }
    if token.proxy_config is not None:
        state["proxy_config"] = token.proxy_config
    return json.dumps(state, sort_keys=True)
