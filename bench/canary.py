"""Canary judges side by side on a seeded, request-level traffic simulator (issue 5).

Traffic: 100 requests per second in total, cut into 10-second batches exactly as the proxy emits
them (one per version, traffic class ``user``): request and error counts, 4xx apart, the number
of distinct users and of new users (first seen in the step, so each user is counted once; the
run is one step), a uniform reservoir of at most 1,000 latencies, and a histogram over
Prometheus' default buckets converted to ms. Users are sticky ids: each one is active for about
ten minutes (new ids arrive at 5 per second, each request picks one of the 3,000 ids active at
its time), and a user's version is fixed by a per-seed uniform hash compared with the share, as
the proxy's bucketing does. Latency is lognormal (median 100 ms, sigma 0.5); errors are 1 %.

Scenarios: A/A; A/A with load drifting over the day (R(t) = R0 (1 + 0.5 sin(2 pi t / 2 h)) and a
+50 % step at 45 min; the error rate of both versions drifts too, 1 % (1 + 0.3 sin(2 pi t / 2 h)),
as in canary-stats.md §5); errors 1 % -> 1.5 % and -> 2 %; latency +10 %, +20 %, +50 %; a tail-only
regression (2 % of canary requests +500 ms). Canary shares 1 %, 5 %, 10 %.

Judges, each at its defaults and fed batch by batch until it decides:
- sequential: ``SequentialJudge()`` (alpha 0.05 split over errors, latency, tail (the p99 test
  and the fail-only p99.9 test share the tail's part) and SRM;
  tolerated margins 1.5x errors, 10 % latency; time budget 2 h);
- kayenta: ``KayentaJudge()`` at its default horizon (3 h lifetime, a judgment every hour, fail
  fast at or below the marginal score): it is fed 3 h of the same traffic, so it can decide;
- flagger: ``ThresholdJudge()`` (success rate >= 99 % and p99 <= 500 ms per minute, rollback at 5
  failed checks, promotion after 25 good ones); horizon 2 h.

Reported per scenario and share: outcomes (FAIL, PASS, INVALID, no decision), and for the cells
with a regression the canary requests (median, p90) and minutes (median) to a FAIL; for A/A the
same to a PASS. A run without that decision counts as never reaching it, so a median shows "n/d"
when fewer than half the runs got there.

After the targets, the feasibility of "10x sooner than Kayenta-style" per cell: the budget (the
Kayenta-style median minutes / 10, as expected canary requests) beside an oracle lower bound on the
median canary requests of any valid test at the judge's alpha share (Neyman-Pearson, knowing the
effect and the baseline; docs/benchmarks.md explains why it is a lower bound).

Usage: .venv/bin/python bench/canary.py [--seeds N] [--workers 2] [--csv FILE]
"""

from __future__ import annotations

import argparse
import csv
import math
import multiprocessing
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.stats import binom, norm

from stageless.analysis import (
    Batch,
    Histogram,
    Judge,
    JudgeConfig,
    KayentaJudge,
    SequentialJudge,
    ThresholdJudge,
    TrafficClass,
    Version,
)

RATE_RPS = 100.0
INTERVAL_S = 10.0
HORIZON_S = 7_200.0  # the benchmark's horizon (2 h)
KAYENTA_HORIZON_S = 10_800.0  # Kayenta's default lifetime (3 h)
SHARES = (0.01, 0.05, 0.10)
BASE_ERROR = 0.01
CLIENT_ERROR = 0.02
MEDIAN_MS, SIGMA = 100.0, 0.5
USER_ARRIVALS_PER_S, ACTIVE_USERS = 5.0, 3_000
MAX_SAMPLES = 1_000
#: Prometheus' default histogram buckets (seconds), in ms, with +Inf.
LE_MS = (5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1_000.0, 2_500.0, 5_000.0, 10_000.0, math.inf)
T0 = 1_764_000_000.0
JUDGES = ("sequential", "kayenta", "flagger")


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    error_ratio: float = 1.0
    shift: float = 0.0
    tail_share: float = 0.0
    tail_ms: float = 0.0
    drift: bool = False

    @property
    def regression(self) -> bool:
        return self.error_ratio != 1.0 or self.shift != 0.0 or self.tail_share > 0.0


