"""Whole rollouts on simulated traffic: Stageless's controller beside a Flagger-style schedule.

Issue 6, "Measured": for a regressing candidate, the share of user requests that reached it
before the rollback and the time from its first canary request to the rollback; for a good one,
the time to full promotion; the same for a Flagger-style schedule on the same traffic. Nothing
but a simulated clock and simulated requests: no sockets, no sleeping.

Traffic (the user model of bench/canary.py): ``--rate`` requests per second (100) to one service
and route; sticky users (new ids arrive at 5 per second, each request picks one of the 3,000 ids
active at its time, so a user is active for about ten minutes); a user's version is fixed by a
per-seed uniform hash compared with the weight in force, as the proxy's bucketing does, so
raising the weight keeps the candidate's users on it. Stable: 0.5 % 5xx, 2 % 4xx, latency
lognormal (median 100 ms, sigma 0.5, so p99 about 320 ms; 429 ms by ``histogram_quantile`` over
the proxy's buckets, which are 250 and 500 ms around it). Candidates (``SCENARIOS``):

- ``regression``: 2 % 5xx, and 5 % of its requests 250 ms slower (the demo's kind of
  regression: more errors and a slower tail; its p99 is about 415 ms, 476 ms as the histogram
  tells it);
- ``tail only``: 5 % of its requests 250 ms slower, errors as stable;
- ``good``: the same as stable.

Every request's random draws (time, user, error, 4xx, latency, slow tail, reservoir key) come
from the seed whatever version serves it, so both controllers see the same requests and users
(common random numbers): only the weights they set differ.

Batches: every 10 s, one per version (traffic class ``user``), as the proxy's aggregate emits
them: ``ts`` the interval's start, ``configured_share`` the share in force when it is emitted,
requests, 5xx, 4xx, distinct users, new users (first seen in the current step; a new share starts
a step, also in the middle of an interval, and users seen before the change do not count), a
uniform reservoir of at most 1,000 latencies in ms rounded to 3 decimals, and per-bucket counts
over the proxy's default bounds.

Timing: each controller acts ``LAG_S`` (2 s) after an interval ends (the proxy's report, the
runner's 1 s tick, the pushed weights), and a new weight is in force from that moment, so the
interval in progress is split between the old and the new weight.

Controllers:

- ``stageless``: the real controller (``stageless.rollout.machine.transition``) on the plan
  ``PLAN`` (canary 5 %, 25 %, 50 %, promote; every other field at its default: min_duration_s
  300, max_duration_s 3600, on_timeout pause, the default judge settings, on_invalid pause),
  driven as the runner (``stageless.controller.runner``) drives it: after each interval the
  current canary step's ``SequentialJudge`` takes the new batches whose ``ts`` is at or after the
  step's start (the runner's cursor, so the split interval is skipped), a final verdict is
  reported once (``JudgeReported``), then a ``Tick``; ``SetWeight`` sets the weight, ``StartJudge``
  starts a fresh judge, ``RollBack`` sets 0 and is confirmed (``RollbackCompleted``), ``Promote``
  is confirmed (``PromotionCompleted``). The plan has no shadow or testers step: they gate on a
  diff report and on a person, which this simulation does not model.
- ``flagger``: Flagger's canary schedule (fluxcd/flagger, pkg/controller/scheduler.go), analysis
  interval 1 min, stepWeights [5, 25, 50], threshold 5, its two built-in checks as
  ``ThresholdJudge`` computes them over the last minute (request success rate >= 99 %, request
  duration p99 <= 500 ms; no canary traffic fails the check), the p99 from the batches'
  histograms as Prometheus' ``histogram_quantile`` reads them (Flagger's data has no samples).
  Each tick: in promotion, route all traffic to the promoted primary (done); if the failed
  checks have reached the threshold, roll back; at weight 0 (the first tick), set the first step
  weight without analysis; otherwise check the last minute: a failure counts (never reset by a
  later pass) and holds the weight; a pass moves to the next step weight, or at the last one
  starts the promotion (the primary gets the candidate's spec; the canary keeps its weight until
  the next tick). So a rollback comes one tick after the threshold-th failed check, and the
  promotion one tick after the last check passed, as in Flagger.

Per scenario and controller, over the seeds: how runs ended (rolled back, promoted, paused
waiting for a person, still running at the 4 h horizon), and for the decision that is right
for the scenario (rollback for a regression, promotion for a good candidate) the median and p90
minutes from the first canary request to it (a promotion: until all traffic is on the candidate),
the median canary requests, the median share of
all user requests in that time that reached the candidate, the median of the candidate's 5xx,
and the weights it was decided at. A run that did not reach that decision counts as never
(+inf), so a median shows ``n/d`` when fewer than half the runs reached it.

Usage: .venv/bin/python bench/rollout.py [--seeds 500 | --quick] [--workers 2] [--markdown]
"""

