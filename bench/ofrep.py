"""OFREP throughput and p99 against a constant endpoint of the same server, in one run.

One server process (uvicorn, 1 worker, the real ``create_app`` over SQLite in a temporary
directory) serves the routes below behind the same middleware (access log and request metrics,
body limit) and the same authentication (an sdk token bound to the flag set, looked up exactly
as OFREP does it, with ``resolve_caller``):

* ``single``: ``POST /ofrep/v1/evaluate/flags/checkout`` — one targeted flag (country in a
  list, age >= 18, email suffix, then a 50/50 fractional split), a different context per request
  from a pool of CONTEXTS;
* ``bulk``: ``POST /ofrep/v1/evaluate/flags`` — all 50 flags of the set (20 targeted, 30
  static), no ``If-None-Match``, contexts from the same pool of CONTEXTS: after the first
  2 x CONTEXTS requests (a body is kept from its second evaluation) the server answers them
  from its cache of bulk answers (by flag-set version and request body,
  ``stageless.api.ofrep_bulk``), so this measures that path;
* ``bulk-new``: the same, but every request's context is new in the attributes that vary per
  user (a unique ``targetingKey`` and a unique ``email``, the attribute the rules' suffix test
  and fractional split read; country and age cycle through the pool as before): no answer is
  kept by request body. The 20 targeted flags carry the same rule, which cannot tell flags
  apart (the split buckets on the email), so they share one evaluator
  (``stageless.flags.sharing``) and every request runs it once for all 20; the 30 static
  items are encoded once per flag-set version; a request whose rule results were seen before
  is answered with that answer (kept by rule results);
* ``bulk-distinct``: as ``bulk-new``, on a second flag set (its own sdk token) whose 20
  targeted flags each have a rule of their own (age thresholds 18 to 37): every request runs
  the 20 rules, as one program in which the parts they have in common run once
  (``FlagSet.targeting_program``);
* ``baseline``: ``PUT /ofrep/v1/evaluate/flags`` — authenticates, then returns a constant JSON
  body (78 bytes). It exists only in this benchmark's app (never in ``create_app``'s): the
  bulk route's app is wrapped here in one that sends POST to the real bulk endpoint and PUT or
  PATCH to the constants, so the baseline is routed exactly as the bulk endpoint is (the same
  route, found after the same routes tried before it) and both pay the same wrapper. Until
  2026-11-28 the constants had routes of their own just before the OFREP routes, so every OFREP
  request also tried those and the bulk endpoint paid one route match more than the baseline
  (about 30 bytecodes, 0.25 µs in-process); the single-flag route pays the bulk route's, as it
  does in every app;
* ``baseline-bulk``: ``PATCH``, the same with a constant the size and shape of a bulk answer
  (50 items, an event stream URL; checked before timing to be within 5 % of a real bulk
  answer's length) and a bulk answer's headers: what sending the bigger body costs, shown
  beside the verdicts (which are against ``baseline``).

The load generator is ``wrk`` (C, one thread, CONNECTIONS connections; a Lua script sets the
method, token and rotating bodies and prints a JSON summary), so the Python server is the only
bottleneck. With two or more CPUs the server runs on the last one and ``wrk`` (with this
script) on the others: left to the scheduler they shared a CPU now and then. Runs are
interleaved (each round runs every endpoint once, in rotated order); throughput and latency
columns are medians over the rounds, and each ratio is the median over the rounds of the
endpoint's throughput over the baseline's in the same round. The access log is switched off
(log level warning) so that logging I/O does not dilute the evaluation's share.

Target: the evaluation path costs at most 25% of the baseline's throughput, i.e.
endpoint/baseline >= 0.75; the verdict lines print it for each endpoint.

Usage: nice -n -5 .venv/bin/python bench/ofrep.py [--duration 2] [--rounds 24]
       [--connections 32] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import platform
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

FLAG_SET = "bench"
DISTINCT_FLAG_SET = "bench-distinct"
SINGLE_FLAG = "checkout"
FLAGS = 50
TARGETED = 20
CONTEXTS = 200
TARGET_RATIO = 0.75
CONSTANT = b'{"key":"constant","reason":"STATIC","variant":"on","metadata":{},"value":true}'
ENDPOINTS = {
    "single": f"/ofrep/v1/evaluate/flags/{SINGLE_FLAG}",
    "bulk": "/ofrep/v1/evaluate/flags",
    "bulk-new": "/ofrep/v1/evaluate/flags",
    "bulk-distinct": "/ofrep/v1/evaluate/flags",
    "baseline": "/ofrep/v1/evaluate/flags",
    "baseline-bulk": "/ofrep/v1/evaluate/flags",
}
#: The constants share the bulk route (see ``make_app``): the method picks the endpoint.
METHODS = {"baseline": "PUT", "baseline-bulk": "PATCH"}
#: How far the bulk-sized constant's length may be from a real bulk answer's (a fraction).
SIZE_TOLERANCE = 0.05
#: Endpoints whose every request carries a context never sent before.
UNIQUE = {"bulk-new", "bulk-distinct"}
#: Endpoints that evaluate the flag set whose targeted flags have distinct rules.
DISTINCT = {"bulk-distinct"}
KEY_MARK = "@KEY@"  # in the bodies file: replaced by a unique key per request (key and email)

LUA = r"""
local bodies = {}
local lines = {}
local n = 0
local index = 0
local sent = 0
local unique = os.getenv("BENCH_UNIQUE")
local method = os.getenv("BENCH_METHOD")
local headers = {}
function init(args)
  headers = {
    ["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN"),
    ["Content-Type"] = "application/json",
  }
  for line in io.lines(os.getenv("BENCH_BODIES")) do
    n = n + 1
    lines[n] = line
    bodies[n] = wrk.format(method, nil, headers, line)
  end