SCENARIOS = (
    Scenario("A/A"),
    Scenario("A/A drift", drift=True),
    Scenario("errors 1->1.5%", error_ratio=1.5),
    Scenario("errors 1->2%", error_ratio=2.0),
    Scenario("latency +10%", shift=0.10),
    Scenario("latency +20%", shift=0.20),
    Scenario("latency +50%", shift=0.50),
    Scenario("tail +500ms 2%", tail_share=0.02, tail_ms=500.0),
)


def wave(t: NDArray[np.floating[Any]]) -> NDArray[np.float64]:
    return np.asarray(np.sin(2.0 * np.pi * t / HORIZON_S), dtype=np.float64)


def simulate(
    scenario: Scenario, share: float, rng: np.random.Generator, horizon_s: float, *, sticky: bool
) -> Iterator[tuple[Batch, Batch]]:
    """The (stable, candidate) batches of every interval, request by request.

    Generated lazily, 30 minutes at a time, so that a run whose judges all decided early stops
    early. ``sticky=False`` gives every request a user of its own (a diagnostic model).
    """
    n_users = int(USER_ARRIVALS_PER_S * horizon_s) + ACTIVE_USERS + 1
    hashes = rng.random(n_users)  # the user's bucket, fixed for the whole run
    seen = np.zeros(n_users, dtype=bool)  # users already seen in the step (the whole run)
    chunk = int(1_800.0 / INTERVAL_S)
    total_batches = int(horizon_s / INTERVAL_S)
    for first in range(0, total_batches, chunk):
        nb = min(chunk, total_batches - first)
        users = (hashes, seen) if sticky else None
        yield from _chunk(scenario, share, rng, first, nb, users)