from __future__ import annotations

import argparse
import csv
import math
import multiprocessing
import platform
import re
import sys
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from canary import (
    ACTIVE_USERS,
    CLIENT_ERROR,
    MEDIAN_MS,
    SIGMA,
    T0,
    USER_ARRIVALS_PER_S,
    fmt,
    git_sha,
    quantile,
)
from stageless.analysis import (
    Batch,
    Histogram,
    SequentialJudge,
    ThresholdConfig,
    ThresholdJudge,
    TrafficClass,
    Version,
)
from stageless.proxy.stats import DEFAULT_BOUNDS_MS, RESERVOIR_SIZE
from stageless.rollout import (
    Event,
    Phase,
    Promote,
    PromotionCompleted,
    RollBack,
    RollbackCompleted,
    RolloutState,
    SetWeight,
    StartJudge,
    StartRequested,
    StopJudge,
    Tick,
    parse_plan,
    transition,
)
from stageless.rollout.events import JudgeReported

RATE_RPS = 100.0
INTERVAL_S = 10.0
LAG_S = 2.0
HORIZON_S = 4 * 3_600.0
CHUNK = 180  # intervals generated at a time (30 min)
STABLE_ERROR = 0.005
SERVICE, ROUTE = "checkout", "/api"
LE_MS = (*DEFAULT_BOUNDS_MS, math.inf)
CONTROLLERS = ("stageless", "flagger")

PLAN = """\
service: checkout
stable: {addresses: ["10.0.0.1:8080"]}
candidate: {addresses: ["10.0.0.2:8080"]}
steps:
  - {kind: canary, weight: 5}
  - {kind: canary, weight: 25}
  - {kind: canary, weight: 50}
  - {kind: promote}
"""

#: Flagger-style schedule: analysis interval, stepWeights, threshold (failed checks).
FLAGGER_INTERVAL_S = 60.0
FLAGGER_STEPS = (5.0, 25.0, 50.0)
FLAGGER_THRESHOLD = 5
FLAGGER_CHECKS = ThresholdConfig(
    check_interval_s=FLAGGER_INTERVAL_S,
    success_rate_min=99.0,
    p99_max_ms=500.0,
    threshold=10**9,  # the schedule below counts failures and decides, not the judge
    checks_to_pass=10**9,
    service=SERVICE,
    route=ROUTE,
)


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    error: float  # the candidate's 5xx rate
    slow_share: float  # share of the candidate's requests that are slow_ms slower
    slow_ms: float
    regression: bool

    @property
    def target(self) -> str:
        return "ROLLED_BACK" if self.regression else "PROMOTED"


SCENARIOS = (
    Scenario("regression", error=0.02, slow_share=0.05, slow_ms=250.0, regression=True),
    Scenario("tail only", error=STABLE_ERROR, slow_share=0.05, slow_ms=250.0, regression=True),
    Scenario("good", error=STABLE_ERROR, slow_share=0.0, slow_ms=0.0, regression=False),
)


