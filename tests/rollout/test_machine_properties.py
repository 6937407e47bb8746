"""Properties of the controller over random valid plans and random event sequences (hypothesis).

Each example walks a random plan through up to 60 random events at random times. Evidence
mostly names the current step (sometimes the previous or the next one, as a late or early
report would). The checks recompute what they need on their own: the candidate's traffic is
folded from the commands by :func:`fold`, not read from the machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from stageless.analysis.verdict import Verdict
from stageless.rollout.commands import (
    Command,
    EnableTesters,
    Log,
    Promote,
    RollBack,
    SetWeight,
    StartShadow,
    StopShadow,
)
from stageless.rollout.events import (
    AbortRequested,
    ApprovalGiven,
    CheckFailed,
    CheckPassed,
    DiffReported,
    DriverFailed,
    Event,
    JudgeReported,
    PauseRequested,
    PromoteRequested,
    PromotionCompleted,
    ResumeRequested,
    RollbackCompleted,
    StartRequested,
    Tick,
)
from stageless.rollout.gates import DiffSummary
from stageless.rollout.machine import TRANSITIONS, RolloutState, transition
from stageless.rollout.phases import TERMINAL, Phase
from stageless.rollout.plan import CanaryStep, RolloutPlan, ShadowStep, TestersStep, validate_plan
from tests.rollout.factories import document

P = Phase
ENDING = {P.ROLLING_BACK, P.ROLLED_BACK, P.ABORTED}
TRAFFIC_COMMANDS = (SetWeight, EnableTesters, StartShadow, StopShadow, RollBack, Promote)


# -- the candidate's traffic, folded independently of the machine -----------------------------


@dataclass(frozen=True)
class Folded:
    weight: float = 0.0
    testers: bool = False
    shadow: float = 0.0

    @property
    def any(self) -> bool:
        return self.weight > 0 or self.testers or self.shadow > 0


def fold(traffic: Folded, commands: list[Command]) -> Folded:
    for command in commands:
        match command:
            case SetWeight(weight=weight):
                traffic = Folded(weight, traffic.testers, traffic.shadow)
            case EnableTesters():
                traffic = Folded(traffic.weight, True, traffic.shadow)
            case StartShadow(share=share):
                traffic = Folded(traffic.weight, traffic.testers, share)
            case StopShadow():
                traffic = Folded(traffic.weight, traffic.testers, 0.0)
            case RollBack():
                traffic = Folded()
    return traffic


def gives_traffic(command: Command) -> bool:
    return (isinstance(command, SetWeight) and command.weight > 0) or isinstance(
        command, EnableTesters | StartShadow | Promote
    )


# -- random plans and walks -------------------------------------------------------------------


@st.composite
def plans(draw: st.DrawFn) -> RolloutPlan:
    steps: list[dict[str, Any]] = []
    weight = 0.0
    for _ in range(draw(st.integers(0, 5))):
        kind = draw(st.sampled_from(["shadow", "testers", "canary"]))
        if kind == "shadow":
            until = draw(
                st.sampled_from(
                    [
                        {"compared": 100, "duration_s": None},
                        {"compared": None, "duration_s": 600},
                        {"compared": 100, "duration_s": 600},
                    ]
                )
            )
            steps.append(
                {
                    "kind": "shadow",
                    "share": draw(st.sampled_from([1, 10, 100])),
                    "until": until,
                    "expected_fields": draw(st.sampled_from([[], ["body.v*"]])),
                    "max_unexpected_fields": draw(st.integers(0, 1)),
                    "max_error_percent": draw(st.sampled_from([0, 1, 5])),
                }
            )
        elif kind == "testers":
            if draw(st.booleans()):
                steps.append({"kind": "testers"})
            else:
                timeout = draw(st.sampled_from([60, 600]))
                webhook = {"url": "https://ci.example.com/check", "timeout_s": timeout}
                steps.append({"kind": "testers", "approval": "webhook", "webhook": webhook})
        else:
            weight = draw(st.sampled_from([w for w in (1, 5, 25, 50, 100) if w >= weight]))
            low = draw(st.sampled_from([0, 60, 300]))
            high = draw(st.sampled_from([h for h in (60, 600, 3600) if h >= low]))
            policy = draw(st.sampled_from(["pause", "rollback", "proceed"]))
            steps.append(
                {
                    "kind": "canary",
                    "weight": weight,
                    "min_duration_s": low,
                    "max_duration_s": high,
                    "on_timeout": policy,
                }
            )
    on_invalid = draw(st.sampled_from(["pause", "rollback"]))
    return validate_plan(document(*steps, rollback={"on_invalid": on_invalid}))


KINDS = [
    *["tick"] * 5,
    *["judge"] * 4,
    *["diff"] * 3,
    *["check_passed", "approval"] * 2,
    "check_failed",
    "start",
    "pause",
    "resume",
    "promote",
    "abort",
    "driver_failed",
    "promotion_completed",
    "rollback_completed",
]
DELAYS = st.sampled_from([0, 1, 30, 59, 60, 61, 299, 300, 599, 600, 601, 1800, 4000])
KIND = st.sampled_from(KINDS)
OFFSET = st.sampled_from([0, 0, 0, 0, -1, 1])  # evidence mostly for the current step
VERDICT = st.sampled_from(
    [
        Verdict.CONTINUE,
        Verdict.PASS,
        Verdict.PASS,
        Verdict.FAIL,
        Verdict.INVALID,
        Verdict.INCONCLUSIVE,
    ]
)
SUMMARY = st.builds(
    lambda compared, fields, errors: DiffSummary(compared, fields, compared, errors(compared)),
    st.sampled_from([0, 50, 99, 100, 150, 2000]),
    st.sampled_from([(), ("body.version",), ("body.a",), ("body.a", "body.b")]),
    st.sampled_from([lambda n: 0, lambda n: n // 100, lambda n: n // 10]),
)


RELEVANT = {
    P.PENDING: st.sampled_from(["start"]),
    P.SHADOWING: st.sampled_from(["diff", "diff", "tick", "pause"]),
    P.TESTING: st.sampled_from(["approval", "check_passed", "check_failed", "tick", "pause"]),
    P.CANARY: st.sampled_from(["judge", "judge", "tick", "tick", "pause"]),
    P.PAUSED: st.sampled_from(["resume", "judge", "diff", "approval", "check_passed", "tick"]),
    P.PROMOTING: st.sampled_from(["promotion_completed", "driver_failed", "tick"]),
    P.ROLLING_BACK: st.sampled_from(["rollback_completed", "driver_failed"]),
}
"""Events that move the rollout along in each phase, drawn more often than the others so that
walks get deep into their plans."""
RELEVANT_SHARE = st.integers(0, 9)


def event(draw: st.DrawFn, state: RolloutState) -> Event:
    relevant = RELEVANT.get(state.phase)
    kind = draw(relevant if relevant is not None and draw(RELEVANT_SHARE) < 7 else KIND)
    step = state.step + draw(OFFSET)
    if kind == "judge":
        return JudgeReported(step, draw(VERDICT))
    if kind == "diff":
        return DiffReported(step, draw(SUMMARY))
    simple: dict[str, Event] = {
        "tick": Tick(),
        "check_passed": CheckPassed(step),
        "check_failed": CheckFailed(step),
        "approval": ApprovalGiven(step),
        "start": StartRequested(),
        "pause": PauseRequested(),
        "resume": ResumeRequested(),
        "promote": PromoteRequested(),
        "abort": AbortRequested(),
        "driver_failed": DriverFailed("x"),
        "promotion_completed": PromotionCompleted(),
        "rollback_completed": RollbackCompleted(),
    }
    return simple[kind]


@dataclass(frozen=True)
class Record:
    old: RolloutState
    event: Event
    now: float
    new: RolloutState
    commands: list[Command]
    before: Folded
    after: Folded


@st.composite
def walks(draw: st.DrawFn) -> tuple[RolloutPlan, list[Record]]:
    plan = draw(plans())
    state = RolloutState(plan)
    now = 1_700_000_000.0
    traffic = Folded()
    records: list[Record] = []
    first: list[Event] = [StartRequested()] if draw(st.booleans()) else []
    for index in range(draw(st.integers(1, 60))):
        now += draw(DELAYS)
        happening = first[index] if index < len(first) else event(draw, state)
        new, commands = transition(state, happening, now)
        after = fold(traffic, commands)
        records.append(Record(state, happening, now, new, commands, traffic, after))
        state, traffic = new, after
    return plan, records


# -- the properties ---------------------------------------------------------------------------


@given(walks())
def test_no_transition_outside_the_table(walk: tuple[RolloutPlan, list[Record]]) -> None:
    for r in walk[1]:
        allowed = TRANSITIONS.get((r.old.phase, type(r.event)))
        if allowed is None:
            assert r.new is r.old
            assert [type(c) for c in r.commands] == [Log]
        else:
            assert r.new.phase in allowed
        assert not [c for c in r.commands if isinstance(c, Log) and c.level == "error"]


@given(walks())
def test_the_machine_knows_what_the_candidate_receives(
    walk: tuple[RolloutPlan, list[Record]],
) -> None:
    for r in walk[1]:
        if r.new.phase is P.PROMOTED:
            break
        assert (r.new.traffic.weight, r.new.traffic.testers, r.new.traffic.shadow) == (
            r.after.weight,
            r.after.testers,
            r.after.shadow,
        )


def shadow_fails(step: ShadowStep, summary: DiffSummary) -> bool:
    unexpected = [
        path
        for path in summary.fields
        if not any(fnmatchcase(path, pattern) for pattern in step.expected_fields)
    ]
    errors = 100 * summary.candidate_errors / summary.candidate_requests
    return len(unexpected) > step.max_unexpected_fields or errors > step.max_error_percent


def is_fail(r: Record) -> bool:
    """Whether the event is a FAIL the machine must act on (recomputed from the plan)."""
    old, e = r.old, r.event
    if isinstance(e, AbortRequested):
        return old.phase not in TERMINAL and old.phase is not P.ROLLING_BACK
    if old.phase not in (P.CANARY, P.TESTING, P.SHADOWING, P.PAUSED):
        return False
    step = old.plan.steps[old.step]
    if isinstance(e, JudgeReported) and e.step == old.step and isinstance(step, CanaryStep):
        invalid_rolls_back = old.plan.rollback.on_invalid == "rollback"
        return e.verdict is Verdict.FAIL or (e.verdict is Verdict.INVALID and invalid_rolls_back)
    if isinstance(e, CheckFailed) and e.step == old.step and isinstance(step, TestersStep):
        return step.webhook is not None
    if (
        isinstance(e, DiffReported)
        and e.step == old.step
        and old.phase is P.SHADOWING
        and isinstance(step, ShadowStep)
    ):
        limit = step.until.compared
        return limit is not None and e.summary.compared >= limit and shadow_fails(step, e.summary)
    return False


@given(walks())
def test_every_fail_ends_in_a_rollback(walk: tuple[RolloutPlan, list[Record]]) -> None:
    records = walk[1]
    for index, r in enumerate(records):
        if is_fail(r):
            assert r.new.phase in ENDING, (r.old.phase, r.event, r.new.phase)
            assert all(later.new.phase in ENDING for later in records[index:])


@given(walks())
def test_rollback_is_sent_exactly_when_the_candidate_had_traffic(
    walk: tuple[RolloutPlan, list[Record]],
) -> None:
    for r in walk[1]:
        sent = any(isinstance(c, RollBack) for c in r.commands)
        if r.old.phase not in ENDING and r.new.phase in ENDING:
            assert sent == r.before.any, (r.old.phase, r.event, r.before)
            assert not r.after.any
        elif sent:  # only a driver failure while rolling back sends it again
            assert (r.old.phase, type(r.event)) == (P.ROLLING_BACK, DriverFailed)


@given(walks())
def test_after_a_rollback_the_candidate_gets_no_traffic_again(
    walk: tuple[RolloutPlan, list[Record]],
) -> None:
    rolled_back = False
    for r in walk[1]:
        for command in r.commands:
            if rolled_back:
                assert not gives_traffic(command), command
            rolled_back = rolled_back or isinstance(command, RollBack)
        if rolled_back:
            assert not r.after.any
            assert r.new.phase in ENDING


@given(walks())
def test_invalid_follows_on_invalid(walk: tuple[RolloutPlan, list[Record]]) -> None:
    for r in walk[1]:
        e = r.event
        if not (
            isinstance(e, JudgeReported)
            and e.verdict is Verdict.INVALID
            and r.old.phase in (P.CANARY, P.PAUSED)
            and e.step == r.old.step
            and isinstance(r.old.plan.steps[r.old.step], CanaryStep)
        ):
            continue
        if r.old.plan.rollback.on_invalid == "rollback":
            assert r.new.phase is P.ROLLING_BACK
        else:
            assert r.new.phase is P.PAUSED
            assert r.new.restart_on_resume
            assert not [c for c in r.commands if isinstance(c, TRAFFIC_COMMANDS)]


@given(walks())
def test_an_undecided_canary_follows_on_timeout(walk: tuple[RolloutPlan, list[Record]]) -> None:
    for r in walk[1]:
        if r.old.phase is not P.CANARY:
            continue
        step = r.old.plan.steps[r.old.step]
        assert isinstance(step, CanaryStep)
        e = r.event
        elapsed = r.old.elapsed(r.now)
        timed_out = isinstance(e, Tick) and not r.old.passed and elapsed >= step.max_duration_s
        inconclusive = (
            isinstance(e, JudgeReported)
            and e.step == r.old.step
            and e.verdict is Verdict.INCONCLUSIVE
        )
        if timed_out or inconclusive:
            expected = {"pause": P.PAUSED, "rollback": P.ROLLING_BACK}.get(step.on_timeout)
            if expected is not None:
                assert r.new.phase is expected
            elif inconclusive and elapsed < step.min_duration_s:
                # proceeding is a pass without a verdict: it waits for min_duration_s
                assert (r.new.phase, r.new.step, r.new.passed) == (P.CANARY, r.old.step, True)
            else:
                assert r.new.step == r.old.step + 1
        elif isinstance(e, Tick) and not r.old.passed:
            assert r.new is r.old  # nothing happens before max_duration_s


@given(walks())
def test_steps_run_in_order_and_only_a_promote_request_skips_gates(
    walk: tuple[RolloutPlan, list[Record]],
) -> None:
    plan, records = walk
    last = len(plan.steps) - 1
    evidence: set[int] = set()  # steps whose gate was satisfied (or, for a canary, proceeded)
    skipped = False
    for r in records:
        e, old, new = r.event, r.old, r.new
        if isinstance(e, JudgeReported | CheckPassed | ApprovalGiven) and e.step == old.step:
            passed = not isinstance(e, JudgeReported) or e.verdict in (
                Verdict.PASS,
                Verdict.INCONCLUSIVE,
            )
            if passed:
                evidence.add(e.step)
        if isinstance(e, Tick | DiffReported) and old.phase in (P.SHADOWING, P.CANARY):
            evidence.add(old.step)  # a shadow step's own gate, a canary's on_timeout: proceed
        if new.step != old.step or (new.phase is P.PROMOTING and old.phase is not P.PROMOTING):
            if isinstance(e, PromoteRequested):
                assert (new.phase, new.step) == (P.PROMOTING, last)
                skipped = True
            elif isinstance(e, ResumeRequested):
                assert new.step == old.step
            elif old.phase is P.PENDING:
                assert new.step == 0
            else:
                assert new.step == old.step + 1, (old.phase, e, old.step, new.step)
                assert old.step in evidence, (old.phase, e)
                step = plan.steps[old.step]
                if isinstance(step, CanaryStep) and old.phase is P.CANARY:
                    assert old.elapsed(r.now) >= step.min_duration_s
        if new.phase is P.PROMOTED and not skipped:
            entered = sorted({rec.new.step for rec in records if rec.new.phase is not P.PENDING})
            assert entered == list(range(last + 1))


@given(walks())
def test_a_paused_rollout_resumes_where_it_was(walk: tuple[RolloutPlan, list[Record]]) -> None:
    for r in walk[1]:
        if r.new.phase is P.PAUSED:
            assert not [c for c in r.commands if isinstance(c, TRAFFIC_COMMANDS)]
            assert r.new.step == r.old.step
            assert r.new.traffic == r.old.traffic
        if r.old.phase is not P.PAUSED or not isinstance(r.event, ResumeRequested):
            continue
        assert r.old.paused_from is not None and r.old.paused_at is not None
        assert (r.new.phase, r.new.step) == (r.old.paused_from, r.old.step)
        if r.old.restart_on_resume:
            assert r.new.elapsed(r.now) == 0
        else:
            assert abs(r.new.elapsed(r.now) - r.old.elapsed(r.old.paused_at)) < 1e-6
            assert not [c for c in r.commands if isinstance(c, TRAFFIC_COMMANDS)]


@given(walks())
def test_a_finished_rollout_stays_finished(walk: tuple[RolloutPlan, list[Record]]) -> None:
    for r in walk[1]:
        if r.old.phase in TERMINAL:
            assert r.new is r.old
            assert all(isinstance(c, Log) for c in r.commands)


# -- probes: every state a walk reaches, asked the questions that matter ----------------------

EVERY_EVENT: list[Event] = [
    Tick(),
    StartRequested(),
    PauseRequested(),
    ResumeRequested(),
    PromoteRequested(),
    AbortRequested(),
    DriverFailed("x"),
    PromotionCompleted(),
    RollbackCompleted(),
]


def fail_events(state: RolloutState) -> list[Event]:
    """Every kind of FAIL, for the current step (the diff fails any shadow gate)."""
    flood = DiffSummary(10**9, ("zz.unexpected", "zz.other"), 10**9, 10**9)
    return [
        AbortRequested("probe"),
        JudgeReported(state.step, Verdict.FAIL),
        JudgeReported(state.step, Verdict.INVALID),
        CheckFailed(state.step),
        DiffReported(state.step, flood),
    ]


def evidence_events(state: RolloutState) -> list[Event]:
    passing = DiffSummary(10**9, (), 10**9, 0)
    return [
        *EVERY_EVENT,
        ApprovalGiven(state.step),
        CheckPassed(state.step),
        DiffReported(state.step, passing),
        *(JudgeReported(state.step, verdict) for verdict in Verdict),
    ]


@given(walks())
def test_a_fail_in_any_reachable_state_rolls_back_for_good(
    walk: tuple[RolloutPlan, list[Record]],
) -> None:
    for r in walk[1]:
        state, now, traffic = r.new, r.now, r.after
        for failure in fail_events(state):
            new, commands = transition(state, failure, now + 1)
            probe = Record(state, failure, now + 1, new, commands, traffic, fold(traffic, commands))
            if not is_fail(probe):
                continue
            assert new.phase in ENDING, (state.phase, failure, new.phase)
            assert any(isinstance(c, RollBack) for c in commands) == traffic.any
            later = now + 1
            for event in evidence_events(new) * 2:  # nothing brings the traffic back
                later += 700
                new, commands = transition(new, event, later)
                assert new.phase in ENDING
                assert not [c for c in commands if gives_traffic(c)], (event, commands)


@given(walks())
def test_invalid_in_any_reachable_canary_follows_on_invalid(
    walk: tuple[RolloutPlan, list[Record]],
) -> None:
    for r in walk[1]:
        state = r.new
        if state.running is not P.CANARY or state.phase not in (P.CANARY, P.PAUSED):
            continue
        new, commands = transition(state, JudgeReported(state.step, Verdict.INVALID), r.now + 1)
        if state.plan.rollback.on_invalid == "rollback":
            assert new.phase is P.ROLLING_BACK
        else:
            assert (new.phase, new.step, new.restart_on_resume) == (P.PAUSED, state.step, True)
            assert not [c for c in commands if isinstance(c, TRAFFIC_COMMANDS)]


@given(walks())
def test_any_reachable_canary_times_out_at_max_duration_by_its_policy(
    walk: tuple[RolloutPlan, list[Record]],
) -> None:
    for r in walk[1]:
        state = r.new
        if state.phase is not P.CANARY or state.passed or state.step_started_at is None:
            continue
        step = state.plan.steps[state.step]
        assert isinstance(step, CanaryStep)
        deadline = state.step_started_at + step.max_duration_s
        if deadline - 0.5 >= r.now:
            assert transition(state, Tick(), deadline - 0.5)[0] is state
        new, _ = transition(state, Tick(), max(deadline, r.now))
        if step.on_timeout == "proceed":
            assert new.step == state.step + 1
        else:
            expected = P.PAUSED if step.on_timeout == "pause" else P.ROLLING_BACK
            assert (new.phase, new.step) == (expected, state.step)


@given(walks())
def test_any_reachable_step_paused_by_a_person_resumes_as_it_was(
    walk: tuple[RolloutPlan, list[Record]],
) -> None:
    for r in walk[1]:
        state = r.new
        if state.phase not in (P.SHADOWING, P.TESTING, P.CANARY):
            continue
        paused, commands = transition(state, PauseRequested(), r.now + 5)
        assert paused.phase is P.PAUSED
        assert not [c for c in commands if isinstance(c, TRAFFIC_COMMANDS)]
        resumed, commands = transition(paused, ResumeRequested(), r.now + 5000)
        assert (resumed.phase, resumed.step, resumed.passed) == (
            state.phase,
            state.step,
            state.passed,
        )
        assert resumed.traffic == state.traffic
        assert abs(resumed.elapsed(r.now + 5000) - state.elapsed(r.now + 5)) < 1e-6
        assert not [c for c in commands if isinstance(c, TRAFFIC_COMMANDS)]