def _chunk(
    scenario: Scenario,
    share: float,
    rng: np.random.Generator,
    first: int,
    nb: int,
    users_state: tuple[NDArray[np.float64], NDArray[np.bool_]] | None,
) -> Iterator[tuple[Batch, Batch]]:
    mid = (first + np.arange(nb) + 0.5) * INTERVAL_S
    rate = np.full(nb, RATE_RPS)
    if scenario.drift:
        rate = RATE_RPS * (1.0 + 0.5 * wave(mid)) * np.where(mid >= 2_700.0, 1.5, 1.0)
    counts = rng.poisson(rate * INTERVAL_S)
    batch_of = np.repeat(np.arange(nb), counts)
    total = int(counts.sum())
    t = (first + batch_of) * INTERVAL_S + rng.random(total) * INTERVAL_S
    if users_state is not None:
        hashes, step_seen = users_state
        user = (USER_ARRIVALS_PER_S * t).astype(np.int64) + rng.integers(0, ACTIVE_USERS, total)
        canary = hashes[user] < share
        # A user is new in the batch of its first request in the step, as the proxy counts it:
        # requests are ordered by batch, so a user's smallest request index is in its earliest
        # batch (np.minimum.at gives the same first indices as np.unique, without a sort).
        first_of = np.full(step_seen.size, total, dtype=np.int64)
        np.minimum.at(first_of, user, np.arange(total, dtype=np.int64))
        ids = np.flatnonzero(first_of < total)
        new_index = first_of[ids[~step_seen[ids]]]
        step_seen[ids] = True
    else:
        canary = rng.random(total) < share
        new_index = None  # a user per request: every user is new
    p_error = np.full(total, BASE_ERROR)
    if scenario.drift:
        p_error = BASE_ERROR * (1.0 + 0.3 * wave(t))
    if scenario.error_ratio != 1.0:
        p_error = np.where(canary, p_error * scenario.error_ratio, p_error)
    error = rng.random(total) < p_error
    client = ~error & (rng.random(total) < CLIENT_ERROR)
    latency = rng.standard_normal(total)
    latency *= SIGMA
    latency += np.log(MEDIAN_MS)
    np.exp(latency, out=latency)
    if scenario.shift:
        latency = np.where(canary, latency * (1.0 + scenario.shift), latency)
    if scenario.tail_share:
        latency = latency + (canary & (rng.random(total) < scenario.tail_share)) * scenario.tail_ms
    bucket = np.searchsorted(np.asarray(LE_MS), latency, side="left")
    # Counts over all requests, then the canary's; the baseline's are the difference (exact
    # integers), which spares the large baseline arm most of the masking.
    n_le = len(LE_MS)
    all_counts = {
        "n": counts,
        "e": np.bincount(batch_of[error], minlength=nb),
        "c": np.bincount(batch_of[client], minlength=nb),
        "hist": np.bincount(batch_of * n_le + bucket, minlength=nb * n_le).reshape(nb, n_le),
    }
    if new_index is not None:
        all_counts["new"] = np.bincount(batch_of[new_index], minlength=nb)
        # Distinct users per batch: a batch's users lie in a window of ids of known width.
        width = int(USER_ARRIVALS_PER_S * INTERVAL_S) + ACTIVE_USERS + 1
        per_batch = int(USER_ARRIVALS_PER_S * INTERVAL_S)  # new ids per batch: the window's shift
        slot = batch_of * (width - per_batch) + (user - per_batch * first)
        seen = np.zeros(nb * width, dtype=bool)
        seen[slot] = True
        all_counts["users"] = seen.reshape(nb, width).sum(axis=1)
    else:
        all_counts["new"] = all_counts["users"] = counts
    ci = np.flatnonzero(canary)
    cb = batch_of[ci]
    canary_counts = {
        "n": np.bincount(cb, minlength=nb),
        "e": np.bincount(cb[error[ci]], minlength=nb),
        "c": np.bincount(cb[client[ci]], minlength=nb),
        "hist": np.bincount(cb * n_le + bucket[ci], minlength=nb * n_le).reshape(nb, n_le),
    }
    if new_index is not None:
        canary_counts["new"] = np.bincount(batch_of[new_index[canary[new_index]]], minlength=nb)
        seen = np.zeros(nb * width, dtype=bool)
        seen[slot[ci]] = True  # a user's requests all go to one version (sticky)
        canary_counts["users"] = seen.reshape(nb, width).sum(axis=1)
    else:
        canary_counts["new"] = canary_counts["users"] = canary_counts["n"]
    arms = {}
    for version, arm_share, latencies, arm in (
        (Version.STABLE, 1.0 - share, latency[~canary], None),
        (Version.CANDIDATE, share, latency[ci], canary_counts),
    ):
        if arm is None:  # the baseline: everything minus the canary
            arm = {key: value - canary_counts[key] for key, value in all_counts.items()}
        n, e, c, users, new, hist = (arm[key] for key in ("n", "e", "c", "users", "new", "hist"))
        lat = np.split(latencies, np.cumsum(n)[:-1])
        arms[version] = (arm_share, n, e, c, users, new, hist, lat)
    for i in range(nb):
        pair = []
        for version in (Version.STABLE, Version.CANDIDATE):
            arm_share, n, e, c, users, new, hist, lat = arms[version]
            samples = lat[i]
            if samples.size > MAX_SAMPLES:
                samples = samples[rng.choice(samples.size, MAX_SAMPLES, replace=False)]
            pair.append(
                Batch.with_sample_array(
                    samples,
                    ts=T0 + (first + i) * INTERVAL_S,
                    interval_s=INTERVAL_S,
                    service="checkout",
                    route="/api",
                    version=version,
                    traffic_class=TrafficClass.USER,
                    configured_share=arm_share,
                    requests=int(n[i]),
                    errors=int(e[i]),
                    client_errors=int(c[i]),
                    users=int(users[i]),
                    new_users=int(new[i]),
                    histogram=Histogram(LE_MS, tuple(hist[i].tolist())),
                )
            )
        yield pair[0], pair[1]