# -- traffic ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Requests:
    """One interval's requests in time order, with every random draw they need."""

    t: NDArray[np.float64]
    user: NDArray[np.int64]
    u_error: NDArray[np.float64]
    u_client: NDArray[np.float64]
    z: NDArray[np.float64]
    u_slow: NDArray[np.float64]
    key: NDArray[np.float64]  # the reservoir keeps the requests with the smallest keys


class Traffic:
    """The seed's requests, interval by interval (generated ``CHUNK`` intervals at a time)."""

    def __init__(self, seed: int, rate: float) -> None:
        self.seed = seed
        self.rate = rate
        users = int(USER_ARRIVALS_PER_S * HORIZON_S) + ACTIVE_USERS + 1
        self.hashes = np.random.Generator(np.random.PCG64([seed, 0])).random(users)
        self._chunk = -1
        self._all: Requests | None = None
        self._offsets: NDArray[np.int64] = np.zeros(1, dtype=np.int64)

    def interval(self, i: int) -> Requests:
        chunk, k = divmod(i, CHUNK)
        if chunk != self._chunk:
            self._load(chunk)
        r = self._all
        assert r is not None  # noqa: S101
        lo, hi = int(self._offsets[k]), int(self._offsets[k + 1])
        return Requests(
            r.t[lo:hi],
            r.user[lo:hi],
            r.u_error[lo:hi],
            r.u_client[lo:hi],
            r.z[lo:hi],
            r.u_slow[lo:hi],
            r.key[lo:hi],
        )

    def _load(self, chunk: int) -> None:
        rng = np.random.Generator(np.random.PCG64([self.seed, 1, chunk]))
        counts = rng.poisson(self.rate * INTERVAL_S, CHUNK)
        total = int(counts.sum())
        first = chunk * CHUNK
        offsets = np.concatenate(([0], np.cumsum(counts)))
        interval_of = np.repeat(np.arange(first, first + CHUNK), counts)
        t = np.sort(T0 + (interval_of + rng.random(total)) * INTERVAL_S)  # in interval order
        user = (USER_ARRIVALS_PER_S * (t - T0)).astype(np.int64)
        user += rng.integers(0, ACTIVE_USERS, total)
        u = rng.random((4, total))
        self._all = Requests(t, user, u[0], u[1], rng.standard_normal(total), u[2], u[3])
        self._offsets = offsets.astype(np.int64)
        self._chunk = chunk


@dataclass(frozen=True, slots=True)
class Served:
    """How one interval's requests were served."""

    requests: Requests
    canary: NDArray[np.bool_]
    error: NDArray[np.bool_]
    client: NDArray[np.bool_]
    latency: NDArray[np.float64]
    new: NDArray[np.bool_]  # the user's first request in the step


@dataclass(slots=True)
class Exposure:
    """What reached the candidate, counted from its first request until the run ended."""

    first: float | None = None  # time of the candidate's first request
    canary: int = 0
    canary_errors: int = 0
    total: int = 0  # every user request from ``first`` on

    def add(self, served: Served, until: float) -> None:
        t = served.requests.t
        canary = served.canary & (t < until)
        if self.first is None:
            if not canary.any():
                return
            self.first = float(t[np.argmax(canary)])
        self.canary += int(canary.sum())
        self.canary_errors += int((canary & served.error).sum())
        self.total += int(((t >= self.first) & (t < until)).sum())


