"""Flag evaluation speed: Stageless against its peers, side by side, in one run.

Every contender evaluates the SAME flag, written in its own SDK's format:

    if country in [NL, DE, FR] and age >= 18 and email ends with "@example.com":
        a 50/50 split between "on" and "off", bucketed by (flag key, email)
    else:
        "off"

over the same N distinct, pre-generated contexts (no result can be cached by context). Each
contender's context objects are built in that SDK's own type before timing (building them is
the application's work, not the evaluator's); everything an evaluation does after that is timed.

Before any timing, each contender is checked on a sample of contexts: targeted-out contexts must
get "off" and targeted-in ones must split close to 50/50, so a misconfigured peer cannot look
fast. Peers evaluate locally with no network: a guard fails the run if anything tries to connect
or resolve a name.

Timing is paired by chunk: each round walks the contexts in chunks (5,000 by default), and every
contender evaluates a chunk before the run moves to the next one, in an order rotated from chunk to
chunk and reversed in every other block, so that no contender always runs first or always follows
the same neighbour. Contenders that are compared therefore run within a second or two of each
other on the same contexts, and drift in the machine's load (other work on a shared machine)
affects both sides of each comparison alike. The table reports, per contender, the median over the
rounds of the per-evaluation time (wall clock, time.perf_counter_ns; a round's time is the sum of
its chunks), the fastest and slowest round, the median ratio to the engine of the same chunk's
times, and the median CPU time of the process (time.process_time_ns). The targets are judged on
the median of the paired chunk ratios, printed with a distribution-free interval for that median;
the ratio of the round medians is printed beside it.

Usage: .venv/bin/python bench/flags.py [--contexts N] [--rounds N] [--chunk N] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import platform
import random
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

FLAG_KEY = "bench-flag"
COUNTRIES_IN = ("NL", "DE", "FR")
COUNTRIES_ALL = ("NL", "DE", "FR", "US", "GB", "ES", "IT", "PL")
EMAIL_SUFFIX = "@example.com"
MIN_AGE = 18
SEED = 20_260_731
VERIFY_SAMPLE = 3_000
SPLIT_TOLERANCE = 0.07  # share of "on" among targeted-in contexts must be within 0.5 ± this

SPEED_FACTOR_TARGET = 10.0  # the engine at least 10x faster than the fastest peer
OPENFEATURE_OVERHEAD_TARGET = 0.15  # through OpenFeature at most 15% slower than InMemoryProvider

Context = dict[str, Any]


# --------------------------------------------------------------------------------------------
# Contexts and the meaning of the flag
# --------------------------------------------------------------------------------------------


def generate_contexts(count: int, seed: int = SEED) -> list[Context]:
    """Distinct contexts: about a third are targeted in (each condition fails for some)."""
    rng = random.Random(seed)
    domains = ("example.com", "example.com", "example.com", "example.org", "mail.test")
    contexts = []
    for i in range(count):
        key = f"user-{i:07d}-{rng.getrandbits(32):08x}"
        contexts.append(
            {
                "targetingKey": key,
                "email": f"{key}@{rng.choice(domains)}",
                "country": rng.choice(COUNTRIES_ALL),
                "age": rng.randint(12, 70),
            }
        )
    return contexts


def targeted_in(ctx: Context) -> bool:
    """The flag's condition, as plain Python: the reference every contender is checked against."""
    return (
        ctx["country"] in COUNTRIES_IN
        and ctx["age"] >= MIN_AGE
        and ctx["email"].endswith(EMAIL_SUFFIX)
    )


def flagd_document() -> dict[str, Any]:
    """The flag in flagd's format (Stageless and flagd-core)."""
    return {
        "flags": {
            FLAG_KEY: {
                "state": "ENABLED",
                "variants": {"on": "on", "off": "off"},
                "defaultVariant": "off",
                "targeting": {
                    "if": [
                        {
                            "and": [
                                {"in": [{"var": "country"}, list(COUNTRIES_IN)]},
                                {">=": [{"var": "age"}, MIN_AGE]},
                                {"ends_with": [{"var": "email"}, EMAIL_SUFFIX]},
                            ]
                        },
                        {
                            "fractional": [
                                {"cat": [{"var": "$flagd.flagKey"}, {"var": "email"}]},
                                ["on", 50],
                                ["off", 50],
                            ]
                        },
                        "off",
                    ]
                },
            }
        }
    }


