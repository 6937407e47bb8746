"""The proxy's YAML configuration: frozen pydantic models, validated hard, with path-level errors.

``load_config(path)`` / ``parse_config(text, source=...)`` return a :class:`ProxyConfig` or raise
:class:`~stageless.errors.ValidationError` listing the problems found, each with its path:
``services[0].split.weight: 140 is not between 0 and 100``. Unknown keys are errors (a typo would
otherwise leave a default silently in place) with a "did you mean" hint. Secrets never appear in
messages, ``repr`` or dumps (``SecretStr``, inputs hidden from pydantic's own errors).

The models also carry the derived values the hot path needs, computed once at load (the
validators warm each ``functools.cached_property``, which then reads like a plain attribute):
parsed ``(host, port)`` endpoints, the host index behind :meth:`ProxyConfig.service_for_host`,
the route table behind :meth:`ServiceConfig.route_for`, method sets as ``frozenset[bytes]``.

The per-service models live in :mod:`stageless.proxy.services` and are re-exported here.
Reloads (SIGHUP) may change everything except ``listen``, ``admin`` and ``workers``
(:mod:`stageless.proxy.configdiff`: ``reload_problems`` lists those when they change, and the
proxy then keeps its old configuration; ``diff_config`` gives the reload log line its content).

Configuration from the control plane: a file with a ``control_plane`` section sets only
``listen``, ``admin``, ``workers`` and ``control_plane``; everything else comes from the proxy
config the control plane pushes, a complete configuration of its own whose ``listen``,
``admin`` and ``workers`` are replaced by the file's (:func:`pushed_config`; the proxy side is
:mod:`stageless.proxy.remote`). Field reference:
docs/proxy.md (a test checks every field is there). Value checks and the translation of
pydantic's errors: :mod:`stageless.proxy.checks`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any
from urllib.parse import urlsplit

import pydantic
from pydantic import (
    AfterValidator,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationInfo,
    model_validator,
)

from stageless.errors import Issue, IssuesError, ValidationError, show, show_number
from stageless.flags.decode import decode_document
from stageless.proxy.checks import (
    EnvName,
    KeyId,
    ListenAddress,
    NonEmpty,
    Seconds,
    between,
    duplicates,
    parse_address,
    raise_issues,
)
from stageless.proxy.services import (
    DEFAULT_ROUTE,
    DEFAULT_STICKY_COOKIE,
    CompareConfig,
    ConfigModel,
    HealthCheck,
    RouteConfig,
    ServiceConfig,
    ShadowConfig,
    SplitConfig,
    StickyConfig,
    UpstreamGroup,
)
from stageless.routing.tokens import MIN_SECRET_BYTES, SigningKey
from stageless.validation import issues_from

__all__ = [
    "ANY_ENVIRON",
    "DEFAULT_ROUTE",
    "DEFAULT_STICKY_COOKIE",
    "LOCAL_FIELDS",
    "RESTART_FIELDS",
    "BatchConfig",
    "CompareConfig",
    "ControlPlaneConfig",
    "HealthCheck",
    "Limits",
    "PoolConfig",
    "ProxyConfig",
    "RouteConfig",
    "ServiceConfig",
    "ShadowConfig",
    "SigningKeyConfig",
    "SplitConfig",
    "StickyConfig",
    "Timeouts",
    "UpstreamGroup",
    "load_config",
    "parse_address",
    "parse_config",
    "pushed_config",
    "validate_config",
]

RESTART_FIELDS = ("listen", "admin", "workers")
"""Top-level fields a reload cannot change: they need a restart."""
LOCAL_FIELDS = (*RESTART_FIELDS, "control_plane")
"""The only top-level fields of a file with ``control_plane``: the rest is pushed."""
# Proxy-config names as the control plane accepts them (its store's name rule).
_CONFIG_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


# -- the models ------------------------------------------------------------------------------


class Timeouts(ConfigModel):
    """Timeouts in seconds; an upstream timeout is answered 504, a client one closes."""

    connect_s: Seconds = 2.0
    read_s: Seconds = 30.0
    total_s: Seconds = 60.0
    client_header_s: Seconds = 10.0
    client_idle_s: Seconds = 75.0
    shutdown_grace_s: Seconds = 10.0

    @model_validator(mode="after")
    def _check(self) -> Timeouts:
        raise_issues(
            [
                Issue(
                    name,
                    f"{show_number(getattr(self, name))} is more than total_s "
                    f"({show_number(self.total_s)}); it could never fire",
                )
                for name in ("connect_s", "read_s")
                if getattr(self, name) > self.total_s
            ]
        )
        return self


class Limits(ConfigModel):
    """Per-connection and per-process limits on clients."""

    max_header_bytes: Annotated[int, AfterValidator(between(1024, 1 << 20))] = 32768
    max_headers: Annotated[int, AfterValidator(between(1, 10_000))] = 100
    max_connections: Annotated[int, AfterValidator(between(1, 1_000_000))] = 10_000


class PoolConfig(ConfigModel):
    """Keep-alive connections to upstream addresses."""

    max_idle_per_address: Annotated[int, AfterValidator(between(0, 100_000))] = 64
    idle_timeout_s: Seconds = 30.0


class BatchConfig(ConfigModel):
    """The batch file the canary analysis reads (JSON lines)."""

    path: NonEmpty | None = None
    interval_s: Seconds = 10.0

    @cached_property
    def file(self) -> Path | None:
        """``path`` as a ``Path`` (relative to the proxy's working directory), or None."""
        return None if self.path is None else Path(self.path)


class SigningKeyConfig(ConfigModel):
    """A routing-token key: ``secret`` inline or ``secret_env`` (read at load), >= 32 bytes."""

    id: KeyId
    secret: SecretStr | None = None
    secret_env: EnvName | None = None
    _key: bytes = PrivateAttr(default=b"")

    @model_validator(mode="after")
    def _resolve(self, info: ValidationInfo) -> SigningKeyConfig:
        if (self.secret is None) == (self.secret_env is None):
            raise ValueError("expected exactly one of secret or secret_env")
        if self.secret is not None:
            key, where = self.secret.get_secret_value().encode("utf-8"), "secret"
            problem = f"is {len(key)} bytes long"
        else:
            assert self.secret_env is not None  # noqa: S101  # exactly one of the two is set
            environ = (info.context or {}).get("environ", os.environ)
            value = environ.get(self.secret_env)
            where = "secret_env"
            if value is None:
                raise IssuesError(
                    [Issue(where, f"the environment variable {self.secret_env} is not set")]
                )
            key = value.encode("utf-8")
            problem = f"the value of {self.secret_env} is {len(key)} bytes long"
        if len(key) < MIN_SECRET_BYTES:
            raise IssuesError(
                [Issue(where, f"{problem}; expected at least {MIN_SECRET_BYTES} bytes")]
            )
        self._key = key
        return self

    @property
    def key(self) -> bytes:
        """The secret bytes (from ``secret`` or the environment variable)."""
        return self._key

    def signing_key(self) -> SigningKey:
        """This key as :mod:`stageless.routing.tokens` takes it (for issuing and verifying)."""
        return SigningKey(self.id, self._key)


def _control_plane_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{value!r} is not an http:// or https:// URL with a host")
    if parts.query or parts.fragment:
        raise ValueError(f"{value!r} has a query or fragment; expected the server's base URL")
    return value.rstrip("/")


def _config_name(value: str) -> str:
    if not _CONFIG_NAME.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid proxy config name; expected 1-128 letters, digits, '.', "
            "'_' or '-', starting with a letter or digit"
        )
    return value