end
function request()
  index = index % n + 1
  if unique then
    sent = sent + 1
    local body = string.gsub(lines[index], "@KEY@", unique .. "-" .. sent)
    return wrk.format(method, nil, headers, body)
  end
  return bodies[index]
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"non_2xx":%d,' ..
    '"socket_errors":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end
"""


def targeting(min_age: int = 18) -> dict[str, Any]:
    """The targeted flags' rule: country in a list, an age threshold, an email suffix, 50/50."""
    return {
        "if": [
            {
                "and": [
                    {"in": [{"var": "country"}, ["NL", "DE", "FR"]]},
                    {">=": [{"var": "age"}, min_age]},
                    {"ends_with": [{"var": "email"}, "@example.com"]},
                ]
            },
            {"fractional": [{"var": "email"}, ["on", 50], ["off", 50]]},
            "off",
        ]
    }


def flag_document(*, distinct: bool = False) -> dict[str, Any]:
    """50 flags: the first 20 targeted like the single flag, the rest static.

    ``distinct``: each targeted flag has a rule of its own (age thresholds 18 to 37), so no
    two share an evaluator and a bulk request runs 20 rules instead of one.
    """
    flags: dict[str, Any] = {}
    for i in range(FLAGS):
        key = SINGLE_FLAG if i == 0 else f"flag-{i:02d}"
        flag: dict[str, Any] = {
            "state": "ENABLED",
            "variants": {"on": True, "off": False},
            "defaultVariant": "off",
        }
        if i < TARGETED:
            flag["targeting"] = targeting(18 + i if distinct else 18)
        flags[key] = flag
    name = DISTINCT_FLAG_SET if distinct else FLAG_SET
    return {"metadata": {"flagSetId": name}, "flags": flags}


def contexts(key: str = "user-{i}") -> list[dict[str, Any]]:
    """CONTEXTS request bodies; ``key`` is the targeting key and the email's local part
    (``{i}``: the body's number)."""
    countries = ["NL", "DE", "FR", "US", "GB"]
    return [
        {
            "context": {
                "targetingKey": key.format(i=i),
                "email": f"{key.format(i=i)}@{'example.com' if i % 3 else 'elsewhere.org'}",
                "country": countries[i % len(countries)],
                "age": 15 + i % 40,
            }
        }
        for i in range(CONTEXTS)
    ]


def bulk_constant() -> bytes:
    """A constant the size and shape of a bulk answer of the bench set (50 items, metadata,
    one event stream whose URL carries a token as long as a signed stream token)."""
    items = [
        {
            "key": key,
            "reason": "TARGETING_MATCH" if i < TARGETED else "STATIC",
            "variant": "off",
            "metadata": {"flagSetId": FLAG_SET},
            "value": False,
        }
        for i, key in enumerate(flag_document()["flags"])
    ]
    url = "http://127.0.0.1:65535/ofrep/v1/events?token=sst_" + "x" * 130 + "&v=1"
    body = {
        "flags": items,
        "metadata": {"flagSetId": FLAG_SET},
        "eventStreams": [{"type": "sse", "url": url, "inactivityDelaySec": 120}],
    }
    return json.dumps(body, separators=(",", ":")).encode()