# --------------------------------------------------------------------------------------------
# Contenders
# --------------------------------------------------------------------------------------------


@dataclass
class Contender:
    """One way of evaluating the flag.

    ``contexts`` are the contexts in the contender's own type, built before timing; ``batch``
    evaluates a list of them once (the timed work); ``variant`` evaluates context ``i`` and returns
    "on"/"off" (for the check before timing). ``chunk_ns[r][k]`` is the wall-clock time of chunk
    ``k`` in round ``r`` (``chunk_cpu_ns`` the process CPU time).
    """

    name: str
    role: str  # "engine", "engine-extra", "openfeature", "floor", "peer" or "static" (diagnostic)
    contexts: Sequence[Any]
    batch: Callable[[Sequence[Any]], None]
    variant: Callable[[int], str]
    note: str = ""
    chunks: list[Sequence[Any]] = field(default_factory=list)
    chunk_ns: list[list[int]] = field(default_factory=list)
    chunk_cpu_ns: list[list[int]] = field(default_factory=list)


def stageless_engine(contexts: Sequence[Context], fractional_version: Literal[2, 3]) -> Contender:
    from stageless.flags import parse_flag_set

    flags = parse_flag_set(json.dumps(flagd_document()), fractional_version=fractional_version)
    ctxs = [dict(c) for c in contexts]

    def batch(items: Sequence[Any]) -> None:
        evaluate = flags.evaluate
        for ctx in items:
            evaluate(FLAG_KEY, ctx)

    def variant(i: int) -> str:
        res = flags.evaluate(FLAG_KEY, ctxs[i])
        if res.error_code is not None or str(res.reason) != "TARGETING_MATCH":
            raise AssertionError(f"unexpected resolution {res!r}")
        return str(res.value)

    suffix = "" if fractional_version == 2 else f", fractional v{fractional_version}"
    return Contender(
        name=f"Stageless engine{suffix}",
        role="engine" if fractional_version == 2 else "engine-extra",
        contexts=ctxs,
        batch=batch,
        variant=variant,
        note="FlagSet.evaluate(key, dict)",
    )


def evaluation_contexts(contexts: Sequence[Context]) -> list[Any]:
    """The contexts as OpenFeature ``EvaluationContext`` objects, built before timing."""
    from openfeature.evaluation_context import EvaluationContext

    return [
        EvaluationContext(
            targeting_key=c["targetingKey"],
            attributes={k: v for k, v in c.items() if k != "targetingKey"},
        )
        for c in contexts
    ]


def openfeature_contender(
    name: str, role: str, provider: Any, contexts: Sequence[Context], note: str
) -> Contender:
    from openfeature import api

    api.set_provider_and_wait(provider, domain=name)
    client = api.get_client(domain=name)
    ctxs = evaluation_contexts(contexts)

    def batch(items: Sequence[Any]) -> None:
        get = client.get_string_value
        for ctx in items:
            get(FLAG_KEY, "default", ctx)

    def variant(i: int) -> str:
        details = client.get_string_details(FLAG_KEY, "default", ctxs[i])
        if details.error_code is not None:
            raise AssertionError(f"unexpected details {details!r}")
        return details.value

    return Contender(name=name, role=role, contexts=ctxs, batch=batch, variant=variant, note=note)


def stageless_openfeature(contexts: Sequence[Context], *, targeting: bool = True) -> Contender:
    """Stageless through the OpenFeature client; without ``targeting``, the same flag made static
    (a diagnostic for ``--only``: the provider's own cost, next to InMemoryProvider's)."""
    from stageless.flags import parse_flag_set
    from stageless.sdk import StagelessProvider

    document = flagd_document()
    if not targeting:
        del document["flags"][FLAG_KEY]["targeting"]
    flags = parse_flag_set(json.dumps(document))
    contender = openfeature_contender(
        "Stageless via OpenFeature" + ("" if targeting else ", static flag"),
        "openfeature" if targeting else "static",
        StagelessProvider.from_flag_set(flags),
        contexts,
        "client.get_string_value, StagelessProvider",
    )
    return contender if targeting else answers_off(contender)