def make_judges() -> dict[str, tuple[Judge, float]]:
    """Each judge at its defaults, with the horizon it is fed to."""
    return {
        "sequential": (SequentialJudge(), HORIZON_S),
        "kayenta": (KayentaJudge(), KAYENTA_HORIZON_S),
        "flagger": (ThresholdJudge(), HORIZON_S),
    }


@dataclass(frozen=True, slots=True)
class Outcome:
    judge: str
    verdict: str  # FAIL, PASS, INVALID, INCONCLUSIVE, or NONE (still CONTINUE at the horizon)
    canary_requests: int  # up to and including the deciding interval (or the horizon)
    minutes: float


def run(task: tuple[int, int, int, bool]) -> tuple[int, int, int, list[Outcome]]:
    """One seed of one scenario and share, every judge fed the same batches."""
    s, k, seed, sticky = task
    scenario, share = SCENARIOS[s], SHARES[k]
    rng = np.random.Generator(np.random.PCG64(seed))
    judges = make_judges()
    horizon = max(h for _, h in judges.values())
    open_judges = dict(judges)
    outcomes: list[Outcome] = []
    canary_requests = 0
    for i, (stable, candidate) in enumerate(simulate(scenario, share, rng, horizon, sticky=sticky)):
        canary_requests += candidate.requests
        elapsed = (i + 1) * INTERVAL_S
        for name, (judge, limit) in list(open_judges.items()):
            judge.observe(stable)
            verdict = judge.observe(candidate)
            done = verdict.final or elapsed >= limit - 1e-9
            if done:
                label = str(verdict) if verdict.final else "NONE"
                outcomes.append(Outcome(name, label, canary_requests, elapsed / 60.0))
                del open_judges[name]
        if not open_judges:
            break
    return s, k, seed, outcomes


def quantile(values: Sequence[float], q: float) -> float:
    """Quantile with runs that never decided counted as +inf (the 'inverted' median)."""
    if not values:
        return math.inf
    return float(np.quantile(np.asarray(values, dtype=np.float64), q, method="lower"))


def fmt(value: float, digits: int = 0) -> str:
    if math.isinf(value):
        return "n/d"
    return f"{value:,.{digits}f}"


@dataclass
class Cell:
    outcomes: dict[str, list[Outcome]]

    def rate(self, judge: str, verdict: str) -> float:
        runs = self.outcomes[judge]
        return sum(o.verdict == verdict for o in runs) / len(runs) if runs else math.nan

    def to_decision(self, judge: str, verdict: str, attr: str, q: float) -> float:
        runs = self.outcomes[judge]
        values = [getattr(o, attr) if o.verdict == verdict else math.inf for o in runs]
        return quantile(values, q)


