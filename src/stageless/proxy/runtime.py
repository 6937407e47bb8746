"""The configuration compiled for the hot path: what a worker looks up per request.

A :class:`Runtime` is built from a validated :class:`~stageless.proxy.config.ProxyConfig` and
replaced as a whole on reload (the hot path reads ``worker.runtime`` once per request, so a
request sees either the old or the new configuration, never a mix). Upstream pools and health
state outlive a reload: they are keyed by address and reused by the new runtime.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from stageless.analysis.batch import TrafficClass, Version
from stageless.proxy.config import Limits, ProxyConfig, ServiceConfig, ShadowConfig, Timeouts
from stageless.proxy.health import AddressHealth
from stageless.proxy.pool import Pool
from stageless.proxy.stats import Series, ShadowCounters, Stats
from stageless.routing.split import split_threshold, sticky_prefix

STICKY_COOKIE, STICKY_HEADER, STICKY_ADDRESS = 0, 1, 2


# What the request path reads of Timeouts and Limits, copied into plain objects when a worker
# starts or reloads: a pydantic model defines ``__getattr__``, so a read of its fields cannot be
# specialised (about 70 ns each), and a worker reads these several times per request. Compiled
# (stageless.proxy.native), a read of these is native.


@dataclass(frozen=True, slots=True)
class RequestTimeouts:
    """``Timeouts`` as the request path reads them (see above)."""

    connect_s: float
    read_s: float
    total_s: float
    client_header_s: float
    client_idle_s: float

    @classmethod
    def of(cls, timeouts: Timeouts) -> RequestTimeouts:
        return cls(
            timeouts.connect_s,
            timeouts.read_s,
            timeouts.total_s,
            timeouts.client_header_s,
            timeouts.client_idle_s,
        )


@dataclass(frozen=True, slots=True)
class RequestLimits:
    """``Limits`` as the request path reads them (see above)."""

    max_header_bytes: int
    max_headers: int
    max_connections: int

    @classmethod
    def of(cls, limits: Limits) -> RequestLimits:
        return cls(limits.max_header_bytes, limits.max_headers, limits.max_connections)


@dataclass(slots=True)
class Address:
    pool: Pool
    health: AddressHealth | None

    @property
    def healthy(self) -> bool:
        return self.health is None or self.health.healthy


@dataclass(slots=True)
class Group:
    """The addresses of one version, picked round robin among the healthy ones."""

    addresses: list[Address]
    turn: int = 0

    def pick(self) -> Address:
        addresses = self.addresses
        count = len(addresses)
        turn = self.turn
        for step in range(count):
            address = addresses[(turn + step) % count]
            if address.healthy:
                self.turn = turn + step + 1
                return address
        self.turn = turn + 1  # nothing healthy: try anyway rather than fail outright
        return addresses[turn % count]

    def available(self) -> bool:
        return any(a.healthy for a in self.addresses)


@dataclass(slots=True)
class RouteRuntime:
    name: str
    prefix: bytes
    shadow_methods: frozenset[bytes]
    series: dict[tuple[Version, TrafficClass], Series] = field(default_factory=dict)
    #: The route's shadow counters, when its service shadows (``Stats.shadow``'s object).
    shadow_counters: ShadowCounters | None = None


@dataclass(slots=True)
class ServiceRuntime:
    name: str
    #: :func:`~stageless.routing.split.sticky_prefix` of ``name``: a user's sticky hash is
    #: ``murmur3_32(hash_prefix + key)``, one call per request.
    hash_prefix: bytes
    threshold: int
    share: float
    sticky_kind: int
    sticky_name: bytes
    testers: bool
    stable: Group
    candidate: Group
    shadow: ShadowConfig | None
    shadow_share: float
    routes: list[RouteRuntime]
    # The shadow settings a copy reads, as native values (reading a pydantic model's field
    # from compiled code is a generic attribute lookup, about 400 instructions each).
    shadow_timeout_s: float = 0.0
    shadow_pipeline: int = 1
    shadow_noise_share: float = 0.0
    shadow_noise_first: int = 0
    shadow_max_body_bytes: int = 0

    def route_for(self, path: bytes) -> RouteRuntime:
        for route in self.routes:
            if path.startswith(route.prefix):
                return route
        return self.routes[-1]


@dataclass(slots=True)
class Runtime:
    config: ProxyConfig
    by_name: dict[str, ServiceRuntime]
    keys: Mapping[str, bytes]
    services: list[ServiceRuntime]

    cache: dict[bytes, ServiceRuntime | None] = field(default_factory=dict)

    def service_for(self, host: bytes) -> ServiceRuntime | None:
        """The service for a raw Host header; remembers up to 1,024 Host values it has seen."""
        try:
            return self.cache[host]
        except KeyError:
            pass
        config = self.config.service_for_host(host)
        service = None if config is None else self.by_name[config.name]
        if len(self.cache) < 1024:
            self.cache[host] = service
        return service


def build_runtime(
    config: ProxyConfig,
    stats: Stats,
    pool_for: Callable[[tuple[str, int]], Pool],
    health_for: Callable[[tuple[str, int]], AddressHealth | None],
) -> Runtime:
    """Compile ``config``; ``pool_for``/``health_for`` give an address's (kept) pool and health."""
    services = [_service(service, stats, pool_for, health_for) for service in config.services]
    by_name = {service.name: service for service in services}
    return Runtime(config, by_name, config.verify_keys, services)


def _service(
    config: ServiceConfig,
    stats: Stats,
    pool_for: Callable[[tuple[str, int]], Pool],
    health_for: Callable[[tuple[str, int]], AddressHealth | None],
) -> ServiceRuntime:
    sticky = config.split.sticky
    kind = {"cookie": STICKY_COOKIE, "header": STICKY_HEADER}.get(sticky.source, STICKY_ADDRESS)
    name = sticky.key_name if kind != STICKY_ADDRESS else b""
    shadow = config.shadow
    routes = []
    for route in config.all_routes:
        runtime = RouteRuntime(route.name, route.prefix_bytes, config.shadow_methods[route.name])
        for version in Version:
            for tclass in TrafficClass:
                runtime.series[version, tclass] = stats.series(
                    config.name, route.name, version, tclass
                )
        if shadow is not None:
            runtime.shadow_counters = stats.shadow(config.name, route.name)
        routes.append(runtime)

    def group(addresses: tuple[tuple[str, int], ...]) -> Group:
        return Group([Address(pool_for(a), health_for(a)) for a in addresses])

    service = ServiceRuntime(
        name=config.name,
        hash_prefix=sticky_prefix(config.name),
        threshold=split_threshold(config.split.weight),
        share=config.split.weight / 100,
        sticky_kind=kind,
        sticky_name=name,
        testers=config.testers,
        stable=group(config.stable.endpoints),
        candidate=group(config.candidate.endpoints),
        shadow=shadow,
        shadow_share=(shadow.share / 100) if shadow else 0.0,
        routes=routes,
    )
    if shadow is not None:
        service.shadow_timeout_s = shadow.timeout_s
        service.shadow_pipeline = shadow.pipeline
        service.shadow_noise_share = shadow.noise_share
        service.shadow_noise_first = shadow.noise_first
        service.shadow_max_body_bytes = shadow.max_body_bytes
    return service


__all__ = [
    "STICKY_ADDRESS",
    "STICKY_COOKIE",
    "STICKY_HEADER",
    "Address",
    "Group",
    "RequestLimits",
    "RequestTimeouts",
    "RouteRuntime",
    "Runtime",
    "ServiceRuntime",
    "build_runtime",
]
