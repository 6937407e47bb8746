"""HAProxy as a rollout driver: weights over the runtime API, batches from its statistics.

:func:`render_config` writes the initial ``haproxy.cfg`` for the plan's service (check it with
``haproxy -c -f``): a frontend, a backend ``<backend>`` with the stable servers (``stable-N``) and
the candidate servers (``candidate-N``), and a backend ``<backend>_candidate`` for testers.

- **Stickiness that survives weight changes.** Each user has a sticky key: the ``stageless-key``
  cookie, or a new UUID (then set as that cookie). The split backend balances on it with
  ``balance hash`` and ``hash-type consistent``: each server owns points on a hash ring in
  proportion to its weight. Raising the candidate's weight only adds candidate points (and
  lowering stable's only removes stable points), so a user on the candidate stays there and a
  user on stable either stays or moves to the candidate: raising the weight only adds users.
- **Weights** move with ``set server <backend>/<server> weight <w>`` over the admin socket, with
  no reload. HAProxy's weights are whole numbers 0-256 per server, so the share is rounded to
  about 1/256 (0.4 %; at least that much when the weight is above 0). A rollback is one line of
  commands (candidate weights 0, stable weights back, tester list cleared) on one connection.
- **Tester routing**: an ACL matching the ``x-stageless-route`` header or the ``stageless-route``
  cookie against an ACL file. HAProxy cannot check a token's HMAC, so the driver keeps in that
  file (``add acl``/``del acl`` at run time) exactly the tokens valid now
  (:mod:`stageless.drivers.testers`).
- **Shadowing**: HAProxy has no request mirroring; a plan with a shadow step is refused for this
  driver, and :meth:`HAProxyDriver.apply` refuses a shadow share.

Batches come from ``show stat``: the per-server counters ``req_tot``, ``hrsp_4xx``, ``hrsp_5xx``,
``econ`` and ``eresp`` are read once per interval and their differences summed per version (the
split backend: traffic class ``user``; the testers backend: ``tester``). HAProxy's statistics
hold no latency distribution (``rtime``/``ttime`` are running averages over the last 1024
requests), and no user identities: batches carry no latency samples, ``users`` is 0 and
``new_users`` absent, so the judge decides on errors alone and its split check is off
(docs/drivers.md).

Runtime changes are lost when HAProxy reloads; save them first with ``show servers state`` and
``load-server-state-from-file`` (docs/drivers.md).
"""

from __future__ import annotations

import asyncio
import csv
import io
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from stageless.analysis.batch import Batch, TrafficClass, Version
from stageless.drivers.base import DriverError, ShadowReport
from stageless.drivers.tally import DEFAULT_ROUTE
from stageless.drivers.testers import current_tokens
from stageless.rollout.commands import Traffic
from stageless.rollout.dataplanes import HAProxySettings
from stageless.rollout.plan import RolloutPlan

__all__ = [
    "MAX_WEIGHT",
    "HAProxyDriver",
    "RuntimeAPI",
    "ServerCounters",
    "parse_stat",
    "render_config",
    "server_weights",
    "write_config",
]

MAX_WEIGHT = 256
"""HAProxy's largest server weight."""
STICKY_COOKIE = "stageless-key"
ROUTE_HEADER = "x-stageless-route"
ROUTE_COOKIE = "stageless-route"
SOCKET_TIMEOUT_S = 10.0
HISTORY = 20_000
COUNTERS = ("req_tot", "hrsp_4xx", "hrsp_5xx", "econ", "eresp")


def _settings(plan: RolloutPlan) -> HAProxySettings:
    if plan.haproxy is None:
        raise DriverError(f"the plan for {plan.service!r} has no haproxy settings")
    return plan.haproxy


def _backend(plan: RolloutPlan) -> str:
    return _settings(plan).backend or plan.service


def server_weights(weight: float, stable: int, candidate: int) -> tuple[int, int]:
    """Per-server weights ``(stable, candidate)`` giving the candidate's ``candidate`` servers
    ``weight`` percent of the ring against ``stable`` stable servers, each 0-256.

    The larger side gets 256; as ``weight`` rises, the candidate's weight never falls and
    stable's never rises (so consistent hashing only moves users to the candidate).
    """
    if weight <= 0:
        return MAX_WEIGHT, 0
    if weight >= 100:
        return 0, MAX_WEIGHT
    share = weight / 100
    per_candidate, per_stable = share / candidate, (1 - share) / stable
    top = max(per_candidate, per_stable)
    return (
        max(round(MAX_WEIGHT * per_stable / top), 1),
        max(round(MAX_WEIGHT * per_candidate / top), 1),
    )