def collect(
    seeds: int, workers: int, csv_path: str | None, *, sticky: bool
) -> dict[tuple[int, int], Cell]:
    cell_keys = [(s, k) for s in range(len(SCENARIOS)) for k in range(len(SHARES))]
    tasks = [(s, k, seed, sticky) for seed in range(seeds) for s, k in cell_keys]
    cells = {key: Cell({j: [] for j in JUDGES}) for key in cell_keys}
    rows = []
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        for done, (s, k, seed, outcomes) in enumerate(
            pool.imap_unordered(run, tasks, chunksize=4), start=1
        ):
            if done % 240 == 0:
                print(f"  {done:,} of {len(tasks):,} runs", file=sys.stderr, flush=True)
            for o in outcomes:
                cells[(s, k)].outcomes[o.judge].append(o)
                rows.append(
                    (
                        SCENARIOS[s].name,
                        SHARES[k],
                        seed,
                        o.judge,
                        o.verdict,
                        o.canary_requests,
                        o.minutes,
                    )
                )
    if csv_path:
        sha = git_sha()
        with open(csv_path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(
                (
                    "scenario",
                    "share",
                    "seed",
                    "judge",
                    "verdict",
                    "canary_requests",
                    "minutes",
                    "git_sha",
                )
            )
            writer.writerows((*row, sha) for row in sorted(rows))
    return cells


def git_sha() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out.stdout.strip()


def table(cells: dict[tuple[int, int], Cell]) -> list[str]:
    lines = [
        "| scenario | share | judge | FAIL | PASS | INVALID | no decision "
        "| to decision | canary req. median | p90 | minutes median |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s, scenario in enumerate(SCENARIOS):
        target = "FAIL" if scenario.regression else "PASS"
        for k, share in enumerate(SHARES):
            cell = cells[(s, k)]
            for judge in JUDGES:
                undecided = cell.rate(judge, "NONE") + cell.rate(judge, "INCONCLUSIVE")
                lines.append(
                    f"| {scenario.name} | {share:.0%} | {judge} "
                    f"| {cell.rate(judge, 'FAIL'):.1%} | {cell.rate(judge, 'PASS'):.1%} "
                    f"| {cell.rate(judge, 'INVALID'):.1%} | {undecided:.1%} | {target} "
                    f"| {fmt(cell.to_decision(judge, target, 'canary_requests', 0.5))} "
                    f"| {fmt(cell.to_decision(judge, target, 'canary_requests', 0.9))} "
                    f"| {fmt(cell.to_decision(judge, target, 'minutes', 0.5), 1)} |"
                )
    return lines


def targets(cells: dict[tuple[int, int], Cell]) -> list[str]:
    """The issue's targets, each with the figures behind it and whether it held."""
    index = {sc.name: s for s, sc in enumerate(SCENARIOS)}
    out = []

    def line(ok: bool, text: str) -> None:
        out.append(f"- [{'held' if ok else 'MISSED'}] {text}")

    aa = [(index[n], k) for n in ("A/A", "A/A drift") for k in range(len(SHARES))]
    worst = max(cells[c].rate("sequential", "FAIL") for c in aa)
    detail = ", ".join(
        f"{SCENARIOS[s].name} {SHARES[k]:.0%}: {cells[(s, k)].rate('sequential', 'FAIL'):.1%}"
        for s, k in aa
    )
    line(worst <= 0.05, f"A/A false rollbacks <= 5% (sequential): worst {worst:.1%} ({detail})")
    meds = [
        cells[(index["errors 1->2%"], k)].to_decision("sequential", "FAIL", "canary_requests", 0.5)
        for k in range(len(SHARES))
    ]
    line(
        max(meds) <= 1_500,
        "errors 1->2% median <= 1,500 canary requests: "
        + ", ".join(f"{SHARES[k]:.0%}: {fmt(m)}" for k, m in enumerate(meds)),
    )
    meds = [
        cells[(index["latency +20%"], k)].to_decision("sequential", "FAIL", "canary_requests", 0.5)
        for k in range(len(SHARES))
    ]
    line(
        max(meds) <= 300,
        "latency +20% median <= 300 canary observations: "
        + ", ".join(f"{SHARES[k]:.0%}: {fmt(m)}" for k, m in enumerate(meds)),
    )
    passes = [
        (SCENARIOS[s].name, SHARES[k], cells[(s, k)].rate("sequential", "PASS"))
        for s, k in aa
        if SHARES[k] >= 0.05
    ]
    line(
        min(p for _, _, p in passes) >= 0.90,
        "A/A passes within the 2 h horizon in >= 90% of seeds at 5% and 10% shares: "
        + ", ".join(f"{n} {sh:.0%}: {p:.1%}" for n, sh, p in passes),
    )
    ratios = []
    for s, scenario in enumerate(SCENARIOS):
        target = "FAIL" if scenario.regression else "PASS"
        for k in range(len(SHARES)):
            ours = cells[(s, k)].to_decision("sequential", target, "minutes", 0.5)
            theirs = cells[(s, k)].to_decision("kayenta", target, "minutes", 0.5)
            if math.isinf(ours) and math.isinf(theirs):
                continue  # neither decides: no ratio
            ratio = theirs / ours if not math.isinf(ours) else 0.0
            ratios.append((scenario.name, SHARES[k], ratio))
    held = [r for r in ratios if r[2] >= 10]
    line(
        len(held) == len(ratios),
        f"decisions >= 10x sooner than Kayenta-style (median minutes, Kayenta at 3 h/1 h): "
        f"{len(held)} of {len(ratios)} cells; "
        + ", ".join(
            f"{n} {sh:.0%}: {'inf' if math.isinf(r) else f'{r:.1f}'}x" for n, sh, r in ratios
        ),
    )
    kay = ", ".join(
        f"{SCENARIOS[s].name} {SHARES[k]:.0%}: {cells[(s, k)].rate('kayenta', 'FAIL'):.1%}"
        for s, k in aa
    )
    out.append(f"- [report] Kayenta-style false rollback rate: {kay}")
    flg = ", ".join(
        f"{SCENARIOS[s].name} {SHARES[k]:.0%}: {cells[(s, k)].rate('flagger', 'FAIL'):.1%}"
        for s, k in aa
    )
    out.append(f"- [report] Flagger-style false rollback rate: {flg}")
    return out


def mp_power(n: int, p_null: float, p_alt: float, alpha: float) -> float:
    """Power of the most powerful test (randomised Neyman-Pearson) of Bernoulli(``p_null``)
    against Bernoulli(``p_alt``) on ``n`` trials, at size ``alpha``."""
    if p_alt < p_null:  # count failures instead
        return mp_power(n, 1.0 - p_null, 1.0 - p_alt, alpha)
    c = int(binom.isf(alpha, n, p_null))  # reject when S > c, randomise at S = c
    while binom.sf(c, n, p_null) > alpha:
        c += 1
    while c > 0 and binom.sf(c - 1, n, p_null) <= alpha:
        c -= 1
    at_c = float(binom.pmf(c, n, p_null))
    gamma = (alpha - float(binom.sf(c, n, p_null))) / at_c if at_c > 0 else 0.0
    return float(binom.sf(c, n, p_alt)) + min(1.0, gamma) * float(binom.pmf(c, n, p_alt))


def smallest_n(power: Callable[[int], float], goal: float = 0.5) -> int:
    """The smallest n whose power reaches ``goal`` (power is non-decreasing in n)."""
    hi = 1
    while power(hi) < goal:
        hi *= 2
    lo = hi // 2 + 1 if hi > 1 else 1
    while lo < hi:
        mid = (lo + hi) // 2
        if power(mid) >= goal:
            hi = mid
        else:
            lo = mid + 1
    return lo


@dataclass(frozen=True, slots=True)
class Oracle:
    """A lower bound on the median canary requests to the right decision, for any valid test."""

    requests: int
    why: str


def oracle(scenario: Scenario) -> Oracle:
    """The canary requests by which no test at the judge's alpha share can have decided in half
    the runs, even knowing the effect in advance and the baseline exactly (docs/benchmarks.md,
    "Feasibility of the 10x target"). Valid for every share: the baseline carries no evidence."""
    config = JudgeConfig()
    a_err, a_lat = config.alpha_for("errors"), config.alpha_for("latency")
    a_tail = max(config.alpha_for("tail"), config.alpha_for("tail_extreme"))
    if scenario.error_ratio != 1.0:
        p0, p1 = BASE_ERROR, BASE_ERROR * scenario.error_ratio
        n = smallest_n(lambda n: mp_power(n, p0, p1, a_err))
        return Oracle(n, f"errors {p0:.1%} vs {p1:.1%} at alpha {a_err:g}")
    if scenario.shift:
        z = float(norm.isf(a_lat))
        n = math.ceil((z * SIGMA / math.log1p(scenario.shift)) ** 2)
        return Oracle(n, f"log-normal shift {scenario.shift:+.0%} at alpha {a_lat:g}")
    if scenario.tail_share:
        alpha = max(a_lat, a_tail)  # any of the tests may see it: the largest share
        n = math.ceil(math.log(1.0 / (0.5 + alpha)) / -math.log1p(-scenario.tail_share))
        return Oracle(n, f"one of {scenario.tail_share:.0%} slow requests seen, alpha {alpha:g}")
    # A/A: a PASS shows the error ratio below 1.5 and the latency shift below +10 %, each at
    # the judge's PASS level (not split among the metrics; docs/analysis.md, "The alpha split").
    a_pass = config.pass_risk()
    p = BASE_ERROR * (1.3 if scenario.drift else 1.0)  # drift: its highest rate (fewer requests)
    margin = config.error_margin
    errors = smallest_n(lambda n: mp_power(n, margin * p, p, a_pass))
    z = float(norm.isf(a_pass))
    latency = math.ceil((z * SIGMA / math.log1p(config.latency_margin)) ** 2)
    return Oracle(
        max(errors, latency),
        f"PASS: errors {p:.1%} shown below {margin:g}x at alpha {a_pass:g}",
    )


def canary_rate(scenario: Scenario, share: float, seconds: float) -> float:
    """Expected canary requests over the first ``seconds`` of a run (the simulator's load)."""
    t = np.arange(int(seconds)) + 0.5
    rate = np.full(t.size, RATE_RPS)
    if scenario.drift:
        rate = RATE_RPS * (1.0 + 0.5 * wave(t)) * np.where(t >= 2_700.0, 1.5, 1.0)
    return float(rate.sum()) * share


def feasibility(cells: dict[tuple[int, int], Cell]) -> list[str]:
    """Per cell: the 10x budget in canary requests beside a lower bound for any valid test."""
    out = []
    infeasible = []
    for s, scenario in enumerate(SCENARIOS):
        target = "FAIL" if scenario.regression else "PASS"
        bound = oracle(scenario)
        for k, share in enumerate(SHARES):
            cell = cells[(s, k)]
            theirs = cell.to_decision("kayenta", target, "minutes", 0.5)
            ours = cell.to_decision("sequential", target, "canary_requests", 0.5)
            name = f"{scenario.name} {share:.0%}"
            if math.isinf(theirs):
                out.append(f"- {name}: Kayenta-style median n/d, no budget")
                continue
            budget = canary_rate(scenario, share, theirs * 60.0 / 10.0)
            verdict = "infeasible for any valid test" if bound.requests > budget else "feasible"
            if bound.requests > budget:
                infeasible.append(name)
            out.append(
                f"- {name}: budget {budget:,.0f} canary requests (Kayenta-style "
                f"{theirs:.1f} min / 10); oracle {bound.requests:,} ({bound.why}); "
                f"sequential {fmt(ours)}: {verdict}"
            )
    out.append(
        f"- [report] {len(infeasible)} of {len(SHARES) * len(SCENARIOS)} cells infeasible for any "
        f"valid test: {', '.join(infeasible) if infeasible else 'none'}"
    )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=1_000, help="seeds per cell (1,000)")
    parser.add_argument("--workers", type=int, default=2, help="processes (2)")
    parser.add_argument("--csv", help="write one row per run and judge to this file")
    parser.add_argument(
        "--users",
        choices=("sticky", "per-request"),
        default="sticky",
        help="sticky: users active ~10 min (default); per-request: a new user per request",
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    cells = collect(args.seeds, args.workers, args.csv, sticky=args.users == "sticky")
    elapsed = time.perf_counter() - started
    print(
        f"bench/canary.py --seeds {args.seeds} --workers {args.workers} --users {args.users}: "
        f"{len(SCENARIOS) * len(SHARES)} cells x {args.seeds} seeds, {elapsed / 60:.1f} min "
        f"on {platform.machine()} with {multiprocessing.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, git {git_sha()}"
    )
    print()
    print("\n".join(table(cells)))
    print()
    print("Targets (issue 5):")
    print("\n".join(targets(cells)))
    print()
    print(
        "Feasibility of the 10x target: the Kayenta-style median / 10 as expected canary requests"
        " (budget), against a lower bound on the median canary requests of any valid test at the"
        " judge's alpha share, knowing the effect and the baseline exactly (oracle; see"
        " docs/benchmarks.md):"
    )
    print("\n".join(feasibility(cells)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