def make_app(data_dir: str) -> Any:
    """The real app plus the baseline routes (this benchmark only)."""
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route, request_response

    from stageless.api import create_app
    from stageless.api.ofrep import ofrep_errors, resolve_caller
    from stageless.settings import Settings

    async def constant(request: Request) -> Response:
        await resolve_caller(request)
        return Response(CONSTANT, media_type="application/json")

    sized = bulk_constant()
    etag = '"' + "0" * 32 + '"'  # a bulk answer's headers: an ETag and no-store

    async def constant_bulk(request: Request) -> Response:
        await resolve_caller(request)
        headers = {"ETag": etag, "Cache-Control": "no-store"}
        return Response(sized, headers=headers, media_type="application/json")

    settings = Settings(data_dir=Path(data_dir), log_level="warning")
    app = create_app(settings)
    # The constants are routed as the bulk endpoint is: by the same route, whose app sends
    # POST to the real endpoint and PUT or PATCH to a constant (one more frame for each).
    bulk_route = next(
        route
        for route in app.router.routes
        if isinstance(route, Route) and route.path == ENDPOINTS["bulk"]
    )
    bulk_app = bulk_route.app
    constant_apps = {
        METHODS["baseline"]: request_response(ofrep_errors(constant)),
        METHODS["baseline-bulk"]: request_response(ofrep_errors(constant_bulk)),
    }

    async def by_method(scope: Any, receive: Any, send: Any) -> None:
        if scope["method"] == "POST":
            await bulk_app(scope, receive, send)
        else:
            await constant_apps[scope["method"]](scope, receive, send)

    bulk_route.app = by_method
    bulk_route.methods = {"POST", *constant_apps}
    return app