class Proxy:
    """The data plane: splits requests by the weight in force and emits batches as the proxy."""

    def __init__(self, traffic: Traffic, scenario: Scenario) -> None:
        self.traffic = traffic
        self.scenario = scenario
        self.seen = np.zeros(traffic.hashes.size, dtype=bool)  # users seen in the step
        self.exposure = Exposure()

    def interval(
        self, i: int, weights: tuple[float, float], change_at: float, until: float = math.inf
    ) -> tuple[Batch, Batch]:
        """Interval ``i`` served at ``weights[0]`` before ``change_at``, ``weights[1]`` from
        then; requests from ``until`` on are left out of the exposure (the run ended)."""
        r = self.traffic.interval(i)
        old, new = weights
        sc = self.scenario
        canary = self.traffic.hashes[r.user] < np.where(r.t < change_at, old, new) / 100.0
        error = r.u_error < np.where(canary, sc.error, STABLE_ERROR)
        latency = np.exp(math.log(MEDIAN_MS) + SIGMA * r.z)
        if sc.slow_share:
            latency += (canary & (r.u_slow < sc.slow_share)) * sc.slow_ms
        served = Served(
            requests=r,
            canary=canary,
            error=error,
            client=~error & (r.u_client < CLIENT_ERROR),
            latency=latency,
            new=self._new_users(r, change_at if old != new else -math.inf),
        )
        self.exposure.add(served, until)
        ts = T0 + i * INTERVAL_S
        return (
            _batch(ts, Version.STABLE, 1.0 - new / 100.0, ~canary, served),
            _batch(ts, Version.CANDIDATE, new / 100.0, canary, served),
        )

    def _new_users(self, r: Requests, step_start: float) -> NDArray[np.bool_]:
        """Requests that are their user's first in the step. A step starting in this interval
        (at ``step_start``) forgets every user seen before, as ``Aggregate.set_share`` does."""
        new = np.zeros(r.t.size, dtype=bool)
        counted = np.flatnonzero(r.t >= step_start)
        if step_start > -math.inf:
            self.seen[:] = False
        ids, first = np.unique(r.user[counted], return_index=True)
        fresh = ~self.seen[ids]
        new[counted[first[fresh]]] = True
        self.seen[ids] = True
        return new


def _batch(ts: float, version: Version, share: float, mask: NDArray[np.bool_], s: Served) -> Batch:
    latency = s.latency[mask]
    samples = latency
    if samples.size > RESERVOIR_SIZE:
        samples = samples[np.argpartition(s.requests.key[mask], RESERVOIR_SIZE)[:RESERVOIR_SIZE]]
    buckets = np.bincount(np.searchsorted(LE_MS, latency, side="left"), minlength=len(LE_MS))
    return Batch(
        ts=ts,
        interval_s=INTERVAL_S,
        service=SERVICE,
        route=ROUTE,
        version=version,
        traffic_class=TrafficClass.USER,
        configured_share=share,
        requests=int(mask.sum()),
        errors=int((s.error & mask).sum()),
        client_errors=int((s.client & mask).sum()),
        users=int(np.unique(s.requests.user[mask]).size),
        samples=tuple(np.round(samples, 3).tolist()),
        histogram=Histogram(LE_MS, tuple(buckets.tolist())),
        new_users=int((s.new & mask).sum()),
    )


# -- controllers -----------------------------------------------------------------------------


class Controller(Protocol):
    """A rollout controller as the simulation drives it."""

    weight: float
    ended: str | None  # ROLLED_BACK, PROMOTED or PAUSED once it stopped on its own
    reason: str

    def start(self, now: float) -> None: ...

    def report(self, now: float, batches: Sequence[Batch]) -> None:
        """The batches of the interval that just ended, ``LAG_S`` after its end."""
        ...


