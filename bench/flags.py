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

Rounds are interleaved (each round times every contender once, in rotated order) so that machine
noise is shared; the table reports the median per-evaluation time of the rounds (wall clock,
time.perf_counter_ns), and beside it the median CPU time of the process (time.process_time_ns),
which other work on the machine disturbs less. The targets are judged on the wall-clock medians.

Usage: .venv/bin/python bench/flags.py [--contexts N] [--rounds N] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
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
from typing import Any

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

    ``run`` evaluates every prepared context once (the timed batch); ``variant`` evaluates context
    ``i`` and returns "on"/"off" (for the check before timing).
    """

    name: str
    role: str  # "engine", "engine-extra", "openfeature", "floor" or "peer"
    run: Callable[[], None]
    variant: Callable[[int], str]
    note: str = ""
    rounds_ns: list[int] = field(default_factory=list)
    rounds_cpu_ns: list[int] = field(default_factory=list)


def stageless_engine(contexts: Sequence[Context], fractional_version: int) -> Contender:
    from stageless.flags import parse_flag_set

    flags = parse_flag_set(json.dumps(flagd_document()), fractional_version=fractional_version)
    ctxs = [dict(c) for c in contexts]

    def run() -> None:
        evaluate = flags.evaluate
        for ctx in ctxs:
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
        run=run,
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

    def run() -> None:
        get = client.get_string_value
        for ctx in ctxs:
            get(FLAG_KEY, "default", ctx)

    def variant(i: int) -> str:
        details = client.get_string_details(FLAG_KEY, "default", ctxs[i])
        if details.error_code is not None:
            raise AssertionError(f"unexpected details {details!r}")
        return details.value

    return Contender(name=name, role=role, run=run, variant=variant, note=note)


def stageless_openfeature(contexts: Sequence[Context]) -> Contender:
    from stageless.flags import parse_flag_set
    from stageless.sdk import StagelessProvider

    flags = parse_flag_set(json.dumps(flagd_document()))
    return openfeature_contender(
        "Stageless via OpenFeature",
        "openfeature",
        StagelessProvider.from_flag_set(flags),
        contexts,
        "client.get_string_value, StagelessProvider",
    )


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
    # The floor has no rule, so it answers "off" to everyone: check that, not the split.
    static_variant = contender.variant
    contender.variant = lambda i: static_variant(i) and "static"
    return contender


def flagd_core(contexts: Sequence[Context]) -> Contender:
    from openfeature.contrib.tools.flagd.core import FlagdCore

    core = FlagdCore()
    core.set_flags(json.dumps(flagd_document()))
    ctxs = evaluation_contexts(contexts)

    def run() -> None:
        resolve = core.resolve_string_value
        for ctx in ctxs:
            resolve(FLAG_KEY, "default", ctx)

    def variant(i: int) -> str:
        details = core.resolve_string_value(FLAG_KEY, "default", ctxs[i])
        return str(details.value)

    return Contender(
        name=f"flagd-core {version('openfeature-flagd-core')}",
        role="peer",
        run=run,
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

    def run() -> None:
        set_attributes = gb.set_attributes
        get = gb.get_feature_value
        for a in attrs:
            set_attributes(a)
            get(FLAG_KEY, "off")

    def variant(i: int) -> str:
        gb.set_attributes(attrs[i])
        return str(gb.get_feature_value(FLAG_KEY, "default"))

    return Contender(
        name=f"GrowthBook {version('growthbook')}",
        role="peer",
        run=run,
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
    from UnleashClient import UnleashClient
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

    def run() -> None:
        is_enabled = client.is_enabled
        for ctx in ctxs:
            "on" if is_enabled(FLAG_KEY, ctx) else "off"

    def variant(i: int) -> str:
        return "on" if client.is_enabled(FLAG_KEY, ctxs[i]) else "off"

    return Contender(
        name=f"UnleashClient {version('UnleashClient')}",
        role="peer",
        run=run,
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

    def run() -> None:
        variation = client.variation
        for ctx in ctxs:
            variation(FLAG_KEY, ctx, "off")

    def variant(i: int) -> str:
        return str(client.variation(FLAG_KEY, ctxs[i], "default"))

    return Contender(
        name=f"LaunchDarkly {version('launchdarkly-server-sdk')}",
        role="peer",
        run=run,
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
        socket.create_connection = create_connection  # type: ignore[assignment]


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
    if contender.role == "floor":
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


def time_rounds(contenders: Sequence[Contender], rounds: int) -> None:
    """Each round times every contender once over all contexts, in a rotated order."""
    for r in range(rounds):
        order = list(contenders[r % len(contenders) :]) + list(contenders[: r % len(contenders)])
        for contender in order:
            gc.collect()
            start_cpu = time.process_time_ns()
            start = time.perf_counter_ns()
            contender.run()
            contender.rounds_ns.append(time.perf_counter_ns() - start)
            contender.rounds_cpu_ns.append(time.process_time_ns() - start_cpu)
        print(f"  round {r + 1}/{rounds} done", file=sys.stderr)


@dataclass(frozen=True)
class Row:
    name: str
    median_us: float
    min_us: float
    max_us: float
    cpu_us: float
    role: str


def summarize(contenders: Sequence[Contender], count: int) -> list[Row]:
    rows = []
    for c in contenders:
        per_eval = [ns / count / 1_000 for ns in c.rounds_ns]
        cpu = statistics.median(ns / count / 1_000 for ns in c.rounds_cpu_ns)
        rows.append(
            Row(c.name, statistics.median(per_eval), min(per_eval), max(per_eval), cpu, c.role)
        )
    return rows


def render(rows: Sequence[Row]) -> str:
    engine = next(r for r in rows if r.role == "engine")
    lines = [
        "| contender | median µs/eval | min–max µs (rounds) | ratio vs Stageless engine "
        "| median CPU µs/eval |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        ratio = r.median_us / engine.median_us
        lines.append(
            f"| {r.name} | {r.median_us:.2f} | {r.min_us:.2f}–{r.max_us:.2f} | {ratio:.1f}x "
            f"| {r.cpu_us:.2f} |"
        )
    return "\n".join(lines)


def verdicts(rows: Sequence[Row]) -> list[str]:
    engine = next(r for r in rows if r.role == "engine")
    peers = [r for r in rows if r.role == "peer"]
    fastest = min(peers, key=lambda r: r.median_us)
    factor = fastest.median_us / engine.median_us
    held = factor >= SPEED_FACTOR_TARGET
    out = [
        f"Target 1, engine >= {SPEED_FACTOR_TARGET:.0f}x faster than the fastest peer "
        f"({fastest.name}, {fastest.median_us:.2f} µs): {factor:.1f}x -> "
        + (
            "HELD"
            if held
            else f"MISSED by {SPEED_FACTOR_TARGET / factor:.1f}x (the engine would need "
            f"<= {fastest.median_us / SPEED_FACTOR_TARGET:.2f} µs per evaluation)"
        )
    ]
    out.extend(
        f"  ({extra.name}: {fastest.median_us / extra.median_us:.1f}x)"
        for extra in rows
        if extra.role == "engine-extra"
    )
    via = next((r for r in rows if r.role == "openfeature"), None)
    floor = next((r for r in rows if r.role == "floor"), None)
    if via and floor:
        overhead = via.median_us / floor.median_us - 1
        ok = overhead <= OPENFEATURE_OVERHEAD_TARGET
        out.append(
            f"Target 2, via OpenFeature <= {OPENFEATURE_OVERHEAD_TARGET:.0%} slower than "
            f"InMemoryProvider ({floor.median_us:.2f} µs): {via.median_us:.2f} µs, "
            f"{overhead:+.1%} -> " + ("HELD" if ok else "MISSED")
        )
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


def build(contexts: Sequence[Context], loopback: str, workdir: Path) -> list[Contender]:
    return [
        stageless_engine(contexts, 2),
        stageless_engine(contexts, 3),
        stageless_openfeature(contexts),
        inmemory_openfeature(contexts),
        flagd_core(contexts),
        growthbook(contexts),
        unleash(contexts, loopback),
        launchdarkly(contexts, loopback, workdir),
    ]


def profile_engine(contexts: Sequence[Context]) -> int:
    """Where the engine's time goes: cProfile over one pass (profiling inflates small calls)."""
    import cProfile
    import pstats

    engine = stageless_engine(contexts, 2)
    engine.run()  # warm up
    start = time.perf_counter_ns()
    engine.run()
    plain = (time.perf_counter_ns() - start) / len(contexts) / 1_000
    print(f"Stageless engine, unprofiled: {plain:.2f} µs/eval over {len(contexts):,} contexts")
    profiler = cProfile.Profile()
    profiler.runcall(engine.run)
    pstats.Stats(profiler).sort_stats("tottime").print_stats(20)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contexts", type=int, default=100_000, help="distinct contexts")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per contender")
    parser.add_argument(
        "--quick", action="store_true", help="10,000 contexts and 3 rounds (a smoke run)"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="instead of the table, cProfile the Stageless engine and print where time goes",
    )
    args = parser.parse_args(argv)
    count, rounds = (10_000, 3) if args.quick else (args.contexts, args.rounds)
    if args.profile:
        return profile_engine(generate_contexts(count))

    loopback = unused_loopback_url()
    guard = NetworkGuard()
    guard.install()
    contexts = generate_contexts(count)
    print(f"machine: {machine()}")
    print(f"contexts: {count:,} distinct; rounds: {rounds}; flag: {FLAG_KEY!r}")
    print(f"load average at start: {load_average()}")
    with tempfile.TemporaryDirectory(prefix="stageless-bench-") as tmp:
        contenders = build(contexts, loopback, Path(tmp))
        print("checks before timing:")
        for contender in contenders:
            print("  " + check(contender, contexts))
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
    for line in verdicts(rows):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