def inmemory_openfeature(contexts: Sequence[Context]) -> Contender:
    """The SDK floor: InMemoryProvider with a static flag (it has no targeting language)."""
    from openfeature.provider.in_memory_provider import InMemoryFlag, InMemoryProvider

    provider = InMemoryProvider({FLAG_KEY: InMemoryFlag("off", {"on": "on", "off": "off"})})
    contender = openfeature_contender(
        "InMemoryProvider via OpenFeature (SDK floor)",
        "floor",
        provider,
        contexts,
        "same client call; static flag, no rule",
    )
    return answers_off(contender)


def answers_off(contender: Contender) -> Contender:
    """A static flag answers "off" to everyone: the check looks for that, not for the split."""
    answer = contender.variant
    contender.variant = lambda i: "static" if answer(i) == "off" else answer(i)
    return contender


def flagd_core(contexts: Sequence[Context]) -> Contender:
    from openfeature.contrib.tools.flagd.core import FlagdCore

    core = FlagdCore()
    core.set_flags(json.dumps(flagd_document()))
    ctxs = evaluation_contexts(contexts)

    def batch(items: Sequence[Any]) -> None:
        resolve = core.resolve_string_value
        for ctx in items:
            resolve(FLAG_KEY, "default", ctx)

    def variant(i: int) -> str:
        details = core.resolve_string_value(FLAG_KEY, "default", ctxs[i])
        return str(details.value)

    return Contender(
        name=f"flagd-core {version('openfeature-flagd-core')}",
        role="peer",
        contexts=ctxs,
        batch=batch,
        variant=variant,
        note="FlagdCore.resolve_string_value (fractional v3)",
    )


def growthbook(contexts: Sequence[Context]) -> Contender:
    from growthbook import GrowthBook

    features = {
        FLAG_KEY: {
            "defaultValue": "off",
            "rules": [
                {
                    "condition": {
                        "country": {"$in": list(COUNTRIES_IN)},
                        "age": {"$gte": MIN_AGE},
                        "email": {"$regex": EMAIL_SUFFIX.replace(".", "\\.") + "$"},
                    },
                    "force": "on",
                    "coverage": 0.5,
                    "hashAttribute": "email",
                    "seed": FLAG_KEY,
                }
            ],
        }
    }
    gb = GrowthBook(features=features)  # no api_host/client_key: nothing to fetch
    attrs = [dict(c) for c in contexts]

    def batch(items: Sequence[Any]) -> None:
        set_attributes = gb.set_attributes
        get = gb.get_feature_value
        for a in items:
            set_attributes(a)
            get(FLAG_KEY, "off")

    def variant(i: int) -> str:
        gb.set_attributes(attrs[i])
        return str(gb.get_feature_value(FLAG_KEY, "default"))

    return Contender(
        name=f"GrowthBook {version('growthbook')}",
        role="peer",
        contexts=attrs,
        batch=batch,
        variant=variant,
        note="one instance; set_attributes + get_feature_value; rollout rule (force, coverage 0.5)",
    )


class _MemoryCache:
    """An in-memory Unleash cache (the default one writes files), bootstrapped with features."""

    bootstrapped = True

    def __init__(self, features: dict[str, Any]) -> None:
        from UnleashClient.constants import FEATURES_URL

        self._data: dict[str, Any] = {FEATURES_URL: json.dumps(features)}

    def set(self, key: str, value: Any) -> None:
        self._data[key] = value

    def mset(self, data: dict[str, Any]) -> None:
        self._data.update(data)

    def get(self, key: str, default: Any = None) -> Any:
        return self._data.get(key, default)

    def exists(self, key: str) -> bool:
        return key in self._data

    def destroy(self) -> None:
        self._data.clear()