def serve(data_dir: str, port: int) -> None:
    import uvicorn

    from stageless.api.logs import configure_logging
    from stageless.settings import Settings

    configure_logging(Settings(data_dir=Path(data_dir), log_level="warning"))
    uvicorn.run(
        make_app(data_dir),
        host="127.0.0.1",
        port=port,
        workers=1,
        log_config=None,
        access_log=False,
        log_level="warning",
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@contextlib.contextmanager
def server(data_dir: Path) -> Iterator[tuple[str, str, str, int]]:
    """Start the server; yield its URL, sdk tokens bound to the two bench flag sets, its pid."""
    from stageless.store import TokenScope, open_store, sqlite_url

    with open_store(sqlite_url(data_dir)) as store:
        token = store.create_token("bench", TokenScope.SDK, flag_set=FLAG_SET, actor="bench")
        store.create_flag_set(FLAG_SET, json.dumps(flag_document()), actor="bench")
        distinct = store.create_token(
            "bench-distinct", TokenScope.SDK, flag_set=DISTINCT_FLAG_SET, actor="bench"
        )
        document = json.dumps(flag_document(distinct=True))
        store.create_flag_set(DISTINCT_FLAG_SET, document, actor="bench")
    port = free_port()
    log = (data_dir / "server.log").open("wb")
    command = [sys.executable, __file__, "--serve", str(data_dir), str(port)]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
    cpus = server_cpus()
    if cpus is not None:
        os.sched_setaffinity(process.pid, cpus)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(url + "/api/v1/health", timeout=1).status_code == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((data_dir / "server.log").read_text())
            time.sleep(0.1)
        yield url, token.plaintext, distinct.plaintext, process.pid
    finally:
        process.terminate()
        process.wait(15)
        log.close()


def verify(url: str, token: str, distinct_token: str, bodies: list[str]) -> None:
    """Each endpoint answers 200 with the body it should, before anything is timed."""
    headers = {"Authorization": f"Bearer {token}"}
    check_distinct(url, distinct_token, bodies)
    single = httpx.post(url + ENDPOINTS["single"], content=bodies[1], headers=headers)
    bulk = httpx.post(url + ENDPOINTS["bulk"], content=bodies[1], headers=headers)
    baseline = httpx.put(url + ENDPOINTS["baseline"], content=bodies[1], headers=headers)
    check(single.status_code == 200 and single.json()["key"] == SINGLE_FLAG, single.text)
    check(single.json()["reason"] in ("TARGETING_MATCH", "DEFAULT"), single.text)
    check(bulk.status_code == 200 and len(bulk.json()["flags"]) == FLAGS, bulk.text)
    fresh = bodies[1].replace('"targetingKey":"user-1"', '"targetingKey":"verify-1"')
    new = httpx.post(url + ENDPOINTS["bulk-new"], content=fresh, headers=headers)
    check(new.status_code == 200 and new.json()["flags"] == bulk.json()["flags"], new.text)
    check(baseline.status_code == 200 and baseline.content == CONSTANT, baseline.text)
    sized = httpx.patch(url + ENDPOINTS["baseline-bulk"], content=bodies[1], headers=headers)
    check(sized.status_code == 200 and sized.content == bulk_constant(), sized.text)
    for answer in (bulk, new):
        gap = abs(len(sized.content) - len(answer.content)) / len(answer.content)
        check(
            gap <= SIZE_TOLERANCE,
            f"the bulk-sized constant has {len(sized.content)} bytes, a bulk answer "
            f"{len(answer.content)}: more than {SIZE_TOLERANCE:.0%} apart",
        )
    for name in ("baseline", "baseline-bulk"):
        refused = httpx.request(METHODS[name], url + ENDPOINTS[name], content=bodies[1])
        check(refused.status_code == 401, f"the {name} endpoint must authenticate")


def check_distinct(url: str, token: str, bodies: list[str]) -> None:
    """The distinct-rules set answers each flag by its own threshold, for every pool context."""
    from stageless.flags import parse_flag_set

    flags = parse_flag_set(flag_document(distinct=True))
    rules = {id(flags.rule_of(key)) for key in flags if flags.rule_of(key) is not None}
    check(len(rules) == TARGETED, f"expected {TARGETED} distinct rules, got {len(rules)}")
    headers = {"Authorization": f"Bearer {token}"}
    for body in bodies[:20]:
        reply = httpx.post(url + ENDPOINTS["bulk-distinct"], content=body, headers=headers)
        check(reply.status_code == 200, reply.text)
        context = json.loads(body)["context"]
        expected = {key: flags.evaluate(key, context).value for key in flags}
        check({f["key"]: f["value"] for f in reply.json()["flags"]} == expected, reply.text)


def check(condition: bool, message: str) -> None:
    if not condition:
        raise RuntimeError(f"verification failed: {message}")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process ``pid`` so far (``/proc/PID/stat``)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_wrk(
    url: str, name: str, env: dict[str, str], args: argparse.Namespace, server_pid: int
) -> dict[str, Any]:
    """One ``wrk`` run against endpoint ``name``, with the CPU time the server and ``wrk`` used.

    ``server_busy`` and ``wrk_busy`` are CPU seconds over the run's seconds: a server below
    about 1.0 was not the bottleneck of that run (the load generator was), so its throughput
    says less about the endpoint than about ``wrk``.
    """
    path = ENDPOINTS[name]
    env = dict(env, BENCH_METHOD=METHODS.get(name, "POST"))
    if name in UNIQUE:  # a prefix no earlier run used: no body repeats across runs either
        env["BENCH_UNIQUE"] = f"r{time.monotonic_ns()}"
        env["BENCH_BODIES"] = env["BENCH_UNIQUE_BODIES"]
    if name in DISTINCT:
        env["BENCH_TOKEN"] = env["BENCH_DISTINCT_TOKEN"]
    command = [
        "wrk",
        "-t1",
        f"-c{args.connections}",
        f"-d{round(args.duration)}s",
        "--timeout",
        "10s",
        "-s",
        env["BENCH_SCRIPT"],
        url + path,
    ]
    server_before, wrk_before = cpu_seconds(server_pid), children_cpu_seconds()
    completed = subprocess.run(  # noqa: S603
        command,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    if result["non_2xx"] or result["socket_errors"]:
        raise RuntimeError(f"{name}: errors during the run: {result}")
    seconds = result["duration_us"] / 1e6
    result["rps"] = result["requests"] / seconds
    result["server_busy"] = (cpu_seconds(server_pid) - server_before) / seconds
    result["wrk_busy"] = (children_cpu_seconds() - wrk_before) / seconds
    return result


@functools.cache
def server_cpus() -> frozenset[int] | None:
    """The CPU the server runs on (the last one), or None with fewer than 2 CPUs.

    The server and ``wrk`` on CPUs of their own: left to the scheduler they share one CPU now
    and then, and ``wrk`` works harder for some endpoints than for others (a new body per
    request, bigger answers to read), so sharing a CPU can slow the server for some endpoints
    more than for others.
    """
    cpus = sorted(os.sched_getaffinity(0))
    return frozenset(cpus[-1:]) if len(cpus) >= 2 else None


def pin_load_generator() -> None:
    """Keep this script, and so ``wrk``, off the server's CPU (after the server started)."""
    server = server_cpus()
    if server is not None:
        os.sched_setaffinity(0, set(os.sched_getaffinity(0)) - server)


def machine() -> str:
    model = platform.processor() or "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (
        f"{model}, {os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.system()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=2, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=24)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--quick", action="store_true", help="2 rounds of 2 s")
    parser.add_argument("--serve", nargs=2, metavar=("DATA_DIR", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]))
        return
    if args.quick:
        args.rounds, args.duration = 2, 2
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (Debian package wrk; see scripts/debian-packages)")

    with tempfile.TemporaryDirectory(prefix="stageless-bench-ofrep-") as tmp:
        data_dir = Path(tmp)
        bodies = [json.dumps(c, separators=(",", ":")) for c in contexts()]
        (data_dir / "bodies.txt").write_text("\n".join(bodies) + "\n")
        marked = [json.dumps(c, separators=(",", ":")) for c in contexts(KEY_MARK)]
        (data_dir / "unique.txt").write_text("\n".join(marked) + "\n")
        (data_dir / "bench.lua").write_text(LUA)
        print(f"machine: {machine()}; nice {os.nice(0)}")
        print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        with server(data_dir) as (url, token, distinct_token, pid):
            pin_load_generator()
            verify(url, token, distinct_token, bodies)
            env = {
                "BENCH_TOKEN": token,
                "BENCH_DISTINCT_TOKEN": distinct_token,
                "BENCH_BODIES": str(data_dir / "bodies.txt"),
                "BENCH_SCRIPT": str(data_dir / "bench.lua"),
                "BENCH_UNIQUE_BODIES": str(data_dir / "unique.txt"),
            }
            warm = argparse.Namespace(connections=args.connections, duration=1)
            for name in ENDPOINTS:
                run_wrk(url, name, env, warm, pid)
            results: dict[str, list[dict[str, Any]]] = {name: [] for name in ENDPOINTS}
            names = list(ENDPOINTS)
            for round_ in range(args.rounds):
                shift = round_ % len(names)
                for name in names[shift:] + names[:shift]:
                    results[name].append(run_wrk(url, name, env, args, pid))
                print(
                    f"round {round_ + 1}: "
                    + ", ".join(f"{n} {results[n][-1]['rps']:.0f}/s" for n in names)
                )
        print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    report(results, args)