class Stageless:
    """The real controller machine and a fresh ``SequentialJudge`` per canary step, carried out
    as ``stageless.controller.runner`` does (judge first, then a tick; follow-up events at once)."""

    def __init__(self) -> None:
        self.state = RolloutState(parse_plan(PLAN, source="bench/rollout.py PLAN"))
        self.weight = 0.0
        self.ended: str | None = None
        self.reason = ""
        self.judge: SequentialJudge | None = None
        self.judge_step = -1
        self.cursor = 0.0
        self.reported = False

    def start(self, now: float) -> None:
        self._handle(StartRequested("bench"), now)

    def report(self, now: float, batches: Sequence[Batch]) -> None:
        judge = self.judge
        if judge is not None and self.judge_step == self.state.step and not self.reported:
            fresh = [b for b in batches if b.ts >= self.cursor]  # the runner's cursor
            if judge.observe_many(fresh).final:
                self.reported = True
                event = JudgeReported.from_decision(self.judge_step, judge.decision())
                self._handle(event, now)
        self._handle(Tick(), now)

    def _handle(self, event: Event, now: float) -> None:
        queue: deque[Event] = deque([event])
        while queue:
            before = self.state
            self.state, commands = transition(before, queue.popleft(), now)
            for command in commands:
                if isinstance(command, SetWeight):
                    self.weight = command.weight
                elif isinstance(command, StartJudge):
                    self.judge = SequentialJudge(command.config)
                    self.judge_step, self.cursor, self.reported = command.step, now, False
                elif isinstance(command, StopJudge) and command.step == self.judge_step:
                    self.judge = None
                elif isinstance(command, RollBack):
                    self.weight = 0.0
                    queue.append(RollbackCompleted())
                elif isinstance(command, Promote):
                    queue.append(PromotionCompleted())
            if self.state.traffic.weight != self.weight and self.state.phase is not Phase.PROMOTED:
                raise AssertionError(f"weight {self.weight} but {self.state.traffic}")
        phase = self.state.phase
        if phase in (Phase.ROLLED_BACK, Phase.PROMOTED, Phase.PAUSED):
            self.ended = str(phase)
        self.reason = self.state.reason


class FlaggerStyle:
    """Flagger's canary schedule with its built-in checks (see the module docstring)."""

    def __init__(self) -> None:
        self.judge = ThresholdJudge(FLAGGER_CHECKS)
        self.weight = 0.0
        self.ended: str | None = None
        self.reason = ""
        self.failed = 0
        self.reports = 0
        self.promoting = False
        self.reports_per_tick = round(FLAGGER_INTERVAL_S / INTERVAL_S)

    def start(self, now: float) -> None:
        self.weight = FLAGGER_STEPS[0]  # the first tick: no analysis at weight 0

    def report(self, now: float, batches: Sequence[Batch]) -> None:
        checked, failed = self.judge.checked, self.judge.failed_checks
        for batch in batches:  # Prometheus has the histogram, not the proxy's samples
            self.judge.observe(replace(batch, samples=()))
        self.reports += 1
        if self.reports % self.reports_per_tick:
            return
        if self.promoting:  # the tick after the promotion: all traffic to the promoted primary
            self.weight, self.ended = 100.0, "PROMOTED"
            return
        if self.failed >= FLAGGER_THRESHOLD:  # checked first, before this tick's analysis
            self.weight, self.ended = 0.0, "ROLLED_BACK"
            self.reason = f"{self.failed} failed checks"
            return
        if self.judge.checked != checked + 1:
            raise AssertionError("the checks are not aligned with the schedule's ticks")
        if self.judge.failed_checks > failed:
            self.failed += 1  # the weight is held
            return
        later = [w for w in FLAGGER_STEPS if w > self.weight]
        if later:
            self.weight = later[0]
        else:  # the primary gets the candidate's spec; traffic moves at the next tick
            self.promoting = True
            self.reason = f"the check at {FLAGGER_STEPS[-1]:g}% passed"


# -- runs ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    scenario: str
    controller: str
    seed: int
    ended: str  # ROLLED_BACK, PROMOTED, PAUSED (waiting for a person) or RUNNING (at the horizon)
    minutes: float  # from the candidate's first request to the end
    canary_requests: int
    canary_errors: int
    user_requests: int  # every user request in that time
    weight: float  # the weight in force when it ended (before a rollback's 0)
    reason: str
    steps: tuple[tuple[float, float], ...]  # (weight, minutes at it), in order

    def to_row(self) -> list[object]:
        return [getattr(self, name) for name in Outcome.__slots__]

    @property
    def share(self) -> float:
        """Percent of the user requests that reached the candidate."""
        return 100.0 * self.canary_requests / self.user_requests if self.user_requests else 0.0


