"""Proxy-configuration use cases: validated writes with preconditions, reads, history.

A proxy config is the document ``stageless proxy`` runs with, held by the control plane and
pushed to the proxies that name it (docs/proxy.md, "Configuration from the control plane").
Every write is validated with ``stageless.proxy.config.pushed_config`` first, as the proxy will
validate it: a bad document raises ``ValidationError`` (every path-level issue) and nothing
reaches the store. ``secret_env`` names are the proxy's environment variables, so here they
count as set (``ANY_ENVIRON``); the proxy reads them when it applies the document.

Documents hold routing-token signing secrets. ``view(..., secrets=False)`` replaces each
``"secret"`` string by a fingerprint (``redacted:sha256:…``), as the audit log shows them; a
write that carries such a placeholder as a secret is refused, so a document read without its
secrets cannot be written back by mistake with the placeholder as the key.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from stageless.errors import ConflictError, Issue, NotFoundError, ValidationError
from stageless.flags.decode import DocumentFormat, decode_document
from stageless.proxy.config import ANY_ENVIRON, ProxyConfig, pushed_config
from stageless.service.documents import canonical_json, load_stored
from stageless.service.errors import PreconditionFailedError
from stageless.service.flagsets import Precondition
from stageless.store import ProxyConfigRecord, ProxyConfigVersion, Store
from stageless.store.documents import REDACTED_PREFIX, redact_secrets

SOURCE = "proxy config"


@dataclass(frozen=True, slots=True)
class CheckedProxyConfig:
    """A validated proxy config: the parsed document, its canonical JSON and the model."""

    document: dict[str, Any]
    text: str
    config: ProxyConfig


@dataclass(frozen=True, slots=True)
class ProxyConfigView:
    """A proxy config as the API shows it: the record and its (possibly redacted) document."""

    record: ProxyConfigRecord
    document: dict[str, Any]


@dataclass(frozen=True, slots=True)
class WrittenProxyConfig:
    """The outcome of a write: the new record and whether it created the proxy config."""

    record: ProxyConfigRecord
    created: bool


def check_proxy_config(
    source: str | bytes,
    *,
    format: DocumentFormat | None = None,  # noqa: A002  # as stageless.flags names it
) -> CheckedProxyConfig:
    """Decode and validate ``source``; raise ``ValidationError`` listing every bad path."""
    document = decode_document(source, format)
    placeholders = list(_placeholders(document, ""))
    if placeholders:
        raise ValidationError(placeholders, source=SOURCE)
    config = pushed_config(document, local=None, source=SOURCE, environ=ANY_ENVIRON)
    try:
        text = canonical_json(document)
    except (TypeError, ValueError) as exc:  # a YAML date, .nan: valid YAML but not JSON
        raise ValidationError([Issue("", f"not representable as JSON: {exc}")]) from exc
    return CheckedProxyConfig(document, text, config)


def _placeholders(value: Any, path: str) -> Iterator[Issue]:
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if key == "secret" and isinstance(item, str) and item.startswith(REDACTED_PREFIX):
                yield Issue(
                    where,
                    "is a redacted placeholder (as the API shows secrets to tokens without "
                    "admin scope); put the secret itself, or use secret_env",
                )
            else:
                yield from _placeholders(item, where)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _placeholders(item, f"{path}[{index}]")


def document_of(text: str, *, secrets: bool) -> dict[str, Any]:
    """The object of a stored document, with its secrets or with them fingerprinted."""
    return load_stored(text if secrets else redact_secrets(text))


class ProxyConfigService:
    """Proxy-config use cases over a ``Store``; thread-safe (called from worker threads)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def list_all(self) -> list[ProxyConfigRecord]:
        return self._store.list_proxy_configs()

    def current(self, name: str) -> ProxyConfigRecord:
        """The stored record of ``name``; ``NotFoundError`` if absent."""
        return self._store.get_proxy_config(name)

    def view(self, name: str, *, secrets: bool) -> ProxyConfigView:
        record = self._store.get_proxy_config(name)
        return ProxyConfigView(record, document_of(record.document, secrets=secrets))

    def put(
        self,
        name: str,
        source: str | bytes,
        *,
        precondition: Precondition,
        actor: str,
        message: str = "",
        format: DocumentFormat | None = None,  # noqa: A002  # as stageless.flags names it
    ) -> WrittenProxyConfig:
        """Validate ``source`` and create or replace ``name`` under ``precondition``."""
        text = check_proxy_config(source, format=format).text
        store = self._store

        def create() -> ProxyConfigRecord:
            return store.create_proxy_config(name, text, actor=actor, message=message)

        def update(expected: str | None) -> ProxyConfigRecord:
            return store.update_proxy_config(
                name, text, expected=expected, actor=actor, message=message
            )

        if precondition.create_only:
            try:
                return WrittenProxyConfig(create(), True)
            except ConflictError as exc:
                raise PreconditionFailedError(f"proxy config {name!r} already exists") from exc
        if precondition.if_match is not None:
            expected = None if precondition.if_match == "*" else precondition.if_match
            try:
                return WrittenProxyConfig(update(expected), False)
            except NotFoundError as exc:
                raise PreconditionFailedError(f"proxy config {name!r} does not exist") from exc
            except ConflictError as exc:
                raise PreconditionFailedError(str(exc)) from exc
        return _create_or_replace(name, create, lambda: update(None))

    def delete(self, name: str, *, if_match: str | None, actor: str) -> None:
        expected = None if if_match in (None, "*") else if_match
        try:
            self._store.delete_proxy_config(name, expected=expected, actor=actor)
        except ConflictError as exc:
            raise PreconditionFailedError(str(exc)) from exc

    def versions(self, name: str, *, limit: int = 100) -> list[ProxyConfigVersion]:
        return self._store.list_proxy_config_versions(name, limit=limit)

    def version(self, name: str, version: int) -> ProxyConfigVersion:
        return self._store.get_proxy_config_version(name, version)


def _create_or_replace(
    name: str,
    create: Callable[[], ProxyConfigRecord],
    replace: Callable[[], ProxyConfigRecord],
) -> WrittenProxyConfig:
    for _ in range(3):  # a concurrent create or delete makes us go round
        try:
            return WrittenProxyConfig(replace(), False)
        except NotFoundError:
            pass
        try:
            return WrittenProxyConfig(create(), True)
        except ConflictError:
            continue
    raise ConflictError(f"proxy config {name!r} is being created and deleted concurrently")