class ControlPlaneConfig(ConfigModel):
    """Where a proxy driven by the control plane gets its configuration (docs/proxy.md)."""

    url: Annotated[str, AfterValidator(_control_plane_url)]
    token: SecretStr | None = None
    token_env: EnvName | None = None
    config: Annotated[str, AfterValidator(_config_name)]
    cache_path: NonEmpty | None = None
    _token: str = PrivateAttr(default="")

    @model_validator(mode="after")
    def _resolve(self, info: ValidationInfo) -> ControlPlaneConfig:
        if (self.token is None) == (self.token_env is None):
            raise ValueError("expected exactly one of token or token_env")
        if self.token is not None:
            value, where = self.token.get_secret_value(), "token"
        else:
            assert self.token_env is not None  # noqa: S101  # exactly one of the two is set
            environ = (info.context or {}).get("environ", os.environ)
            found = environ.get(self.token_env)
            where = "token_env"
            if found is None:
                raise IssuesError(
                    [Issue(where, f"the environment variable {self.token_env} is not set")]
                )
            value = found
        if not value.strip():
            raise IssuesError([Issue(where, "the token is empty")])
        self._token = value.strip()
        return self

    @property
    def bearer(self) -> str:
        """The API token (from ``token`` or the environment variable)."""
        return self._token

    @cached_property
    def cache_file(self) -> Path | None:
        """``cache_path`` as a ``Path`` (relative to the proxy's working directory), or None."""
        return None if self.cache_path is None else Path(self.cache_path)


