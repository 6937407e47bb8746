"""The store's seam: the ``Store`` Protocol and the records it returns.

Every backend (SQLite, PostgreSQL) implements the same Protocol and passes the same contract
tests (tests/store/test_contract*.py). Records are frozen dataclasses; timestamps are Unix
seconds from the store's ``Clock``; documents (flag sets, proxy configs) are JSON text, stored as
given (validating them is the service layer's job, with ``stageless.flags`` and
``stageless.proxy.config``).

Two kinds of versioned document live here, with the same operations and guarantees
(``ResourceKind``): flag sets and proxy configurations. Their names are separate namespaces.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from stageless.errors import ConflictError, Issue, ValidationError

#: Names of flag sets, proxy configs and tokens: they appear in URLs, audit targets and
#: notification payloads.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def check_name(field: str, value: str) -> None:
    """Raise ``ValidationError`` naming ``field`` unless ``value`` is a well-formed name."""
    if not NAME_PATTERN.fullmatch(value):
        raise ValidationError(
            [
                Issue(
                    field,
                    f"{value!r} is not a valid name; expected 1–128 letters, digits, '.', '_' "
                    "or '-', starting with a letter or digit",
                )
            ]
        )


class TokenScope(StrEnum):
    """What a token may do. ``SDK`` tokens only evaluate and stream, within one flag set;
    ``PROXY`` tokens only read and stream one proxy configuration."""

    ADMIN = "admin"
    WRITE = "write"
    READ = "read"
    SDK = "sdk"
    PROXY = "proxy"


class ResourceKind(StrEnum):
    """The kinds of versioned document the store keeps (and announces changes of)."""

    FLAG_SET = "flag_set"
    PROXY_CONFIG = "proxy_config"


class AuditAction(StrEnum):
    """The kinds of change the audit log records."""

    FLAG_SET_CREATE = "flag_set.create"
    FLAG_SET_UPDATE = "flag_set.update"
    FLAG_SET_RESTORE = "flag_set.restore"
    FLAG_SET_DELETE = "flag_set.delete"
    PROXY_CONFIG_CREATE = "proxy_config.create"
    PROXY_CONFIG_UPDATE = "proxy_config.update"
    PROXY_CONFIG_DELETE = "proxy_config.delete"
    TOKEN_CREATE = "token.create"  # noqa: S105 (an action name, not a secret)
    TOKEN_REVOKE = "token.revoke"  # noqa: S105 (an action name, not a secret)
    ROLLOUT_CREATE = "rollout.create"
    ROLLOUT_PAUSE = "rollout.pause"
    ROLLOUT_RESUME = "rollout.resume"
    ROLLOUT_PROMOTE = "rollout.promote"
    ROLLOUT_ABORT = "rollout.abort"
    ROLLOUT_APPROVE = "rollout.approve"
    ROLLOUT_TRANSITION = "rollout.transition"


class RolloutAction(StrEnum):
    """What a person may ask of a running rollout (recorded, then carried out by the instance
    running it)."""

    PAUSE = "pause"
    RESUME = "resume"
    PROMOTE = "promote"
    ABORT = "abort"
    APPROVE = "approve"

    @property
    def audit_action(self) -> AuditAction:
        return AuditAction(f"rollout.{self.value}")


@dataclass(frozen=True, slots=True)
class FlagSetRecord:
    """The current state of one flag set."""

    name: str
    document: str
    version: int
    etag: str
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class FlagSetVersion:
    """One entry of a flag set's history: the full document as it was after that change."""

    flag_set: str
    version: int
    document: str
    etag: str
    author: str
    message: str
    created_at: float