def unleash(contexts: Sequence[Context], loopback_url: str) -> Contender:
    from UnleashClient import UnleashClient  # type: ignore[attr-defined]
    from UnleashClient.cache import BaseCache
    from UnleashClient.utils import InstanceAllowType

    features = {
        "version": 2,
        "features": [
            {
                "name": FLAG_KEY,
                "type": "release",
                "enabled": True,
                "project": "default",
                "strategies": [
                    {
                        "name": "flexibleRollout",
                        "parameters": {"rollout": "50", "stickiness": "email", "groupId": FLAG_KEY},
                        "constraints": [
                            {
                                "contextName": "country",
                                "operator": "IN",
                                "values": list(COUNTRIES_IN),
                            },
                            {"contextName": "age", "operator": "NUM_GTE", "value": str(MIN_AGE)},
                            {
                                "contextName": "email",
                                "operator": "STR_ENDS_WITH",
                                "values": [EMAIL_SUFFIX],
                            },
                        ],
                    }
                ],
            }
        ],
    }
    cache = _MemoryCache(features)
    BaseCache.register(_MemoryCache)
    # Bootstrapped from the cache in the constructor; initialize_client() is never called, so no
    # registration, polling or metrics job starts. The URL is a loopback port nothing listens on.
    client = UnleashClient(
        url=loopback_url,
        app_name="stageless-bench",
        disable_metrics=True,
        disable_registration=True,
        cache=cache,  # type: ignore[arg-type]
        multiple_instance_mode=InstanceAllowType.SILENTLY_ALLOW,
    )
    ctxs = [
        {
            "userId": c["targetingKey"],
            "properties": {"country": c["country"], "age": str(c["age"]), "email": c["email"]},
        }
        for c in contexts
    ]

    def batch(items: Sequence[Any]) -> None:
        is_enabled = client.is_enabled
        for ctx in items:
            "on" if is_enabled(FLAG_KEY, ctx) else "off"

    def variant(i: int) -> str:
        return "on" if client.is_enabled(FLAG_KEY, ctxs[i]) else "off"

    return Contender(
        name=f"UnleashClient {version('UnleashClient')}",
        role="peer",
        contexts=ctxs,
        batch=batch,
        variant=variant,
        note="bootstrapped, never initialized; is_enabled; flexibleRollout 50 + 3 constraints",
    )


def launchdarkly(contexts: Sequence[Context], loopback_url: str, workdir: Path) -> Contender:
    from ldclient import Context as LDContext
    from ldclient.client import LDClient
    from ldclient.config import Config
    from ldclient.integrations import Files

    flag = {
        "key": FLAG_KEY,
        "version": 1,
        "on": True,
        "salt": FLAG_KEY,
        "variations": ["on", "off"],
        "offVariation": 1,
        "fallthrough": {"variation": 1},
        "targets": [],
        "prerequisites": [],
        "rules": [
            {
                "id": "rule-1",
                "clauses": [
                    {"attribute": "country", "op": "in", "values": list(COUNTRIES_IN)},
                    {"attribute": "age", "op": "greaterThanOrEqual", "values": [MIN_AGE]},
                    {"attribute": "email", "op": "endsWith", "values": [EMAIL_SUFFIX]},
                ],
                "rollout": {
                    "bucketBy": "email",
                    "variations": [
                        {"variation": 0, "weight": 50_000},
                        {"variation": 1, "weight": 50_000},
                    ],
                },
            }
        ],
    }
    path = workdir / "launchdarkly-flags.json"
    path.write_text(json.dumps({"flags": {FLAG_KEY: flag}}))
    config = Config(
        sdk_key="bench-no-network",
        base_uri=loopback_url,
        events_uri=loopback_url,
        stream_uri=loopback_url,
        send_events=False,
        diagnostic_opt_out=True,
        update_processor_class=Files.new_data_source(paths=[str(path)]),
    )
    client = LDClient(config=config, start_wait=5)
    if not client.is_initialized():
        raise RuntimeError("LaunchDarkly client did not load the flag file")
    ctxs = [
        LDContext.builder(c["targetingKey"])
        .set("country", c["country"])
        .set("age", c["age"])
        .set("email", c["email"])
        .build()
        for c in contexts
    ]

    def batch(items: Sequence[Any]) -> None:
        variation = client.variation
        for ctx in items:
            variation(FLAG_KEY, ctx, "off")

    def variant(i: int) -> str:
        return str(client.variation(FLAG_KEY, ctxs[i], "default"))

    return Contender(
        name=f"LaunchDarkly {version('launchdarkly-server-sdk')}",
        role="peer",
        contexts=ctxs,
        batch=batch,
        variant=variant,
        note="file data source, events off; variation; rule of 3 clauses + 50/50 rollout",
    )