class ProxyConfig(ConfigModel):
    """The whole proxy configuration (one YAML file)."""

    listen: ListenAddress = "127.0.0.1:8080"
    admin: ListenAddress | None = "127.0.0.1:9901"
    workers: Annotated[int, AfterValidator(between(1, 1024))] = 1
    signing_keys: Annotated[tuple[SigningKeyConfig, ...], Field(strict=False)] = ()
    batches: BatchConfig = Field(default_factory=BatchConfig)
    timeouts: Timeouts = Field(default_factory=Timeouts)
    limits: Limits = Field(default_factory=Limits)
    pool: PoolConfig = Field(default_factory=PoolConfig)
    services: Annotated[tuple[ServiceConfig, ...], Field(strict=False)] = ()
    control_plane: ControlPlaneConfig | None = None

    @model_validator(mode="after")
    def _check(self) -> ProxyConfig:
        issues = duplicates(tuple(key.id for key in self.signing_keys), "signing_keys", ".id")
        issues += list(self._source_issues())
        issues += duplicates(tuple(s.name for s in self.services), "services", ".name")
        default: tuple[int, str] | None = None
        host_owner: dict[str, tuple[int, str]] = {}
        for index, service in enumerate(self.services):
            path = f"services[{index}]"
            if not service.hosts:
                if default is not None:
                    issues.append(
                        Issue(
                            f"{path}.hosts",
                            f"[] makes {service.name!r} a second default service "
                            f"(services[{default[0]}] {default[1]!r} is the default); "
                            "list its hosts",
                        )
                    )
                else:
                    default = (index, service.name)
            for host_index, host in enumerate(service.hosts):
                owner = host_owner.setdefault(host, (index, service.name))
                if owner[0] != index:
                    issues.append(
                        Issue(
                            f"{path}.hosts[{host_index}]",
                            f"{host!r} is already served by services[{owner[0]}] ({owner[1]!r})",
                        )
                    )
            if service.testers and not self.signing_keys:
                issues.append(
                    Issue(
                        f"{path}.testers",
                        "is true but signing_keys is empty, so no routing token could be "
                        "verified; add a key or set testers: false",
                    )
                )
        issues += _health_conflicts(self.services)
        if self.admin is not None and _same_socket(self.listen, self.admin):
            issues.append(Issue("admin", f"{self.admin!r} collides with listen {self.listen!r}"))
        raise_issues(issues)
        _ = self.host_index, self.default_service, self.verify_keys
        return self

    def _source_issues(self) -> Iterator[Issue]:
        """A complete file needs services; a file naming a control plane sets nothing else."""
        if self.control_plane is None:
            if "services" not in self.model_fields_set:
                yield Issue("services", "is required")
            elif not self.services:
                yield Issue("services", "expected at least one service")
            return
        for name in type(self).model_fields:
            if name in self.model_fields_set and name not in LOCAL_FIELDS:
                yield Issue(
                    name,
                    f"comes from proxy config {self.control_plane.config!r} on the control "
                    "plane when control_plane is set; only listen, admin and workers stay in "
                    "this file",
                )

    def listen_address(self) -> tuple[str, int]:
        """``listen`` as ``(host, port)``."""
        return parse_address(self.listen, any_port=True)

    def admin_address(self) -> tuple[str, int]:
        """``admin`` as ``(host, port)``; ValueError when ``admin`` is null."""
        if self.admin is None:
            raise ValueError("admin is null: the admin listener is disabled")
        return parse_address(self.admin, any_port=True)

    @cached_property
    def host_index(self) -> Mapping[bytes, ServiceConfig]:
        """Lower-case host (no port) as bytes -> its service."""
        return MappingProxyType(
            {host.encode("ascii"): s for s in self.services for host in s.hosts}
        )

    @cached_property
    def default_service(self) -> ServiceConfig | None:
        """The service with ``hosts: []``, which takes requests no other service's hosts match."""
        return next((s for s in self.services if not s.hosts), None)

    @cached_property
    def services_by_name(self) -> Mapping[str, ServiceConfig]:
        return MappingProxyType({service.name: service for service in self.services})

    @cached_property
    def health_checks(self) -> Mapping[tuple[str, int], HealthCheck]:
        """Every checked upstream address -> its health check (one per address)."""
        return MappingProxyType(
            {
                endpoint: service.health_check
                for service in self.services
                if service.health_check is not None
                for group in (service.stable, service.candidate)
                for endpoint in group.endpoints
            }
        )

    @cached_property
    def verify_keys(self) -> Mapping[str, bytes]:
        """Key id -> secret, every key (they all verify routing tokens)."""
        return MappingProxyType({key.id: key.key for key in self.signing_keys})

    @property
    def signer(self) -> SigningKeyConfig | None:
        """The key that signs new routing tokens (the first), or None without keys."""
        return self.signing_keys[0] if self.signing_keys else None

    def service_for_host(self, host: bytes) -> ServiceConfig | None:
        """The service for a request's raw Host header (any case, with or without a port).

        An exact match costs one dict lookup; otherwise the value is lower-cased and its port
        dropped; no match gives the default service, or None if there is none.
        """
        service = self.host_index.get(host)
        if service is not None:
            return service
        name = host.lower()
        name = name[: name.find(b"]") + 1] if name.startswith(b"[") else name.partition(b":")[0]
        return self.host_index.get(name.rstrip(b"."), self.default_service)