def _share(weights: tuple[int, int], stable: int, candidate: int) -> float:
    total = weights[0] * stable + weights[1] * candidate
    return weights[1] * candidate / total if total else 0.0


def render_config(plan: RolloutPlan) -> str:
    """The initial HAProxy configuration for the plan's service: every user on stable."""
    settings = _settings(plan)
    backend = _backend(plan)
    acl = settings.testers_acl
    lines = [
        f"# Generated by Stageless (driver haproxy) for service {plan.service}.",
        "# The rollout changes the server weights and the testers ACL over the runtime API",
        "# (no reload). A reload resets them to what is written here: see docs/drivers.md.",
        "global",
        f"    stats socket {settings.socket} mode 600 level admin",
        "    maxconn 4096",
        "",
        "defaults",
        "    mode http",
        "    option http-keep-alive",
        "    option forwardfor",
        "    option redispatch",
        "    retries 2",
        "    timeout connect 5s",
        "    timeout client 60s",
        "    timeout server 60s",
        "    timeout http-keep-alive 75s",
        "",
        f"frontend {backend}_in",
        f"    bind {settings.listen}",
        "    # The user's sticky key: the cookie, else a new UUID (then set as the cookie).",
        f"    http-request set-var(txn.stageless_key) req.cook({STICKY_COOKIE})",
        "    http-request set-var(txn.stageless_new) bool(true) "
        "unless { var(txn.stageless_key) -m found }",
        "    http-request set-var(txn.stageless_key) uuid if { var(txn.stageless_new) -m bool }",
    ]
    if acl is not None:
        lines += [
            "    # Tester routing: the tokens valid now, kept in the ACL file by the driver.",
            f"    acl stageless_tester req.hdr({ROUTE_HEADER}) -f {acl}",
            f"    acl stageless_tester req.cook({ROUTE_COOKIE}) -f {acl}",
            "    http-request set-var(txn.stageless_tester) bool(true) if stageless_tester",
        ]
    lines += [
        "    http-request del-header x-stageless-route",
        "    http-request del-header x-stageless-traffic",
        "    http-request del-header x-stageless-version",
    ]
    if acl is not None:
        lines += [
            "    http-request set-header x-stageless-traffic tester "
            "if { var(txn.stageless_tester) -m bool }",
            f"    use_backend {backend}_candidate if {{ var(txn.stageless_tester) -m bool }}",
        ]
    lines += [
        f"    default_backend {backend}",
        f'    http-response add-header Set-Cookie "{STICKY_COOKIE}=%[var(txn.stageless_key)]; '
        'Path=/; Max-Age=31536000; SameSite=Lax" if { var(txn.stageless_new) -m bool }',
        "",
        f"backend {backend}",
        "    balance hash var(txn.stageless_key)",
        "    hash-type consistent",
        *(
            f"    server stable-{i} {address} weight {MAX_WEIGHT}"
            for i, address in enumerate(plan.stable.addresses, 1)
        ),
        *(
            f"    server candidate-{i} {address} weight 0"
            for i, address in enumerate(plan.candidate.addresses, 1)
        ),
        "",
        f"backend {backend}_candidate",
        "    balance roundrobin",
        *(
            f"    server candidate-{i} {address}"
            for i, address in enumerate(plan.candidate.addresses, 1)
        ),
        "",
    ]
    return "\n".join(lines)


def write_config(plan: RolloutPlan, path: Path) -> Path:
    """Write :func:`render_config` to ``path`` and create an empty testers ACL file when the
    plan names one and it does not exist yet (HAProxy refuses to start without it)."""
    settings = _settings(plan)
    path.write_text(render_config(plan), encoding="utf-8")
    if settings.testers_acl is not None:
        acl = Path(settings.testers_acl)
        if not acl.exists():
            acl.parent.mkdir(parents=True, exist_ok=True)
            acl.write_text("", encoding="utf-8")
    return path