def version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "?"


# --------------------------------------------------------------------------------------------
# No network, checked
# --------------------------------------------------------------------------------------------


class NetworkGuard:
    """Refuses and records every outgoing connection and name lookup made through ``socket``."""

    def __init__(self) -> None:
        self.attempts: list[str] = []

    def _refuse(self, what: str) -> None:
        self.attempts.append(what)
        raise OSError(f"bench/flags.py: network disabled ({what})")

    def install(self) -> None:
        def connect(_sock: socket.socket, address: Any) -> None:
            self._refuse(f"connect {address!r}")

        def connect_ex(_sock: socket.socket, address: Any) -> int:
            self._refuse(f"connect_ex {address!r}")
            return 1

        def getaddrinfo(host: Any, port: Any, *_args: Any, **_kwargs: Any) -> Any:
            self._refuse(f"getaddrinfo {host!r}:{port!r}")

        def create_connection(address: Any, *_args: Any, **_kwargs: Any) -> Any:
            self._refuse(f"create_connection {address!r}")

        socket.socket.connect = connect  # type: ignore[method-assign,assignment]
        socket.socket.connect_ex = connect_ex  # type: ignore[method-assign,assignment]
        socket.getaddrinfo = getaddrinfo
        socket.create_connection = create_connection


def unused_loopback_url() -> str:
    """A URL on a loopback port that nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# --------------------------------------------------------------------------------------------
# Checking and timing
# --------------------------------------------------------------------------------------------


def check(contender: Contender, contexts: Sequence[Context]) -> str:
    """Fail unless the contender answers like the flag means; returns a one-line summary."""
    sample = range(min(VERIFY_SAMPLE, len(contexts)))
    results = [(targeted_in(contexts[i]), contender.variant(i)) for i in sample]
    if contender.role in ("floor", "static"):
        bad = [v for _, v in results if v != "static"]
        if bad:
            raise AssertionError(f"{contender.name}: unexpected answers {bad[:5]}")
        return f"{contender.name}: static flag, {len(results)} answers checked"
    wrong_out = [v for hit, v in results if not hit and v != "off"]
    ins = [v for hit, v in results if hit]
    if wrong_out:
        raise AssertionError(f"{contender.name}: targeted-out contexts got {wrong_out[:5]}")
    if any(v not in ("on", "off") for v in ins):
        raise AssertionError(f"{contender.name}: unexpected variants {set(ins)}")
    share = ins.count("on") / len(ins)
    if abs(share - 0.5) > SPLIT_TOLERANCE:
        raise AssertionError(f"{contender.name}: 'on' share {share:.3f} among targeted-in")
    return (
        f"{contender.name}: {len(results) - len(ins)} targeted-out all 'off'; "
        f"{len(ins)} targeted-in, {share:.1%} 'on'"
    )


def split(contenders: Sequence[Contender], size: int) -> None:
    """Cut every contender's contexts into the same chunks (before timing, before the freeze)."""
    for c in contenders:
        c.chunks = [c.contexts[i : i + size] for i in range(0, len(c.contexts), size)]