def simulate(scenario: Scenario, name: str, seed: int, rate: float) -> Outcome:
    """One rollout of ``scenario``'s candidate by controller ``name`` on seed ``seed``."""
    controller: Controller = Stageless() if name == "stageless" else FlaggerStyle()
    proxy = Proxy(Traffic(seed, rate), scenario)
    now = T0 + LAG_S
    controller.start(now)
    before = 0.0
    batches: tuple[Batch, ...] = ()
    ended, end = "RUNNING", T0 + HORIZON_S
    changes = [(controller.weight, now)]
    for i in range(int(HORIZON_S / INTERVAL_S)):
        if i > 0:
            now = T0 + i * INTERVAL_S + LAG_S
            before = controller.weight
            controller.report(now, batches)
            if controller.weight != before:
                changes.append((controller.weight, now))
        if controller.ended is not None:
            proxy.interval(i, (before, controller.weight), now, until=now)
            ended, end = controller.ended, now
            break
        batches = proxy.interval(i, (before, controller.weight), now)
        before = controller.weight
    exposure = proxy.exposure
    first = exposure.first if exposure.first is not None else T0
    ends = [since for _, since in changes[1:]] + [end]
    steps = tuple(
        (weight, (until - since) / 60.0)
        for (weight, since), until in zip(changes, ends, strict=True)
        if 0 < weight < 100 and until > since
    )
    return Outcome(
        scenario=scenario.name,
        controller=name,
        seed=seed,
        ended=ended,
        minutes=(end - first) / 60.0,
        canary_requests=exposure.canary,
        canary_errors=exposure.canary_errors,
        user_requests=exposure.total,
        weight=before,
        reason=controller.reason,
        steps=steps,
    )


def run(task: tuple[int, int, float]) -> list[Outcome]:
    """Both controllers on one scenario and seed (the same requests)."""
    s, seed, rate = task
    return [simulate(SCENARIOS[s], name, seed, rate) for name in CONTROLLERS]


def collect(seeds: int, workers: int, rate: float) -> list[Outcome]:
    tasks = [(s, seed, rate) for seed in range(seeds) for s in range(len(SCENARIOS))]
    outcomes: list[Outcome] = []
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        for done, result in enumerate(pool.imap_unordered(run, tasks), start=1):
            outcomes.extend(result)
            if done % 30 == 0:
                print(f"  {done:,} of {len(tasks):,} runs", file=sys.stderr, flush=True)
    return sorted(outcomes, key=lambda o: (o.scenario, o.controller, o.seed))


# -- report ----------------------------------------------------------------------------------

COLUMNS = (
    "scenario",
    "controller",
    "rolled back",
    "promoted",
    "paused",
    "running at 4 h",
    "decision",
    "minutes median",
    "minutes p90",
    "canary requests median",
    "share of user requests median",
    "canary 5xx median",
    "decided at weight",
)


def rows(outcomes: Sequence[Outcome]) -> list[list[str]]:
    out = []
    for scenario in SCENARIOS:
        for name in CONTROLLERS:
            runs = [o for o in outcomes if o.scenario == scenario.name and o.controller == name]
            if runs:
                out.append([scenario.name, name, *_cells(runs, scenario)])
    return out


def _cells(runs: list[Outcome], scenario: Scenario) -> list[str]:
    target = scenario.target
    rates = [
        f"{sum(o.ended == ended for o in runs) / len(runs):.1%}"
        for ended in ("ROLLED_BACK", "PROMOTED", "PAUSED", "RUNNING")
    ]

    def q(attr: str, level: float) -> float:
        return quantile([getattr(o, attr) if o.ended == target else math.inf for o in runs], level)

    share = q("share", 0.5)
    weights = Counter(o.weight for o in runs if o.ended == target)
    return [
        *rates,
        "rollback" if scenario.regression else "promotion",
        fmt(q("minutes", 0.5), 1),
        fmt(q("minutes", 0.9), 1),
        fmt(q("canary_requests", 0.5)),
        fmt(share, 2) + ("" if math.isinf(share) else "%"),
        fmt(q("canary_errors", 0.5)),
        ", ".join(f"{w:g}%: {n}" for w, n in sorted(weights.items())) or "-",
    ]


