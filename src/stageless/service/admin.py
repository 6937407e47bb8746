"""Token and audit use cases: bootstrap and manage API tokens, read the audit log."""

from __future__ import annotations

from stageless.store import ApiToken, AuditEntry, NewToken, Store, TokenScope, flag_set_target


class TokenService:
    """API tokens: only hashes are stored; the plaintext exists once, in ``create``'s result."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def create(
        self,
        name: str,
        scope: TokenScope | str,
        *,
        flag_set: str | None = None,
        proxy_config: str | None = None,
        actor: str,
    ) -> NewToken:
        """A new token; sdk tokens name their ``flag_set``, proxy tokens their ``proxy_config``."""
        return self._store.create_token(
            name, TokenScope(scope), flag_set=flag_set, proxy_config=proxy_config, actor=actor
        )

    def authenticate(self, plaintext: str) -> ApiToken | None:
        return self._store.authenticate(plaintext)

    def list_all(self) -> list[ApiToken]:
        return self._store.list_tokens()

    def revoke(self, name: str, *, actor: str) -> ApiToken:
        return self._store.revoke_token(name, actor=actor)


class AuditService:
    """The append-only audit log, read oldest first in pages."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def entries(
        self, *, after_id: int = 0, limit: int = 100, target: str | None = None
    ) -> list[AuditEntry]:
        return self._store.list_audit(after_id=after_id, limit=limit, target=target)

    @staticmethod
    def flag_set_target(name: str) -> str:
        """The audit target naming flag set ``name`` (``flag_set:<name>``)."""
        return flag_set_target(name)
