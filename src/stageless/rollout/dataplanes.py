"""Settings of the data-plane drivers a plan can name: ``haproxy``, ``nginx`` and ``gateway``.

A plan with ``driver: haproxy`` carries a ``haproxy:`` block, ``driver: nginx`` an ``nginx:``
block and ``driver: gateway-api`` a ``gateway:`` block (:class:`~stageless.rollout.plan.
RolloutPlan` checks that the block matches the driver). Frozen pydantic models like the rest of
the plan; nothing here touches a file or a socket: the drivers (:mod:`stageless.drivers`) do.

Tester routing on these data planes: none of them can check a token's HMAC signature, so the
driver does. ``testers.tokens_file`` lists the tokens handed to testers (``stageless
tester-token`` output, one per line); the driver verifies each one with the keys named in
``testers.signing_keys`` (secrets read from environment variables, never written in a plan) and
gives the data plane the exact strings that are valid now. The data plane then matches the
``x-stageless-route`` header or the ``stageless-route`` cookie against that short list. Expired
tokens are removed at the next refresh (every apply and every batch read).
"""

from __future__ import annotations

import re
from typing import Annotated, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from stageless.rollout.checks import Address, Duration, between

__all__ = [
    "BackendRef",
    "GatewaySettings",
    "HAProxySettings",
    "NginxSettings",
    "ParentRef",
    "PrometheusSettings",
    "SigningKeyRef",
    "TesterTokens",
]

_ENV = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_KEY_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_DNS_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_HOSTNAME = re.compile(r"(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_HAPROXY_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,63}")


def _pattern(regex: re.Pattern[str], expected: str) -> AfterValidator:
    def check(value: str) -> str:
        if not regex.fullmatch(value):
            raise ValueError(f"{value!r} is not valid; expected {expected}")
        return value

    return AfterValidator(check)


def _path(value: str) -> str:
    if not value.strip() or "\x00" in value or "\n" in value:
        raise ValueError(f"{value!r} is not a file path")
    return value


FilePath = Annotated[str, AfterValidator(_path), Field(min_length=1)]
"""A file path on the machine that runs the rollout (the control plane)."""
EnvName = Annotated[
    str,
    _pattern(_ENV, "the name of an environment variable (letters, digits, _)"),
    Field(json_schema_extra={"pattern": f"^{_ENV.pattern}$"}),
]
KeyId = Annotated[
    str,
    _pattern(_KEY_ID, "1 to 64 characters of A-Z a-z 0-9 . _ : -"),
    Field(json_schema_extra={"pattern": f"^{_KEY_ID.pattern}$"}),
]
DnsLabel = Annotated[
    str,
    _pattern(_DNS_LABEL, "a DNS label: 1-63 lower-case letters, digits or '-'"),
    Field(json_schema_extra={"pattern": f"^{_DNS_LABEL.pattern}$"}),
]
DnsName = Annotated[
    str,
    _pattern(_DNS_NAME, "a DNS name: lower-case letters, digits, '-' and '.'"),
    Field(max_length=253, json_schema_extra={"pattern": f"^{_DNS_NAME.pattern}$"}),
]
Hostname = Annotated[
    str,
    _pattern(_HOSTNAME, "a host name (lower-case letters, digits, '-', '.'), '*.' allowed first"),
    Field(max_length=253, json_schema_extra={"pattern": f"^{_HOSTNAME.pattern}$"}),
]
HAProxyName = Annotated[
    str,
    _pattern(_HAPROXY_NAME, "1-63 letters, digits, '_', '.', ':' or '-'"),
    Field(json_schema_extra={"pattern": f"^{_HAPROXY_NAME.pattern}$"}),
]
Interval = Annotated[
    float, AfterValidator(between(1, 3600)), Field(json_schema_extra={"minimum": 1})
]
"""Seconds per batch, 1 to 3600."""
Port = Annotated[int, AfterValidator(between(1, 65535)), Field(json_schema_extra={"minimum": 1})]


class _Model(BaseModel):
    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        strict=True,
        allow_inf_nan=False,
        use_attribute_docstrings=True,
    )


class SigningKeyRef(_Model):
    """A routing-token key whose secret is read from an environment variable."""

    id: KeyId
    """The key id written into the tokens it signed."""
    secret_env: EnvName
    """The environment variable (of the control plane's process) holding the secret."""


class TesterTokens(_Model):
    """Where the tester tokens come from and how the driver verifies them."""

    __test__: ClassVar[bool] = False  # not a pytest test class despite its name

    tokens_file: FilePath
    """A file of routing tokens, one per line (`#` comments allowed), as issued by `stageless
    tester-token`; only those valid now, for this service, reach the data plane."""
    signing_keys: Annotated[tuple[SigningKeyRef, ...], Field(strict=False, min_length=1)]
    """The keys that verify them (the proxy configuration's `signing_keys`)."""