def render(table: list[list[str]], *, markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        lines += ["| " + " | ".join(row) + " |" for row in table]
        return "\n".join(lines)
    widths = [max(len(c), *(len(r[i]) for r in table)) for i, c in enumerate(COLUMNS)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in table]
    return "\n".join(line.rstrip() for line in lines)


def step_minutes(outcomes: Sequence[Outcome]) -> list[str]:
    """Median minutes at each weight, over the runs that ended as their scenario asks."""
    lines = []
    for scenario in SCENARIOS:
        for name in CONTROLLERS:
            runs = [o for o in outcomes if (o.scenario, o.controller) == (scenario.name, name)]
            runs = [o for o in runs if o.ended == scenario.target]
            at: dict[float, list[float]] = {}
            for o in runs:
                for weight, minutes in o.steps:
                    at.setdefault(weight, []).append(minutes)
            if at:
                medians = ", ".join(
                    f"{w:g}% {float(np.median(m)):.1f} min ({len(m)} runs)"
                    for w, m in sorted(at.items())
                )
                lines.append(f"- {scenario.name} / {name}: {medians}")
    return lines


def others(outcomes: Sequence[Outcome]) -> list[str]:
    """Runs that did not end as the scenario asks, and why (the controller's last reason)."""
    targets = {s.name: s.target for s in SCENARIOS}
    why = Counter(
        (o.scenario, o.controller, o.ended, _short(o.reason))
        for o in outcomes
        if o.ended != targets[o.scenario]
    )
    return [f"- {s} / {c}: {e} x{n}: {r}" for (s, c, e, r), n in sorted(why.items())]


def _short(reason: str) -> str:
    """A reason without its figures, so that alike reasons group."""
    said = re.match(r"(.*?): the judge says (\w+)", reason)
    if said is None:
        return reason
    metrics = re.findall(r"(?:FAIL: |; )(error rate|tail latency|latency)", reason[said.end() :])
    return f"{said[1]}: the judge says {said[2]}" + (f" on {', '.join(metrics)}" if metrics else "")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=500, help="seeds per scenario (500)")
    parser.add_argument("--quick", action="store_true", help="50 seeds")
    parser.add_argument("--workers", type=int, default=2, help="processes (2)")
    parser.add_argument("--rate", type=float, default=RATE_RPS, help="requests per second (100)")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--csv", help="write one row per run to this file")
    args = parser.parse_args(argv)
    seeds = 50 if args.quick else args.seeds
    started = time.perf_counter()
    outcomes = collect(seeds, args.workers, args.rate)
    elapsed = time.perf_counter() - started
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(Outcome.__slots__)
            writer.writerows(o.to_row() for o in outcomes)
    print(
        f"bench/rollout.py --seeds {seeds} --rate {args.rate:g}: {len(SCENARIOS)} scenarios x "
        f"{seeds} seeds x {len(CONTROLLERS)} controllers, {elapsed / 60:.1f} min on "
        f"{platform.machine()} with {multiprocessing.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, git {git_sha()}"
    )
    print()
    print(render(rows(outcomes), markdown=args.markdown))
    print()
    print("Median minutes at each weight (runs that ended as their scenario asks):")
    print("\n".join(step_minutes(outcomes)))
    rest = others(outcomes)
    if rest:
        print()
        print("Runs that did not end as their scenario asks (controller's last reason):")
        print("\n".join(rest))
    return 0


if __name__ == "__main__":
    sys.exit(main())