class RuntimeAPI:
    """HAProxy's runtime API over its stats socket: one connection per command line."""

    def __init__(self, socket_path: str, *, timeout_s: float = SOCKET_TIMEOUT_S) -> None:
        self.socket_path = socket_path
        self.timeout_s = timeout_s

    async def run(self, command: str) -> str:
        """Send one command line (commands may be joined with ``;``) and return the answer."""
        try:
            async with asyncio.timeout(self.timeout_s):
                reader, writer = await asyncio.open_unix_connection(self.socket_path)
                try:
                    writer.write(command.encode() + b"\n")
                    await writer.drain()
                    answer = await reader.read()
                finally:
                    writer.close()
                    await writer.wait_closed()
        except TimeoutError as exc:
            raise DriverError(
                f"HAProxy's runtime API at {self.socket_path} did not answer within "
                f"{self.timeout_s:g} s"
            ) from exc
        except OSError as exc:
            raise DriverError(
                f"cannot reach HAProxy's runtime API at {self.socket_path}: {exc} (is HAProxy "
                "running with `stats socket ... level admin`?)"
            ) from exc
        return answer.decode("utf-8", "replace")

    async def change(self, commands: list[str]) -> None:
        """Run commands that answer nothing on success, in one line; any answer is an error."""
        if not commands:
            return
        answer = (await self.run(";".join(commands))).strip()
        if answer:
            raise DriverError(f"HAProxy refused {'; '.join(commands)!r}: {answer}")


@dataclass(frozen=True, slots=True)
class ServerCounters:
    """One server's cumulative counters from ``show stat``."""

    backend: str
    server: str
    req_tot: int
    hrsp_4xx: int
    hrsp_5xx: int
    econ: int
    eresp: int
    weight: int


def parse_stat(text: str) -> dict[tuple[str, str], ServerCounters]:
    """The servers' counters in ``show stat`` CSV output, by (backend, server)."""
    lines = text.lstrip("# ").splitlines()
    servers: dict[tuple[str, str], ServerCounters] = {}
    for row in csv.DictReader(io.StringIO("\n".join(lines))):
        name = row.get("svname") or ""
        if not name or name in ("FRONTEND", "BACKEND") or not row.get("pxname"):
            continue

        def number(field: str, row: Mapping[str, str | None] = row) -> int:
            value = row.get(field) or "0"
            return int(value) if value.isdigit() else 0

        servers[(row["pxname"], name)] = ServerCounters(
            row["pxname"], name, *(number(field) for field in (*COUNTERS, "weight"))
        )
    return servers