@dataclass(frozen=True, slots=True)
class ProxyConfigRecord:
    """The current state of one proxy configuration (its document is JSON text)."""

    name: str
    document: str
    version: int
    etag: str
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class ProxyConfigVersion:
    """One entry of a proxy configuration's history, with the full document of that version."""

    proxy_config: str
    version: int
    document: str
    etag: str
    author: str
    message: str
    created_at: float


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One append-only audit record. ``before``/``after`` are JSON text, ``None`` for nothing.

    For flag sets they are the documents; for proxy configs, the documents with every
    ``"secret"`` value replaced by a fingerprint (``stageless.store.documents.redact_secrets``);
    for tokens, the token's metadata (never its hash).
    """

    id: int
    ts: float
    actor: str
    action: AuditAction
    target: str
    before: str | None
    after: str | None


@dataclass(frozen=True, slots=True)
class ApiToken:
    """A token's metadata. The plaintext is never stored, only its SHA-256."""

    name: str
    scope: TokenScope
    flag_set: str | None
    created_at: float
    last_used_at: float | None
    revoked_at: float | None
    proxy_config: str | None = None  # the proxy configuration a PROXY token is bound to

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


@dataclass(frozen=True, slots=True)
class NewToken:
    """A freshly created token: the only time its plaintext exists outside the caller's hands."""

    token: ApiToken
    plaintext: str

    def __repr__(self) -> str:
        return f"NewToken(token={self.token!r}, plaintext='***')"


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """A document changed: it is now at ``version``, or, if ``deleted``, ``version`` was removed.

    ``kind`` says which namespace ``name`` is in (a flag set unless said otherwise).
    """

    name: str
    version: int
    deleted: bool = False
    kind: ResourceKind = ResourceKind.FLAG_SET

    @property
    def flag_set(self) -> str:
        """``name``: the flag set's name, for flag-set events (the original field name)."""
        return self.name


@dataclass(frozen=True, slots=True)
class NewRollout:
    """A rollout to create: its plan text (validated by the caller) and initial state (JSON)."""

    id: str
    service: str
    plan: str
    state: str
    phase: str
    step: int = 0


@dataclass(frozen=True, slots=True)
class RolloutRecord:
    """One rollout as stored. ``state`` and ``judge`` are JSON text; ``seq`` counts its
    transitions; ``finished_at`` is set once it ended; ``lease_owner`` is the instance running
    it until ``lease_expires``."""

    id: str
    service: str
    plan: str
    state: str
    phase: str
    step: int
    seq: int
    judge: str | None
    created_by: str
    created_at: float
    updated_at: float
    finished_at: float | None
    lease_owner: str | None
    lease_expires: float | None

    @property
    def finished(self) -> bool:
        return self.finished_at is not None


@dataclass(frozen=True, slots=True)
class RolloutRequest:
    """A person's request to a rollout; ``handled_at`` is set once the runner acted on it.
    ``step`` is the step an approval is for."""

    id: int
    rollout_id: str
    action: RolloutAction
    actor: str
    step: int | None
    reason: str
    at: float
    handled_at: float | None


@dataclass(frozen=True, slots=True)
class RolloutTransition:
    """One entry of a rollout's history; ``event`` and ``commands`` are JSON text."""

    rollout_id: str
    seq: int
    at: float
    from_phase: str
    to_phase: str
    step: int
    event: str
    commands: str
    reason: str
    actor: str


@dataclass(frozen=True, slots=True)
class TransitionWrite:
    """What a transition changes: the new state (JSON), phase and step, the history row's
    event, commands (JSON) and reason, the requests it handled, whether the rollout ended.
    ``audit`` adds an audit entry (for transitions that change the phase or the step)."""

    state: str
    phase: str
    step: int
    event: str
    commands: str
    reason: str
    actor: str
    finished: bool = False
    handled: tuple[int, ...] = ()
    audit: bool = True


@dataclass(frozen=True, slots=True)
class ProxyReport:
    """One report of a proxy: its batches (a JSON array) and diff delta (JSON, or ``None``)."""

    id: int
    proxy_config: str
    received_at: float
    batches: str
    diff: str | None


class LeaseLostError(ConflictError):
    """Another instance runs this rollout now (or it ended): this one must stop running it."""


