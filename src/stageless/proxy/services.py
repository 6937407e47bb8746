"""The per-service part of the proxy's configuration: the two versions, health checks, the split,
shadowing and routes, and the strict base model every configuration model shares.

Split out of :mod:`stageless.proxy.config`, which re-exports every name here: import them from
there. Derived values the hot path needs (parsed endpoints, the route table, method sets as
``frozenset[bytes]``, the split threshold) are ``functools.cached_property`` values warmed by the
validators, so that they read like plain attributes on the hot path.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from types import MappingProxyType
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from stageless.errors import Issue, IssuesError
from stageless.proxy.checks import (
    Address,
    CookieName,
    HeaderName,
    Host,
    HostHeader,
    Method,
    Name,
    NonEmpty,
    Percent,
    Prefix,
    RequestPath,
    Seconds,
    Weight,
    between,
    duplicates,
    parse_address,
    raise_issues,
)
from stageless.routing import names
from stageless.routing.split import split_threshold

__all__ = [
    "DEFAULT_ROUTE",
    "DEFAULT_STICKY_COOKIE",
    "CompareConfig",
    "ConfigModel",
    "HealthCheck",
    "RouteConfig",
    "ServiceConfig",
    "ShadowConfig",
    "SplitConfig",
    "StickyConfig",
    "UpstreamGroup",
]

DEFAULT_STICKY_COOKIE = names.DEFAULT_STICKY_COOKIE.decode("ascii")
_ROUTE_COOKIE = names.ROUTE_COOKIE.decode("ascii")
_STRIPPED_HEADER_PREFIX = names.HEADER_PREFIX.decode("ascii")


class ConfigModel(BaseModel):
    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        strict=True,  # no "5" for 5 nor 1 for true: YAML already gives real types
        allow_inf_nan=False,
        hide_input_in_errors=True,  # pydantic's own messages never echo a secret
    )

    def __getstate__(self) -> dict[Any, Any]:
        # Pickled to send to worker processes (workers > 1). The cached_property values are
        # derived (and a MappingProxyType does not pickle): the copy computes them again.
        state = super().__getstate__()
        fields = type(self).model_fields
        state["__dict__"] = {k: v for k, v in state["__dict__"].items() if k in fields}
        return state


class UpstreamGroup(ConfigModel):
    """One version of a service (stable or candidate): one or more ``host:port`` addresses."""

    addresses: Annotated[tuple[Address, ...], Field(strict=False)]

    @model_validator(mode="after")
    def _check(self) -> UpstreamGroup:
        if not self.addresses:
            raise ValueError("expected at least one address")
        raise_issues(duplicates(self.addresses, "addresses"))
        _ = self.endpoints
        return self

    @cached_property
    def endpoints(self) -> tuple[tuple[str, int], ...]:
        """``(host, port)`` per address, IPv6 hosts without brackets (for ``open_connection``)."""
        return tuple(parse_address(address) for address in self.addresses)

    def parsed(self) -> list[tuple[str, int]]:
        """``endpoints`` as a new list."""
        return list(self.endpoints)


class HealthCheck(ConfigModel):
    """Active HTTP health checks of every address of a service."""

    path: RequestPath = "/healthz"
    host: HostHeader | None = None
    interval_s: Seconds = 2.0
    timeout_s: Seconds = 1.0
    healthy_threshold: Annotated[int, AfterValidator(between(1, 1000))] = 2
    unhealthy_threshold: Annotated[int, AfterValidator(between(1, 1000))] = 2


class StickyConfig(ConfigModel):
    """Where the sticky key comes from: exactly one of a cookie, a header or the client address."""

    cookie: CookieName | None = None
    header: HeaderName | None = None
    client_address: bool = False

    @model_validator(mode="after")
    def _check(self) -> StickyConfig:
        given = [
            name
            for name, present in (
                ("cookie", self.cookie is not None),
                ("header", self.header is not None),
                ("client_address", self.client_address),
            )
            if present
        ]
        if len(given) != 1:
            got = " and ".join(given) if given else "none"
            raise ValueError(f"expected exactly one of cookie, header or client_address, got {got}")
        if self.cookie == _ROUTE_COOKIE:
            raise IssuesError([Issue("cookie", f"{_ROUTE_COOKIE!r} is the routing-token cookie")])
        if self.header is not None and self.header.startswith(_STRIPPED_HEADER_PREFIX):
            raise IssuesError(
                [
                    Issue(
                        "header",
                        f"{self.header!r} starts with {_STRIPPED_HEADER_PREFIX}, which the proxy "
                        "strips from every request",
                    )
                ]
            )
        return self

    @cached_property
    def source(self) -> Literal["cookie", "header", "client_address"]:
        """Which kind of key this is."""
        if self.cookie is not None:
            return "cookie"
        return "header" if self.header is not None else "client_address"

    @cached_property
    def key_name(self) -> bytes:
        """The cookie name, or the lower-case header name, as bytes (``b""`` for the address)."""
        return (self.cookie or self.header or "").encode("ascii")


def _default_sticky() -> StickyConfig:
    return StickyConfig(cookie=DEFAULT_STICKY_COOKIE)


class SplitConfig(ConfigModel):
    """The sticky weighted split of users between stable and candidate."""

    weight: Weight = 0.0
    sticky: StickyConfig = Field(default_factory=_default_sticky)

    @cached_property
    def threshold(self) -> int:
        """The sticky-hash bound (:func:`stageless.routing.split.split_threshold`)."""
        return split_threshold(self.weight)


class CompareConfig(ConfigModel):
    """What the shadow comparison looks at."""

    headers: Annotated[tuple[HeaderName, ...], Field(strict=False)] = ("content-type",)
    ignore_fields: Annotated[tuple[NonEmpty, ...], Field(strict=False)] = ()
    ignore_headers: Annotated[tuple[HeaderName, ...], Field(strict=False)] = ()
    unordered_arrays: bool = True


class ShadowConfig(ConfigModel):
    """Dark launch: a share of requests copied to the candidate and compared."""

    share: Percent = 100.0
    methods: Annotated[tuple[Method, ...], Field(strict=False)] = ("GET", "HEAD", "OPTIONS")
    queue: Annotated[int, AfterValidator(between(1, 1_000_000))] = 1000
    timeout_s: Seconds = 5.0
    max_body_bytes: Annotated[int, AfterValidator(between(0, 1 << 30))] = 1_048_576
    noise_share: Percent = 10.0
    noise_first: Annotated[int, AfterValidator(between(0, 1_000_000_000))] = 100
    pipeline: Annotated[int, AfterValidator(between(1, 64))] = 1
    compare: CompareConfig = Field(default_factory=CompareConfig)

    @model_validator(mode="after")
    def _check(self) -> ShadowConfig:
        raise_issues(duplicates(self.methods, "methods"))
        _ = self.method_set
        return self

    @cached_property
    def method_set(self) -> frozenset[bytes]:
        """``methods`` as bytes, for a membership test on the request's method."""
        return frozenset(method.encode("ascii") for method in self.methods)