class HAProxySettings(_Model):
    """`driver: haproxy`: HAProxy steered over its runtime API (admin stats socket)."""

    socket: FilePath
    """The admin stats socket (`stats socket <path> level admin`)."""
    listen: Address = "127.0.0.1:8080"
    """Where the generated configuration's frontend listens."""
    backend: HAProxyName | None = None
    """The backend that splits users between stable and candidate (default: the service's
    name); testers use `<backend>_candidate`."""
    testers_acl: FilePath | None = None
    """The ACL file holding the valid tester tokens (required with `testers`); the generated
    configuration reads it, the driver edits it through the runtime API."""
    testers: TesterTokens | None = None
    """Tester routing: where the tokens come from."""
    interval_s: Interval = 10.0
    """Seconds per batch read from HAProxy's statistics."""


class NginxSettings(_Model):
    """`driver: nginx`: a generated nginx configuration, applied with a graceful reload."""

    config: FilePath
    """The nginx configuration file the driver writes (nginx runs with `-c` on it)."""
    nginx: FilePath = "nginx"
    """The nginx program (a path, or a name looked up on PATH)."""
    listen: Address = "127.0.0.1:8080"
    """Where the generated server listens."""
    access_log: FilePath | None = None
    """The JSON access log nginx writes and the driver tails (default: `access.json.log` beside
    `config`)."""
    pid: FilePath | None = None
    """nginx's pid file (default: `nginx.pid` beside `config`)."""
    worker_processes: Annotated[
        int, AfterValidator(between(0, 256)), Field(json_schema_extra={"minimum": 0})
    ] = 0
    """nginx worker processes; 0 for one per CPU core (`auto`)."""
    mirror_timeout_s: Duration = 1.0
    """Shadow copies that take longer are cut (a slow mirror delays the next request on the
    client's connection)."""
    testers: TesterTokens | None = None
    """Tester routing: where the tokens come from."""
    interval_s: Interval = 10.0
    """Seconds per batch read from the access log."""


class ParentRef(_Model):
    """The Gateway (or other parent) the HTTPRoute attaches to."""

    name: Annotated[str, Field(min_length=1, max_length=253)]
    """The parent's name."""
    namespace: DnsLabel | None = None
    """Its namespace (default: the route's)."""
    section_name: DnsName | None = None
    """The listener's name."""


class BackendRef(_Model):
    """A Kubernetes Service the route sends traffic to."""

    name: Annotated[str, Field(min_length=1, max_length=253)]
    """The Service's name."""
    port: Port
    """The Service's port."""
    namespace: DnsLabel | None = None
    """Its namespace (default: the route's)."""


class PrometheusSettings(_Model):
    """Where the data plane's per-version metrics are and how to query them (PromQL templates
    with `$service`, `$route`, `$version` and `$interval`; docs/metrics.md)."""

    url: Annotated[str, Field(min_length=1)] = "http://127.0.0.1:9090"
    """Prometheus' base URL."""
    interval_s: Interval = 60.0
    """Seconds per batch (the query step)."""
    stable_version: Annotated[str, Field(min_length=1)] = "stable"
    """The `$version` label value of stable's series."""
    candidate_version: Annotated[str, Field(min_length=1)] = "candidate"
    """The `$version` label value of the candidate's series."""
    requests: Annotated[str, Field(min_length=1)] | None = None
    """Requests per interval (default: the Stageless proxy's metric)."""
    errors: Annotated[str, Field(min_length=1)] | None = None
    """5xx answers and failures per interval (default: the Stageless proxy's metric)."""
    client_errors: Annotated[str, Field(min_length=1)] | None = None
    """4xx answers per interval (default: none)."""
    latency_buckets: Annotated[str, Field(min_length=1)] | None = None
    """Cumulative latency histogram buckets by `le`, in seconds (default: the Stageless
    proxy's)."""


class GatewaySettings(_Model):
    """`driver: gateway-api`: HTTPRoute manifests, metrics from Prometheus."""

    parent_refs: Annotated[tuple[ParentRef, ...], Field(strict=False, min_length=1)]
    """The Gateways the route attaches to."""
    route_name: DnsName | None = None
    """The HTTPRoute's name (default: the service's name)."""
    namespace: DnsLabel | None = None
    """The HTTPRoute's namespace (default: none written: kubectl's current one)."""
    hostnames: Annotated[tuple[Hostname, ...], Field(strict=False, max_length=16)] = ()
    """Host names the route answers (default: all of its Gateways')."""
    stable_backend: BackendRef | None = None
    """stable's Service (default: from the first stable address, `name:port`)."""
    candidate_backend: BackendRef | None = None
    """The candidate's Service (default: from the first candidate address)."""
    output: FilePath = "-"
    """Where each manifest is written: a file path, or `-` for standard output."""
    kubectl: bool = False
    """Also `kubectl apply -f` each manifest (kubectl must be on PATH)."""
    kubectl_context: Annotated[str, Field(min_length=1)] | None = None
    """The kubectl context to apply to (default: the current one)."""
    testers: TesterTokens | None = None
    """Tester routing (a header match per valid token): where the tokens come from."""
    metrics: PrometheusSettings = Field(default_factory=PrometheusSettings)
    """The candidate's and stable's metrics, from Prometheus."""