def chunk_order(contenders: Sequence[Contender], step: int) -> list[Contender]:
    """The order of the contenders for the ``step``-th chunk of the run.

    Rotated by one place per chunk, and reversed in every other block of ``len(contenders)``
    chunks: every contender runs in every position, and before and after each neighbour, equally
    often (up to the last incomplete blocks).
    """
    n = len(contenders)
    order = list(contenders[step % n :]) + list(contenders[: step % n])
    if (step // n) % 2:
        order.reverse()
    return order


def time_rounds(contenders: Sequence[Contender], rounds: int) -> None:
    """Each round walks all contexts chunk by chunk; every contender evaluates each chunk in turn.

    The contenders of one chunk run back to back (a second or two for all of them), so drift in
    the machine's load between contenders is confined to that span, and the same chunk's times
    can be compared pairwise.
    """
    chunks = len(contenders[0].chunks)
    for r in range(rounds):
        for c in contenders:
            c.chunk_ns.append([0] * chunks)
            c.chunk_cpu_ns.append([0] * chunks)
        for k in range(chunks):
            for c in chunk_order(contenders, r * chunks + k):
                items = c.chunks[k]
                gc.collect()
                start_cpu = time.process_time_ns()
                start = time.perf_counter_ns()
                c.batch(items)
                c.chunk_ns[r][k] = time.perf_counter_ns() - start
                c.chunk_cpu_ns[r][k] = time.process_time_ns() - start_cpu
        print(f"  round {r + 1}/{rounds} done", file=sys.stderr)


def paired_ratios(a: Contender, b: Contender, *, cpu: bool = False) -> list[float]:
    """Time of ``a`` over time of ``b`` on the same chunk of contexts in the same round.

    Wall-clock by default; with ``cpu``, the process CPU time, which leaves out the time the
    process waited for a CPU while other work ran.
    """
    times_a, times_b = (a.chunk_cpu_ns, b.chunk_cpu_ns) if cpu else (a.chunk_ns, b.chunk_ns)
    return [
        ta / tb
        for round_a, round_b in zip(times_a, times_b, strict=True)
        for ta, tb in zip(round_a, round_b, strict=True)
    ]


@dataclass(frozen=True)
class Paired:
    """The median of paired chunk ratios and a distribution-free interval around it."""

    median: float
    low: float
    high: float
    coverage: float  # the interval's exact coverage for the median
    count: int

    @classmethod
    def of(cls, ratios: Sequence[float], confidence: float = 0.95) -> Paired:
        """Order-statistic interval: the k-th smallest and k-th largest ratio, with k from the
        binomial(n, 1/2) law of how many ratios fall below the true median (this treats the
        chunk pairs as independent draws)."""
        xs = sorted(ratios)
        n = len(xs)
        tail = (1 - confidence) / 2
        cdf, j = 0.0, 0
        while j < n // 2:
            next_cdf = cdf + math.comb(n, j) / 2**n
            if next_cdf > tail:
                break
            cdf, j = next_cdf, j + 1
        # The interval [x_(k), x_(n-k+1)] (1-based) misses the median with probability
        # 2 * P(B <= k - 1); k is the largest such that this stays within 1 - confidence (and 1
        # when even the full range does not reach it: the coverage printed says so).
        k = max(j, 1)
        low, high = xs[k - 1], xs[n - k]
        coverage = 1 - 2 * (cdf if j else 1 / 2**n)
        return cls(statistics.median(xs), low, high, coverage, n)

    def describe(self, what: str) -> str:
        return (
            f"{what} {self.median:.3f} ({self.coverage:.1%} interval {self.low:.3f}–"
            f"{self.high:.3f}, {self.count} chunk pairs)"
        )


@dataclass(frozen=True)
class Row:
    name: str
    median_us: float
    min_us: float
    max_us: float
    cpu_us: float
    paired_vs_engine: float
    role: str


def summarize(contenders: Sequence[Contender], count: int) -> list[Row]:
    engine = next(c for c in contenders if c.role == "engine")
    rows = []
    for c in contenders:
        per_eval = [sum(chunks) / count / 1_000 for chunks in c.chunk_ns]
        cpu = statistics.median(sum(chunks) / count / 1_000 for chunks in c.chunk_cpu_ns)
        paired = statistics.median(paired_ratios(c, engine))
        rows.append(
            Row(
                c.name,
                statistics.median(per_eval),
                min(per_eval),
                max(per_eval),
                cpu,
                paired,
                c.role,
            )
        )
    return rows


def render(rows: Sequence[Row]) -> str:
    engine = next(r for r in rows if r.role == "engine")
    lines = [
        "| contender | median µs/eval | min–max µs (rounds) | ratio vs Stageless engine "
        "| paired ratio vs engine | median CPU µs/eval |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ratio = r.median_us / engine.median_us
        lines.append(
            f"| {r.name} | {r.median_us:.2f} | {r.min_us:.2f}–{r.max_us:.2f} | {ratio:.1f}x "
            f"| {r.paired_vs_engine:.1f}x | {r.cpu_us:.2f} |"
        )
    return "\n".join(lines)


def verdicts(contenders: Sequence[Contender], rows: Sequence[Row]) -> list[str]:
    """The targets, judged on the paired chunk ratios; the ratio of round medians beside them."""
    by_name = {c.name: c for c in contenders}
    engine = next(r for r in rows if r.role == "engine")
    peers = [r for r in rows if r.role == "peer"]
    fastest = min(peers, key=lambda r: r.median_us)
    factor = Paired.of(paired_ratios(by_name[fastest.name], by_name[engine.name]))
    held = factor.median >= SPEED_FACTOR_TARGET
    out = [
        f"Target 1, engine >= {SPEED_FACTOR_TARGET:.0f}x faster than the fastest peer "
        f"({fastest.name}, {fastest.median_us:.2f} µs): "
        + factor.describe("paired factor")
        + f"; ratio of round medians {fastest.median_us / engine.median_us:.1f}x -> "
        + (
            "HELD"
            if held
            else f"MISSED by {SPEED_FACTOR_TARGET / factor.median:.1f}x (the engine would need "
            f"<= {fastest.median_us / SPEED_FACTOR_TARGET:.2f} µs per evaluation)"
        )
    ]
    for extra in rows:
        if extra.role == "engine-extra":
            extra_factor = Paired.of(paired_ratios(by_name[fastest.name], by_name[extra.name]))
            out.append(f"  ({extra.name}: " + extra_factor.describe("paired factor") + ")")
    via = next((r for r in rows if r.role == "openfeature"), None)
    floor = next((r for r in rows if r.role == "floor"), None)
    if via and floor:
        ratio = Paired.of(paired_ratios(by_name[via.name], by_name[floor.name]))
        cpu_ratio = Paired.of(paired_ratios(by_name[via.name], by_name[floor.name], cpu=True))
        overhead = ratio.median - 1
        ok = overhead <= OPENFEATURE_OVERHEAD_TARGET
        out.append(
            f"Target 2, via OpenFeature <= {OPENFEATURE_OVERHEAD_TARGET:.0%} slower than "
            f"InMemoryProvider ({floor.median_us:.2f} µs): "
            + ratio.describe("paired ratio")
            + f", {overhead:+.1%}; ratio of round medians "
            f"{via.median_us / floor.median_us - 1:+.1%} -> " + ("HELD" if ok else "MISSED")
        )
        out.append("  (" + cpu_ratio.describe("paired CPU-time ratio") + ")")
    return out


def load_average() -> str:
    """The 1/5/15-minute load: other work on the machine shows up in the timings."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def machine() -> str:
    model = "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (
        f"{os.cpu_count()} CPUs ({model}), Python {platform.python_version()} "
        f"({platform.python_implementation()}), {platform.system()} {platform.release()}"
    )


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """Move the set-up objects out of the collector's way, the same for every contender."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def factories(
    contexts: Sequence[Context], loopback: str, workdir: Path
) -> dict[str, Callable[[], Contender]]:
    """Every contender by a short name, in table order (the last one is ``--only`` only)."""
    return {
        "engine": lambda: stageless_engine(contexts, 2),
        "engine-v3": lambda: stageless_engine(contexts, 3),
        "openfeature": lambda: stageless_openfeature(contexts),
        "inmemory": lambda: inmemory_openfeature(contexts),
        "flagd-core": lambda: flagd_core(contexts),
        "growthbook": lambda: growthbook(contexts),
        "unleash": lambda: unleash(contexts, loopback),
        "launchdarkly": lambda: launchdarkly(contexts, loopback, workdir),
        "openfeature-static": lambda: stageless_openfeature(contexts, targeting=False),
    }


CONTENDER_NAMES = (
    "engine",
    "engine-v3",
    "openfeature",
    "inmemory",
    "flagd-core",
    "growthbook",
    "unleash",
    "launchdarkly",
    "openfeature-static",
)


def build(contexts: Sequence[Context], loopback: str, workdir: Path) -> list[Contender]:
    made = factories(contexts, loopback, workdir)
    return [make() for name, make in made.items() if name != "openfeature-static"]


def untimed_passes(name: str, contexts: Sequence[Context], passes: int) -> int:
    """Build one contender, check it, then evaluate every context ``passes`` times, untimed.

    For instruction counts that do not depend on the machine's load: run it under
    ``valgrind --tool=callgrind`` with ``--passes 0`` and ``--passes 1`` and divide the
    difference by the number of contexts (docs/benchmarks.md shows the commands).
    """
    with tempfile.TemporaryDirectory(prefix="stageless-bench-") as tmp:
        contender = factories(contexts, unused_loopback_url(), Path(tmp))[name]()
        check(contender, contexts)
        gc.collect()
        gc.freeze()
        for _ in range(passes):
            contender.batch(contender.contexts)
    print(f"{contender.name}: {passes} untimed pass(es) over {len(contexts):,} contexts")
    return 0


def profile_engine(contexts: Sequence[Context]) -> int:
    """Where the engine's time goes: cProfile over one pass (profiling inflates small calls)."""
    import cProfile
    import pstats

    engine = stageless_engine(contexts, 2)
    engine.batch(engine.contexts)  # warm up
    start = time.perf_counter_ns()
    engine.batch(engine.contexts)
    plain = (time.perf_counter_ns() - start) / len(contexts) / 1_000
    print(f"Stageless engine, unprofiled: {plain:.2f} µs/eval over {len(contexts):,} contexts")
    profiler = cProfile.Profile()
    profiler.runcall(engine.batch, engine.contexts)
    pstats.Stats(profiler).sort_stats("tottime").print_stats(20)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contexts", type=int, default=100_000, help="distinct contexts")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per contender")
    parser.add_argument(
        "--chunk",
        type=int,
        default=5_000,
        help="contexts per chunk: each chunk is timed for every contender in turn",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="10,000 contexts, chunks of 1,000 and 3 rounds (a smoke run)",
    )
    parser.add_argument(
        "--only",
        choices=CONTENDER_NAMES,
        help="no table: build this contender alone and run --passes untimed passes (for callgrind)",
    )
    parser.add_argument("--passes", type=int, default=1, help="untimed passes for --only")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="instead of the table, cProfile the Stageless engine and print where time goes",
    )
    args = parser.parse_args(argv)
    count, rounds, chunk = (
        (10_000, 3, 1_000) if args.quick else (args.contexts, args.rounds, args.chunk)
    )
    if chunk < 1:
        parser.error("--chunk must be at least 1")
    if args.profile:
        return profile_engine(generate_contexts(count))
    if args.only:
        return untimed_passes(args.only, generate_contexts(count), args.passes)

    loopback = unused_loopback_url()
    guard = NetworkGuard()
    guard.install()
    contexts = generate_contexts(count)
    print(f"machine: {machine()}")
    chunks = -(-count // chunk)
    print(
        f"contexts: {count:,} distinct; rounds: {rounds}; chunks of {min(chunk, count):,} "
        f"({chunks} per round); flag: {FLAG_KEY!r}"
    )
    print(f"load average at start: {load_average()}")
    with tempfile.TemporaryDirectory(prefix="stageless-bench-") as tmp:
        contenders = build(contexts, loopback, Path(tmp))
        print("checks before timing:")
        for contender in contenders:
            print("  " + check(contender, contexts))
        split(contenders, chunk)
        with frozen_heap():
            time_rounds(contenders, rounds)
    if guard.attempts:
        print(f"NETWORK ATTEMPTED ({len(guard.attempts)}): {guard.attempts[:5]}")
        return 1
    print(
        "network: no connection or name lookup attempted; "
        f"threads alive: {sorted(t.name for t in threading.enumerate())}"
    )
    print(f"load average at end: {load_average()}")
    rows = summarize(contenders, count)
    print()
    print(render(rows))
    print()
    for c in contenders:
        print(f"- {c.name}: {c.note}")
    print()
    for line in verdicts(contenders, rows):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