#: A change listener. Called on a store thread; it must return quickly (hand the event over,
#: e.g. with ``loop.call_soon_threadsafe`` or ``queue.put``), and exceptions it raises are logged.
Listener = Callable[[ChangeEvent], None]


class Subscription(Protocol):
    """A registered listener; ``close()`` (or leaving a ``with`` block) stops its deliveries."""

    def close(self) -> None:
        """Unregister the listener (idempotent)."""
        ...

    def __enter__(self) -> Subscription: ...

    def __exit__(self, *exc_info: object) -> None: ...


class Store(Protocol):
    """The control plane's durable state. Sync and thread-safe; see ``stageless.store``.

    Writes of a flag set, its version row and its audit entry are one transaction. ``expected``
    is the optimistic-concurrency precondition: a version number (``int``), an ETag (``str``)
    or ``None`` for an unconditional write; a mismatch raises ``ConflictError`` and changes
    nothing. Unknown names raise ``NotFoundError``; database failures raise ``StoreError``.
    """

    # Flag sets.
    def list_flag_sets(self) -> list[FlagSetRecord]:
        """Every flag set, by name."""
        ...

    def get_flag_set(self, name: str) -> FlagSetRecord: ...

    def create_flag_set(
        self, name: str, document: str, *, actor: str, message: str = ""
    ) -> FlagSetRecord:
        """Create ``name``; ``ConflictError`` if it exists. Versions continue after a delete."""
        ...

    def update_flag_set(
        self, name: str, document: str, *, expected: int | str | None, actor: str, message: str = ""
    ) -> FlagSetRecord: ...

    def delete_flag_set(self, name: str, *, expected: int | str | None, actor: str) -> None:
        """Remove the flag set; its history stays readable and its audit entries stay."""
        ...

    # History.
    def list_versions(self, name: str, *, limit: int = 100) -> list[FlagSetVersion]:
        """Newest first; ``NotFoundError`` if ``name`` never existed."""
        ...

    def get_version(self, name: str, version: int) -> FlagSetVersion: ...

    def restore_version(
        self, name: str, version: int, *, expected: int | str | None, actor: str
    ) -> FlagSetRecord:
        """Make a new version whose document is that of ``version``."""
        ...

    # Proxy configurations: the same operations and guarantees as flag sets (no restore).
    def list_proxy_configs(self) -> list[ProxyConfigRecord]: ...

    def get_proxy_config(self, name: str) -> ProxyConfigRecord: ...

    def create_proxy_config(
        self, name: str, document: str, *, actor: str, message: str = ""
    ) -> ProxyConfigRecord: ...

    def update_proxy_config(
        self, name: str, document: str, *, expected: int | str | None, actor: str, message: str = ""
    ) -> ProxyConfigRecord: ...

    def delete_proxy_config(self, name: str, *, expected: int | str | None, actor: str) -> None: ...

    def list_proxy_config_versions(
        self, name: str, *, limit: int = 100
    ) -> list[ProxyConfigVersion]: ...

    def get_proxy_config_version(self, name: str, version: int) -> ProxyConfigVersion: ...

    # Audit log (read-only: nothing edits or deletes an entry).
    def list_audit(
        self, *, after_id: int = 0, limit: int = 100, target: str | None = None
    ) -> list[AuditEntry]:
        """Entries with ``id > after_id``, oldest first (page with the last id seen)."""
        ...

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
        """Create a token; ``flag_set`` is required for, and only for, ``TokenScope.SDK``, and
        ``proxy_config`` for, and only for, ``TokenScope.PROXY``."""
        ...

    def authenticate(self, plaintext: str) -> ApiToken | None:
        """The live token with this plaintext, or ``None`` (unknown or revoked)."""
        ...

    def list_tokens(self) -> list[ApiToken]: ...

    def revoke_token(self, name: str, *, actor: str) -> ApiToken: ...

    # Rollouts. Writes by the instance running a rollout name it as ``owner`` and raise
    # ``LeaseLostError`` unless it holds the rollout's lease.
    def create_rollout(self, rollout: NewRollout, *, actor: str) -> RolloutRecord:
        """Create a rollout; ``ConflictError`` if ``id`` exists or the service has an
        unfinished rollout."""
        ...

    def get_rollout(self, rollout_id: str) -> RolloutRecord: ...

    def list_rollouts(
        self, *, unfinished: bool | None = None, limit: int = 100
    ) -> list[RolloutRecord]:
        """Newest first; ``unfinished`` True: only running ones, False: only finished ones."""
        ...

    def get_rollout_with_evidence(self, rollout_id: str) -> tuple[RolloutRecord, int]:
        """The rollout and its current step's evidence count, read together (consistent with
        the judge decision stored with that evidence); ``NotFoundError`` if there is none."""
        ...

    def list_rollouts_with_evidence(
        self, *, unfinished: bool | None = None, limit: int = 100
    ) -> list[tuple[RolloutRecord, int]]:
        """``list_rollouts``, each with its current step's evidence count read with it."""
        ...

    def add_rollout_request(
        self,
        rollout_id: str,
        action: RolloutAction,
        *,
        actor: str,
        step: int | None = None,
        reason: str = "",
    ) -> RolloutRequest:
        """Record (and audit) a request; ``ConflictError`` if the rollout has finished."""
        ...

    def pending_rollout_requests(self, rollout_id: str) -> list[RolloutRequest]:
        """Requests not handled yet, oldest first."""
        ...

    def acquire_rollout_lease(self, rollout_id: str, owner: str, *, ttl_s: float) -> bool:
        """Take or renew the lease for ``ttl_s`` seconds: True if ``owner`` holds it now (it was
        free, expired or already its own); False if another owner holds it, or it finished."""
        ...

    def release_rollout_lease(self, rollout_id: str, owner: str) -> None: ...

    def record_rollout_transition(
        self, rollout_id: str, write: TransitionWrite, *, owner: str
    ) -> RolloutRecord:
        """One transaction: the new state, a history row, requests marked handled, an audit
        entry (``write.audit``), the end and lease release (``write.finished``)."""
        ...

    def list_rollout_transitions(
        self, rollout_id: str, *, after_seq: int = 0, limit: int = 100
    ) -> list[RolloutTransition]:
        """Oldest first, from ``after_seq + 1``."""
        ...

    def add_rollout_evidence(
        self, rollout_id: str, step: int, batches: list[str], *, judge: str | None, owner: str
    ) -> int:
        """Append batches (JSON text each) the judge of ``step`` consumed, and set the latest
        judge decision (JSON); return the step's evidence count."""
        ...

    def list_rollout_evidence(self, rollout_id: str, step: int) -> list[str]:
        """The batches of ``step``, in the order they were added."""
        ...

    def count_rollout_evidence(self, rollout_id: str, step: int) -> int: ...

    # Proxy reports.
    def add_proxy_report(
        self, proxy_config: str, batches: str, diff: str | None, *, keep_s: float
    ) -> ProxyReport:
        """Store a report (durably) and delete every report older than ``keep_s`` seconds."""
        ...

    def list_proxy_reports(self, proxy_config: str, *, since: float) -> list[ProxyReport]:
        """Reports received at or after ``since``, oldest first."""
        ...

    # Change notifications and lifecycle.
    def versions(self) -> dict[str, int]:
        """Every flag set's current version, by name (cheap: reads no documents)."""
        ...

    def subscribe(
        self, listener: Listener, *, kind: ResourceKind | None = ResourceKind.FLAG_SET
    ) -> Subscription:
        """Call ``listener`` for every later change of ``kind`` (flag sets by default; ``None``:
        every kind), from this or any other instance."""
        ...

    def ping(self) -> None:
        """Return if the database answers; raise ``StoreError`` if not (for health checks)."""
        ...

    def close(self) -> None:
        """Stop background threads and close connections (idempotent)."""
        ...