class RouteConfig(ConfigModel):
    """A named path prefix: requests are counted (and may be shadowed) per route."""

    name: Name
    prefix: Prefix
    shadow_methods: Annotated[tuple[Method, ...], Field(strict=False)] | None = None

    @cached_property
    def prefix_bytes(self) -> bytes:
        return self.prefix.encode("ascii")


DEFAULT_ROUTE = RouteConfig(name="default", prefix="/")


class ServiceConfig(ConfigModel):
    """One service: which Host headers it answers, its two versions, split, shadow and routes."""

    name: Name
    hosts: Annotated[tuple[Host, ...], Field(strict=False)] = ()
    stable: UpstreamGroup
    candidate: UpstreamGroup
    health_check: HealthCheck | None = None
    split: SplitConfig = Field(default_factory=SplitConfig)
    testers: bool = False
    shadow: ShadowConfig | None = None
    routes: Annotated[tuple[RouteConfig, ...], Field(strict=False)] = ()

    @model_validator(mode="after")
    def _check(self) -> ServiceConfig:
        issues = duplicates(self.hosts, "hosts")
        issues += duplicates(tuple(route.name for route in self.routes), "routes", ".name")
        for index, route in enumerate(self.routes):
            path = f"routes[{index}]"
            if route.name == DEFAULT_ROUTE.name and route.prefix != "/":
                issues.append(
                    Issue(
                        f"{path}.name",
                        "'default' is the implicit catch-all route (prefix '/'); pick another name",
                    )
                )
            for earlier_index, earlier in enumerate(self.routes[:index]):
                if route.prefix.startswith(earlier.prefix):
                    issues.append(
                        Issue(
                            f"{path}.prefix",
                            f"{route.prefix!r} can never match: routes[{earlier_index}] "
                            f"({earlier.prefix!r}) comes first and matches every such path",
                        )
                    )
                    break
            if route.shadow_methods is not None:
                if self.shadow is None:
                    issues.append(
                        Issue(f"{path}.shadow_methods", "is set but the service has no shadow")
                    )
                issues += duplicates(route.shadow_methods, f"{path}.shadow_methods")
        raise_issues(issues)
        _ = self.route_table, self.all_routes, self.shadow_methods
        return self

    @cached_property
    def route_table(self) -> tuple[tuple[bytes, RouteConfig], ...]:
        """``(prefix, route)`` in order, then the implicit default route."""
        table = tuple((route.prefix_bytes, route) for route in self.routes)
        if not any(route.prefix == "/" for route in self.routes):
            table += ((DEFAULT_ROUTE.prefix_bytes, DEFAULT_ROUTE),)
        return table

    @cached_property
    def all_routes(self) -> tuple[RouteConfig, ...]:
        """Every route a request can land on: ``routes`` and the implicit default, in order."""
        return tuple(route for _, route in self.route_table)

    @cached_property
    def shadow_methods(self) -> Mapping[str, frozenset[bytes]]:
        """Route name -> the methods shadowed there (empty without a ``shadow`` section)."""
        if self.shadow is None:
            return MappingProxyType({route.name: frozenset() for route in self.all_routes})
        result: dict[str, frozenset[bytes]] = {}
        for route in self.all_routes:
            if route.shadow_methods is None:
                result[route.name] = self.shadow.method_set
            else:
                result[route.name] = frozenset(m.encode("ascii") for m in route.shadow_methods)
        return MappingProxyType(result)

    def route_for(self, path: bytes) -> RouteConfig:
        """The first route whose prefix starts ``path`` (the request target's path)."""
        for prefix, route in self.route_table:
            if path.startswith(prefix):
                return route
        return DEFAULT_ROUTE  # a path not starting with '/' (e.g. "*"): the catch-all