def paired(results: dict[str, list[dict[str, Any]]], name: str, baseline: str) -> float:
    """The median over rounds of ``name``'s throughput over ``baseline``'s in the same round.

    A round runs every endpoint once within seconds, so the machine's slow and fast spells
    (this VM's throughput moves by a few percent from one run to the next) mostly cancel in
    the round's ratio, where a ratio of medians over all rounds would carry them.
    """
    pairs = zip(results[name], results[baseline], strict=True)
    return statistics.median(float(mine["rps"]) / float(theirs["rps"]) for mine, theirs in pairs)


def report(results: dict[str, list[dict[str, Any]]], args: argparse.Namespace) -> None:
    def median(name: str, field: str) -> float:
        return statistics.median(float(r[field]) for r in results[name])

    print(
        f"\nwrk -t1 -c{args.connections} -d{args.duration}s, {args.rounds} rounds; req/s and "
        "latencies: medians; ratios: medians of the rounds' ratios; uvicorn 1 worker"
    )
    print(
        f"{'endpoint':<34} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'vs constant':>11} "
        f"{'vs sized':>9} {'server':>7} {'wrk':>5}"
    )
    labels = {
        "baseline": f"constant ({len(CONSTANT)} B)",
        "baseline-bulk": f"constant, bulk-sized ({len(bulk_constant()):,} B)",
        "single": "OFREP single flag (targeted)",
        "bulk": f"OFREP bulk ({FLAGS} flags, {CONTEXTS} ctx)",
        "bulk-new": f"OFREP bulk ({FLAGS} flags, new ctx)",
        "bulk-distinct": f"  same, {TARGETED} distinct rules",
    }
    for name, label in labels.items():
        rps = median(name, "rps")
        sized = (
            f"{paired(results, name, 'baseline-bulk'):>9.2f}"
            if name.startswith("bulk") or name == "baseline-bulk"
            else f"{'':>9}"
        )
        print(
            f"{label:<34} {rps:>8.0f} {median(name, 'p50_us') / 1000:>7.2f} "
            f"{median(name, 'p99_us') / 1000:>7.2f} {paired(results, name, 'baseline'):>11.2f} "
            f"{sized} {median(name, 'server_busy'):>7.2f} {median(name, 'wrk_busy'):>5.2f}"
        )
    print()
    for name in ("single", "bulk", "bulk-new", "bulk-distinct"):
        ratio = paired(results, name, "baseline")
        verdict = "met" if ratio >= TARGET_RATIO else "MISSED"
        print(f"target {name}/baseline >= {TARGET_RATIO}: {ratio:.2f} ({verdict})")


if __name__ == "__main__":
    main()