class HAProxyDriver:
    """Steers one service's split in a running HAProxy through its runtime API."""

    def __init__(
        self,
        plan: RolloutPlan,
        *,
        clock: Callable[[], float] = time.time,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.plan = plan
        self.settings = _settings(plan)
        self.backend = _backend(plan)
        self.api = RuntimeAPI(self.settings.socket)
        self.clock = clock
        self.environ = environ
        self.stable = [f"stable-{i}" for i in range(1, len(plan.stable.addresses) + 1)]
        self.candidate = [f"candidate-{i}" for i in range(1, len(plan.candidate.addresses) + 1)]
        self.traffic: Traffic | None = None
        self.share = 0.0
        self.tokens: tuple[str, ...] | None = None  # what the ACL file holds, when known
        self.history: deque[Batch] = deque(maxlen=HISTORY)
        self.snapshot: tuple[float, dict[tuple[str, str], ServerCounters]] | None = None
        self.lock = asyncio.Lock()

    async def apply(self, traffic: Traffic) -> None:
        if traffic.shadow > 0:
            raise DriverError(
                "HAProxy cannot copy requests to the candidate (it has no request mirroring); "
                "a shadow step needs driver builtin, nginx or gateway-api"
            )
        async with self.lock:
            await self._cut()
            await self._set_weights(traffic.weight, tokens=traffic.testers)
            self.traffic = traffic

    async def promote(self) -> None:
        """All users on the candidate (its weights 256, stable's 0), tester list cleared.

        HAProxy keeps the servers' addresses: make the candidate the new stable in the
        configuration (:func:`render_config` with the new addresses) at the next deploy."""
        async with self.lock:
            await self._cut()
            await self._set_weights(100.0, tokens=False)
            self.traffic = Traffic(100.0)

    async def batches(self, since: float) -> list[Batch]:
        async with self.lock:
            now = self.clock()
            if self.snapshot is None or now - self.snapshot[0] >= self.settings.interval_s:
                await self._cut()
            if self.traffic is not None and self.traffic.testers:
                await self._sync_tokens()
        return [b for b in self.history if b.ts >= since]

    async def shadow_report(self) -> ShadowReport:
        """HAProxy never shadows: nothing sent, no report."""
        return ShadowReport(None, 0, 0)

    async def close(self) -> None:
        """Nothing to release: HAProxy keeps the last weights."""

    async def weights(self) -> dict[str, int]:
        """The split backend's current server weights, as HAProxy reports them."""
        servers = parse_stat(await self.api.run("show stat"))
        return {s.server: s.weight for (b, _), s in servers.items() if b == self.backend}

    async def _set_weights(self, weight: float, *, tokens: bool) -> None:
        stable, candidate = server_weights(weight, len(self.stable), len(self.candidate))
        commands = [f"set server {self.backend}/{s} weight {candidate}" for s in self.candidate]
        commands += [f"set server {self.backend}/{s} weight {stable}" for s in self.stable]
        # One line on one connection: a rollback moves the weights and clears the testers together.
        if not tokens and self.settings.testers_acl is not None:
            commands.append(f"clear acl {self.settings.testers_acl}")
        await self.api.change(commands)
        if not tokens:
            self.tokens = ()
        else:
            await self._sync_tokens()
        self.share = _share((stable, candidate), len(self.stable), len(self.candidate))

    async def _sync_tokens(self) -> None:
        """Make the ACL file hold exactly the tokens valid now."""
        acl, testers = self.settings.testers_acl, self.settings.testers
        if acl is None or testers is None:
            return
        wanted = await asyncio.to_thread(
            current_tokens, testers, self.plan.service, self.clock(), self.environ
        )
        if self.tokens is None:
            listed = await self.api.run(f"show acl {acl}")
            self.tokens = tuple(
                parts[1] for line in listed.splitlines() if len(parts := line.split()) >= 2
            )
        current = set(self.tokens)
        commands = [f"add acl {acl} {t}" for t in wanted if t not in current]
        commands += [f"del acl {acl} {t}" for t in sorted(current - set(wanted))]
        await self.api.change(commands)
        self.tokens = wanted

    async def _cut(self) -> None:
        """Read the counters; the difference since the last read becomes one batch per version
        and traffic class (the interval ends here, so a weight change starts a new one)."""
        now = self.clock()
        servers = parse_stat(await self.api.run("show stat"))
        previous, self.snapshot = self.snapshot, (now, servers)
        if previous is None or now <= previous[0]:
            return
        since, before = previous
        self.history.extend(self._batches(since, now - since, before, servers))

    def _batches(
        self,
        since: float,
        interval_s: float,
        before: Mapping[tuple[str, str], ServerCounters],
        after: Mapping[tuple[str, str], ServerCounters],
    ) -> list[Batch]:
        series = [
            (Version.STABLE, TrafficClass.USER, self.backend, self.stable, 1.0 - self.share),
            (Version.CANDIDATE, TrafficClass.USER, self.backend, self.candidate, self.share),
            (
                Version.CANDIDATE,
                TrafficClass.TESTER,
                f"{self.backend}_candidate",
                self.candidate,
                self.share,
            ),
        ]
        batches = []
        for version, traffic_class, backend, names, share in series:
            totals = dict.fromkeys(COUNTERS, 0)
            for name in names:
                now, then = after.get((backend, name)), before.get((backend, name))
                if now is None:
                    continue
                for field in COUNTERS:
                    value, old = getattr(now, field), getattr(then, field) if then else 0
                    totals[field] += value - old if value >= old else value  # reset: a reload
            if traffic_class is TrafficClass.TESTER and totals["req_tot"] == 0:
                continue
            errors = totals["hrsp_5xx"] + totals["econ"] + totals["eresp"]
            requests = max(totals["req_tot"], errors + totals["hrsp_4xx"])
            batches.append(
                Batch(
                    ts=since,
                    interval_s=interval_s,
                    service=self.plan.service,
                    route=DEFAULT_ROUTE,
                    version=version,
                    traffic_class=traffic_class,
                    configured_share=min(max(share, 0.0), 1.0),
                    requests=requests,
                    errors=errors,
                    client_errors=totals["hrsp_4xx"],
                    users=0,
                )
            )
        return batches