def _health_conflicts(services: tuple[ServiceConfig, ...]) -> list[Issue]:
    """One health state per address: services sharing an address must check it the same way."""
    first: dict[tuple[str, int], tuple[int, HealthCheck | None]] = {}
    issues = []
    for index, service in enumerate(services):
        for version in ("stable", "candidate"):
            group: UpstreamGroup = getattr(service, version)
            for address_index, endpoint in enumerate(group.endpoints):
                owner, check = first.setdefault(endpoint, (index, service.health_check))
                if owner != index and check != service.health_check:
                    issues.append(
                        Issue(
                            f"services[{index}].{version}.addresses[{address_index}]",
                            f"{group.addresses[address_index]!r} is also an address of "
                            f"services[{owner}] ({services[owner].name!r}) with another "
                            "health_check; an address has one health check",
                        )
                    )
    return issues


def _same_socket(first: str, second: str) -> bool:
    """Would two listening addresses collide? Port 0 (any free port) never does."""
    host_a, port_a = parse_address(first, any_port=True)
    host_b, port_b = parse_address(second, any_port=True)
    wildcard = {"0.0.0.0", "::"}  # noqa: S104  # comparing, not binding
    same_host = host_a == host_b or host_a in wildcard or host_b in wildcard
    return port_a == port_b != 0 and same_host


# -- loading ---------------------------------------------------------------------------------


def load_config(path: Path, *, environ: Mapping[str, str] | None = None) -> ProxyConfig:
    """Read and validate the YAML file at ``path`` (``secret_env`` read from ``environ``,
    default ``os.environ``). Raises ``ValidationError`` naming every bad path."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        issue = Issue("", f"cannot read the file: {reason}")
        raise ValidationError([issue], source=str(path)) from None
    return parse_config(text, source=str(path), environ=environ)


def parse_config(
    text: str, *, source: str, environ: Mapping[str, str] | None = None
) -> ProxyConfig:
    """Validate YAML ``text``; ``source`` names it in errors (a file name, ``<push>``...)."""
    try:
        data = decode_document(text, "yaml")
    except ValidationError as exc:
        raise ValidationError(exc.issues, source=source) from None
    return validate_config(data, source=source, environ=environ)


def validate_config(
    data: Any, *, source: str, environ: Mapping[str, str] | None = None
) -> ProxyConfig:
    """Validate an already decoded document (the mapping a YAML or JSON text holds)."""
    if data is None:
        raise ValidationError(
            [Issue("", "the document is empty; expected a mapping with at least 'services'")],
            source=source,
        )
    if not isinstance(data, Mapping):
        raise ValidationError(
            [Issue("", f"expected a mapping of proxy settings, got {show(data)}")],
            source=source,
        )
    context = {"environ": os.environ if environ is None else environ}
    try:
        return ProxyConfig.model_validate(data, context=context)
    except pydantic.ValidationError as exc:
        # from None: pydantic's error would show raw inputs, secrets included, in tracebacks
        raise ValidationError(issues_from(exc, ProxyConfig), source=source) from None


class _AnyEnviron(Mapping[str, str]):
    """Every environment variable set, to a placeholder long enough for any secret."""

    def __getitem__(self, key: str) -> str:
        return "placeholder-for-a-value-from-the-proxy-environment"

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


ANY_ENVIRON: Mapping[str, str] = _AnyEnviron()
"""For validating a document meant for another machine (the control plane validating what it
will push): every ``secret_env`` counts as set; the proxy reads the real values when it
applies the document."""


def pushed_config(
    document: Any,
    *,
    local: ProxyConfig | None,
    source: str,
    environ: Mapping[str, str] | None = None,
) -> ProxyConfig:
    """Validate a configuration the control plane pushes (or stores, to push).

    It is a complete configuration (``services`` and the rest) that names no control plane.
    With ``local`` (the proxy's own file), its ``listen``, ``admin`` and ``workers`` are
    replaced by the file's: those belong to the machine, not to the pushed document.
    """
    if isinstance(document, Mapping) and "control_plane" in document:
        raise ValidationError(
            [
                Issue(
                    "control_plane",
                    "a configuration pushed by the control plane cannot name a control plane",
                )
            ],
            source=source,
        )
    data = document
    if local is not None and isinstance(document, Mapping):
        data = {**document, **{name: getattr(local, name) for name in RESTART_FIELDS}}
    return validate_config(data, source=source, environ=environ)
