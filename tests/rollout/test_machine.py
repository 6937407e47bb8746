"""The controller, transition by transition: one case per (phase, event, next phase) of the
table (a test checks the cases cover the whole table), then the exact commands of the moves that
matter."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from stageless.analysis.verdict import Decision, Verdict
from stageless.rollout import machine
from stageless.rollout.commands import (
    Command,
    EnableTesters,
    Log,
    Notify,
    Promote,
    RollBack,
    RunCheck,
    SetWeight,
    StartJudge,
    StartShadow,
    StopJudge,
    StopShadow,
    Traffic,
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
from stageless.rollout.machine import TRANSITIONS, RolloutState, describe_step, transition
from stageless.rollout.phases import ACTIVE, Phase
from stageless.rollout.plan import RolloutPlan
from tests.rollout.factories import CANARY, SHADOW, TESTERS, WEBHOOK, canary, plan, run

P = Phase
START = (0.0, StartRequested())


def judge(verdict: Verdict, step: int = 0) -> JudgeReported:
    return JudgeReported(step, verdict, f"{verdict} summary")


def diff(compared: int, *fields: str, step: int = 0) -> DiffReported:
    return DiffReported(step, DiffSummary(compared, fields, compared, 0))


NEXT_STEPS: dict[Phase, dict[str, Any] | None] = {
    P.SHADOWING: SHADOW,
    P.TESTING: TESTERS,
    P.CANARY: canary(50),
    P.PROMOTING: None,
}
"""A step that runs in each phase (``None``: the promote step every plan ends with)."""


def after(first: dict[str, Any], phase: Phase) -> list[dict[str, Any]]:
    """Steps: ``first``, then a step that runs in ``phase``."""
    following = NEXT_STEPS[phase]
    return [first] if following is None else [first, following]


Case = tuple[str, list[dict[str, Any]], list[tuple[float, Event]], tuple[float, Event], Phase]


def cases() -> list[Case]:
    out: list[Case] = [
        ("start, promote only", [], [], START, P.PROMOTING),
        ("promote before start", [CANARY], [], (0, PromoteRequested()), P.PROMOTING),
        ("abort before start", [CANARY], [], (0, AbortRequested()), P.ABORTED),
        ("tick before start", [CANARY], [], (5, Tick()), P.PENDING),
    ]
    for phase, step in NEXT_STEPS.items():
        if step is not None:
            out.append((f"start into {phase}", [step], [], START, phase))
    for phase, step in ((P.SHADOWING, SHADOW), (P.TESTING, TESTERS), (P.CANARY, CANARY)):
        assert phase in ACTIVE
        out += [
            (f"pause {phase}", [step], [START], (1, PauseRequested()), P.PAUSED),
            (f"promote {phase}", [step], [START], (1, PromoteRequested()), P.PROMOTING),
            (f"abort {phase}", [step], [START], (1, AbortRequested()), P.ROLLING_BACK),
            (f"driver fails in {phase}", [step], [START], (1, DriverFailed("x")), P.PAUSED),
            (f"tick in {phase}", [step], [START], (1, Tick()), phase),
        ]
    # shadow
    out += [
        ("diff below the count", [SHADOW], [START], (1, diff(99)), P.SHADOWING),
        ("diff for another step", [SHADOW], [START], (1, diff(500, step=1)), P.SHADOWING),
        ("diff fails the gate", [SHADOW], [START], (1, diff(100, "body.a")), P.ROLLING_BACK),
        ("shadow compared nothing", [SHADOW], [START], (600, Tick()), P.PAUSED),
        (
            "shadow ends with a failed gate",
            [SHADOW],
            [START, (1, diff(50, "body.a"))],
            (600, Tick()),
            P.ROLLING_BACK,
        ),
    ]
    for phase in NEXT_STEPS:
        out += [
            (f"diff passes into {phase}", after(SHADOW, phase), [START], (1, diff(100)), phase),
            (
                f"shadow duration passes into {phase}",
                after(SHADOW, phase),
                [START, (1, diff(50))],
                (600, Tick()),
                phase,
            ),
        ]
    # testers
    approve_paused = [START, (1, PauseRequested()), (1, ApprovalGiven(0)), (1, ResumeRequested())]
    out += [
        ("approval of a webhook step", [WEBHOOK], [START], (1, ApprovalGiven(0)), P.TESTING),
        ("check of a manual step", [TESTERS], [START], (1, CheckPassed(0)), P.TESTING),
        ("stale check failure", [WEBHOOK], [START], (1, CheckFailed(3)), P.TESTING),
        ("check fails", [WEBHOOK], [START], (1, CheckFailed(0, "smoke")), P.ROLLING_BACK),
        ("check never answers", [WEBHOOK], [START], (60, Tick()), P.PAUSED),
    ]
    for phase in NEXT_STEPS:
        out += [
            (
                f"approval into {phase}",
                after(TESTERS, phase),
                [START],
                (1, ApprovalGiven(0)),
                phase,
            ),
            (
                f"check passes into {phase}",
                after(WEBHOOK, phase),
                [START],
                (1, CheckPassed(0)),
                phase,
            ),
            (
                f"approved while paused into {phase}",
                after(TESTERS, phase),
                approve_paused,
                (1, Tick()),
                phase,
            ),
        ]
    # canary
    out += [
        ("judge continues", [CANARY], [START], (1, judge(Verdict.CONTINUE)), P.CANARY),
        ("judge invalid", [CANARY], [START], (1, judge(Verdict.INVALID)), P.PAUSED),
        ("judge fails", [CANARY], [START], (1, judge(Verdict.FAIL)), P.ROLLING_BACK),
        ("canary times out: pause", [CANARY], [START], (600, Tick()), P.PAUSED),
        (
            "canary times out: rollback",
            [canary(on_timeout="rollback")],
            [START],
            (600, Tick()),
            P.ROLLING_BACK,
        ),
    ]
    for phase in NEXT_STEPS:
        out += [
            (
                f"judge passes into {phase}",
                after(CANARY, phase),
                [START],
                (60, judge(Verdict.PASS)),
                phase,
            ),
            (
                f"min duration after a pass into {phase}",
                after(CANARY, phase),
                [START, (10, judge(Verdict.PASS))],
                (50, Tick()),
                phase,
            ),
        ]
    # paused
    paused_canary = [START, (1, PauseRequested())]
    paused_webhook = [START, (1, PauseRequested())]
    out += [
        (
            "resume into shadow",
            [SHADOW],
            [START, (1, PauseRequested())],
            (1, ResumeRequested()),
            P.SHADOWING,
        ),
        (
            "resume into testers",
            [TESTERS],
            [START, (1, PauseRequested())],
            (1, ResumeRequested()),
            P.TESTING,
        ),
        ("resume into canary", [CANARY], paused_canary, (1, ResumeRequested()), P.CANARY),
        (
            "resume a promotion",
            [],
            [START, (1, DriverFailed("x"))],
            (1, ResumeRequested()),
            P.PROMOTING,
        ),
        ("promote while paused", [CANARY], paused_canary, (1, PromoteRequested()), P.PROMOTING),
        ("abort while paused", [CANARY], paused_canary, (1, AbortRequested()), P.ROLLING_BACK),
        (
            "judge continues while paused",
            [CANARY],
            paused_canary,
            (1, judge(Verdict.CONTINUE)),
            P.PAUSED,
        ),
        (
            "judge fails while paused",
            [CANARY],
            paused_canary,
            (1, judge(Verdict.FAIL)),
            P.ROLLING_BACK,
        ),
        ("stale failure while paused", [WEBHOOK], paused_webhook, (1, CheckFailed(1)), P.PAUSED),
        (
            "check fails while paused",
            [WEBHOOK],
            paused_webhook,
            (1, CheckFailed(0)),
            P.ROLLING_BACK,
        ),
        ("driver fails while paused", [CANARY], paused_canary, (1, DriverFailed("x")), P.PAUSED),
        ("check passes while paused", [WEBHOOK], paused_webhook, (1, CheckPassed(0)), P.PAUSED),
        ("approval while paused", [TESTERS], paused_webhook, (1, ApprovalGiven(0)), P.PAUSED),
        ("diff while paused", [SHADOW], [START, (1, PauseRequested())], (1, diff(500)), P.PAUSED),
        ("tick while paused", [CANARY], paused_canary, (9999, Tick()), P.PAUSED),
    ]
    # promoting, rolling back, the end
    promoting = [START, (1, PromoteRequested())]
    failed = [START, (1, judge(Verdict.FAIL))]
    aborted = [START, (1, AbortRequested())]
    out += [
        ("promotion completes", [CANARY], promoting, (1, PromotionCompleted()), P.PROMOTED),
        ("driver fails promoting", [CANARY], promoting, (1, DriverFailed("x")), P.PAUSED),
        ("abort while promoting", [CANARY], promoting, (1, AbortRequested()), P.ROLLING_BACK),
        ("tick while promoting", [CANARY], promoting, (1, Tick()), P.PROMOTING),
        ("rollback completes", [CANARY], failed, (1, RollbackCompleted()), P.ROLLED_BACK),
        ("abort completes", [CANARY], aborted, (1, RollbackCompleted()), P.ABORTED),
        ("driver fails rolling back", [CANARY], failed, (1, DriverFailed("x")), P.ROLLING_BACK),
        ("tick while rolling back", [CANARY], failed, (1, Tick()), P.ROLLING_BACK),
        (
            "tick when promoted",
            [CANARY],
            [*promoting, (1, PromotionCompleted())],
            (1, Tick()),
            P.PROMOTED,
        ),
        (
            "tick when rolled back",
            [CANARY],
            [*failed, (1, RollbackCompleted())],
            (1, Tick()),
            P.ROLLED_BACK,
        ),
        ("tick when aborted", [CANARY], [(0, AbortRequested())], (1, Tick()), P.ABORTED),
    ]
    return out


CASES = cases()


def observe(case: Case) -> tuple[Phase, type[Event], Phase, RolloutState, list[Command]]:
    _, steps, setup, (delay, event), _ = case
    before, _, now = run(plan(*steps), setup)
    after_state, commands = transition(before, event, now + delay)
    return before.phase, type(event), after_state.phase, after_state, commands


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_each_transition(case: Case) -> None:
    source, event, target, _, commands = observe(case)
    assert (source, event) in TRANSITIONS
    assert target is case[4]
    assert target in TRANSITIONS[source, event]
    assert not [c for c in commands if isinstance(c, Log) and c.level == "error"]


def test_the_cases_cover_every_transition_of_the_table() -> None:
    seen = {observe(case)[:3] for case in CASES}
    table = {
        (source, event, target)
        for (source, event), targets in TRANSITIONS.items()
        for target in targets
    }
    assert table - seen == set(), "transitions with no case"
    assert seen - table == set(), "cases outside the table"


# -- events outside the table, stale evidence, refusals ---------------------------------------


@pytest.mark.parametrize(
    ("setup", "event", "message"),
    [
        ([], ResumeRequested(), "ignored ResumeRequested: not allowed in PENDING"),
        ([START], StartRequested(), "ignored StartRequested: not allowed in CANARY"),
        ([START], ApprovalGiven(0), "ignored ApprovalGiven: not allowed in CANARY"),
        (
            [START, (1, PauseRequested())],
            PauseRequested(),
            "ignored PauseRequested: not allowed in PAUSED",
        ),
        (
            [(0, AbortRequested())],
            AbortRequested(),
            "ignored AbortRequested: not allowed in ABORTED",
        ),
        ([START], RollbackCompleted(), "ignored RollbackCompleted: not allowed in CANARY"),
    ],
)
def test_events_outside_the_table_are_ignored_with_a_reason(
    setup: list[tuple[float, Event]], event: Event, message: str
) -> None:
    before, _, now = run(plan(CANARY), setup)
    after_state, commands = transition(before, event, now + 1)
    assert after_state is before
    assert commands == [Log(message, "warning")]


@pytest.mark.parametrize(
    ("steps", "event", "message"),
    [
        (
            [CANARY],
            judge(Verdict.FAIL, step=1),
            "ignored JudgeReported for step 2: step 1 is running",
        ),
        ([SHADOW], diff(100, step=2), "ignored DiffReported for step 3: step 1 is running"),
        ([WEBHOOK], CheckPassed(1), "ignored CheckPassed for step 2: step 1 is running"),
        ([TESTERS], ApprovalGiven(1), "ignored ApprovalGiven for step 2: step 1 is running"),
        (
            [TESTERS],
            CheckFailed(0),
            "ignored CheckFailed: step 1 of 2 (testers, manual approval) has no webhook check",
        ),
        (
            [WEBHOOK],
            ApprovalGiven(0),
            "ignored ApprovalGiven: step 1 of 2 (testers, webhook check) has no manual gate",
        ),
    ],
)
def test_evidence_for_another_step_or_gate_is_ignored(
    steps: list[dict[str, Any]], event: Event, message: str
) -> None:
    before, _, now = run(plan(*steps), [START])
    after_state, commands = transition(before, event, now + 1)
    assert after_state == before
    assert commands == [Log(message)]


@pytest.mark.parametrize(
    ("steps", "event", "message"),
    [
        (
            [SHADOW, CANARY],
            judge(Verdict.FAIL),
            "ignored JudgeReported: step 1 of 3 (shadow 10%) is not a canary",
        ),
        ([CANARY], diff(100), "ignored DiffReported: step 1 of 2 (canary 5%) is not a shadow step"),
        (
            [CANARY],
            ApprovalGiven(0),
            "ignored ApprovalGiven: step 1 of 2 (canary 5%) has no manual gate",
        ),
    ],
)
def test_evidence_of_the_wrong_kind_is_ignored_while_paused(
    steps: list[dict[str, Any]], event: Event, message: str
) -> None:
    before, _, now = run(plan(*steps), [START, (1, PauseRequested())])
    after_state, commands = transition(before, event, now + 1)
    assert after_state == before
    assert commands == [Log(message)]


def test_the_machine_refuses_a_handler_result_outside_the_table(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(state: RolloutState, event: Tick, now: float) -> tuple[RolloutState, list[Command]]:
        return replace(state, phase=Phase.PROMOTED), [Promote()]

    handlers: dict[type[Event], Callable[..., Any]] = dict(machine._HANDLERS)
    handlers[Tick] = broken
    monkeypatch.setattr(machine, "_HANDLERS", handlers)
    before, _, now = run(plan(CANARY), [START])
    after_state, commands = transition(before, Tick(), now + 1)
    assert after_state is before
    assert commands == [
        Log("refused Tick in CANARY: it led to PROMOTED, not in the table", "error")
    ]


# -- the commands of each move ----------------------------------------------------------------


def notify(previous: Phase, phase: Phase, step: int, reason: str) -> Notify:
    return Notify(previous, phase, step, reason)


def test_a_full_walk_issues_each_steps_commands() -> None:
    rollout = plan(SHADOW, WEBHOOK, CANARY, canary(25))
    state = RolloutState(rollout)
    walk: list[tuple[float, Event, list[Command]]] = [
        (1000, StartRequested("ci"), [StartShadow(10.0, 0)]),
        (
            1010,
            diff(100),
            [StopShadow(), EnableTesters(), RunCheck(1, "https://ci.example.com/check", 60.0)],
        ),
        (1020, CheckPassed(1, "ok"), [SetWeight(5.0), StartJudge(2, rollout.judge_configs[2])]),
        (
            1080,
            judge(Verdict.PASS, 2),
            [StopJudge(2), SetWeight(25.0), StartJudge(3, rollout.judge_configs[3])],
        ),
        (1140, judge(Verdict.PASS, 3), [StopJudge(3), SetWeight(100.0), Promote()]),
        (1150, PromotionCompleted(), []),
    ]
    phases = [P.SHADOWING, P.TESTING, P.CANARY, P.CANARY, P.PROMOTING, P.PROMOTED]
    for (now, event, expected), phase in zip(walk, phases, strict=True):
        previous = state.phase
        state, commands = transition(state, event, now)
        assert commands[:-1] == expected
        assert isinstance(commands[-1], Notify)
        assert (commands[-1].previous, commands[-1].phase) == (previous, phase)
        assert state.phase is phase
    assert state.traffic == Traffic()
    assert state.reason == "promoted: the candidate is the new stable"


def test_the_step_reason_says_why() -> None:
    state, commands, _ = run(plan(SHADOW, CANARY), [START, (1, diff(100))])
    assert state.reason == (
        "step 2 of 3 (canary 5%) started: step 1 of 3 (shadow 10%) passed: 100 requests "
        "compared, 0 unexpected differing field(s), candidate errors 0.00%"
    )
    assert commands[-1] == notify(P.SHADOWING, P.CANARY, 1, state.reason)


def test_a_fail_rolls_back_in_one_move() -> None:
    state, commands, _ = run(
        plan(TESTERS, CANARY), [START, (1, ApprovalGiven(0, "ann")), (1, judge(Verdict.FAIL, 1))]
    )
    assert state.phase is P.ROLLING_BACK
    assert commands == [
        RollBack(),
        StopJudge(1),
        notify(
            P.CANARY,
            P.ROLLING_BACK,
            1,
            "step 2 of 3 (canary 5%): the judge says FAIL (FAIL summary)",
        ),
    ]
    assert state.traffic == Traffic()
    state, commands, _ = run(
        state.plan,
        [START, (1, ApprovalGiven(0)), (1, judge(Verdict.FAIL, 1)), (1, RollbackCompleted())],
    )
    assert state.phase is P.ROLLED_BACK
    assert state.reason.endswith("; the candidate has no traffic")


def test_an_abort_before_any_traffic_needs_no_rollback() -> None:
    state, commands, _ = run(plan(CANARY), [(0, AbortRequested("ann", "wrong build"))])
    assert state.phase is P.ABORTED
    assert commands == [notify(P.PENDING, P.ABORTED, 0, "aborted by ann: wrong build")]


def test_an_abort_with_traffic_rolls_back_and_ends_aborted() -> None:
    state, commands, _ = run(plan(SHADOW), [START, (1, AbortRequested())])
    assert commands[0] == RollBack()
    assert state.aborted
    state, commands, _ = run(plan(SHADOW), [START, (1, AbortRequested()), (1, RollbackCompleted())])
    assert state.phase is P.ABORTED


def test_a_driver_failure_while_rolling_back_resends_the_rollback() -> None:
    state, commands, _ = run(
        plan(CANARY), [START, (1, judge(Verdict.FAIL)), (1, DriverFailed("timeout"))]
    )
    assert state.phase is P.ROLLING_BACK
    assert commands == [RollBack(), Log("the driver failed (timeout); rollback re-sent", "warning")]


def test_a_promote_request_skips_the_remaining_gates() -> None:
    state, commands, _ = run(plan(SHADOW, CANARY), [START, (1, PromoteRequested("ann"))])
    assert state.phase is P.PROMOTING
    assert state.step == 2
    assert commands[:-1] == [StopShadow(), SetWeight(100.0), Promote()]
    assert state.reason == "promoting: promote requested by ann: remaining gates skipped"


def test_invalid_follows_the_plans_policy() -> None:
    paused, commands, _ = run(plan(CANARY), [START, (1, judge(Verdict.INVALID))])
    assert paused.phase is P.PAUSED and paused.restart_on_resume
    assert commands == [notify(P.CANARY, P.PAUSED, 0, paused.reason)]
    assert "on_invalid is pause" in paused.reason
    rolled, commands, _ = run(
        plan(CANARY, rollback={"on_invalid": "rollback"}), [START, (1, judge(Verdict.INVALID))]
    )
    assert rolled.phase is P.ROLLING_BACK
    assert commands[0] == RollBack()
    paused_first = [START, (1, PauseRequested()), (1, judge(Verdict.INVALID))]
    still, commands, _ = run(plan(CANARY), paused_first)
    assert (still.phase, still.restart_on_resume) == (P.PAUSED, True)
    rolled, _, _ = run(plan(CANARY, rollback={"on_invalid": "rollback"}), paused_first)
    assert rolled.phase is P.ROLLING_BACK


@pytest.mark.parametrize(
    ("policy", "phase", "step"),
    [("pause", P.PAUSED, 0), ("rollback", P.ROLLING_BACK, 0), ("proceed", P.CANARY, 1)],
)
@pytest.mark.parametrize("ending", ["max_duration_s", "INCONCLUSIVE"])
def test_an_undecided_canary_follows_on_timeout(
    policy: str, phase: Phase, step: int, ending: str
) -> None:
    rollout = plan(canary(on_timeout=policy), canary(25))
    last: tuple[float, Event] = (
        (600, Tick()) if ending == "max_duration_s" else (1, judge(Verdict.INCONCLUSIVE))
    )
    before, _, _ = run(rollout, [START, (599, Tick())])
    assert before.phase is P.CANARY
    events = [START, last]
    if ending == "INCONCLUSIVE" and policy == "proceed":
        # proceeding is a pass without a verdict: it waits for min_duration_s (300 s) first
        waiting, _, _ = run(rollout, events)
        assert (waiting.phase, waiting.step, waiting.passed) == (P.CANARY, 0, True)
        events.append((300, Tick()))
    state, _, _ = run(rollout, events)
    assert (state.phase, state.step) == (phase, step)


def test_inconclusive_while_paused_follows_on_timeout_on_resume() -> None:
    rollout = plan(canary(on_timeout="proceed"), canary(25))
    state, commands, _ = run(
        rollout, [START, (1, PauseRequested()), (1, judge(Verdict.INCONCLUSIVE))]
    )
    assert (state.phase, state.passed) == (P.PAUSED, True)
    state, _, _ = run(
        rollout,
        [
            START,
            (1, PauseRequested()),
            (1, judge(Verdict.INCONCLUSIVE)),
            (1, ResumeRequested()),
            (100, Tick()),
        ],
    )
    assert (state.phase, state.step) == (P.CANARY, 1)
    paused, commands, _ = run(
        plan(CANARY), [START, (1, PauseRequested()), (1, judge(Verdict.INCONCLUSIVE))]
    )
    assert (paused.phase, paused.restart_on_resume) == (P.PAUSED, True)
    assert commands == [
        Log(
            "still paused: the judge says INCONCLUSIVE (INCONCLUSIVE summary); on_timeout is "
            "pause: waiting for a person",
            "warning",
        )
    ]


def test_a_pass_waits_for_min_duration() -> None:
    early, commands, _ = run(plan(CANARY), [START, (10, judge(Verdict.PASS))])
    assert (early.phase, early.passed) == (P.CANARY, True)
    assert commands == [
        Log("the judge says PASS (PASS summary); waiting for min_duration_s (60 s)")
    ]
    waiting, _, _ = run(plan(CANARY), [START, (10, judge(Verdict.PASS)), (49, Tick())])
    assert waiting.phase is P.CANARY
    done, _, _ = run(plan(CANARY), [START, (10, judge(Verdict.PASS)), (50, Tick())])
    assert done.phase is P.PROMOTING


def test_a_manual_pause_resumes_where_it_was_without_counting_the_pause() -> None:
    events = [START, (10, judge(Verdict.PASS)), (20, PauseRequested()), (5000, ResumeRequested())]
    resumed, commands, now = run(plan(CANARY), events)
    assert (resumed.phase, resumed.step, resumed.passed) == (P.CANARY, 0, True)
    assert resumed.elapsed(now) == 30
    assert commands == [notify(P.PAUSED, P.CANARY, 0, "step 1 of 2 (canary 5%) resumed")]
    assert run(plan(CANARY), [*events, (29, Tick())])[0].phase is P.CANARY
    assert run(plan(CANARY), [*events, (30, Tick())])[0].phase is P.PROMOTING


def test_a_pause_moves_no_traffic() -> None:
    state, commands, _ = run(
        plan(TESTERS, CANARY), [START, (1, ApprovalGiven(0)), (1, PauseRequested("ann"))]
    )
    assert commands == [
        notify(P.CANARY, P.PAUSED, 1, "paused at step 2 of 3 (canary 5%): pause requested by ann")
    ]
    assert state.traffic == Traffic(5.0, True, 0.0)


def test_resuming_after_a_driver_failure_resends_everything_afresh() -> None:
    rollout = plan(TESTERS, CANARY)
    events = [
        START,
        (1, ApprovalGiven(0)),
        (1, DriverFailed("proxy unreachable")),
        (100, ResumeRequested("ann")),
    ]
    state, commands, now = run(rollout, events)
    assert (state.phase, state.step, state.elapsed(now)) == (P.CANARY, 1, 0)
    assert commands[:-1] == [
        StopJudge(1),
        EnableTesters(),
        SetWeight(5.0),
        StartJudge(1, rollout.judge_configs[1]),
    ]
    assert commands[-1] == notify(
        P.PAUSED, P.CANARY, 1, "step 2 of 3 (canary 5%) started: resumed by ann, afresh"
    )


def test_resuming_a_shadow_step_afresh_restarts_the_shadow() -> None:
    state, commands, _ = run(plan(SHADOW), [START, (600, Tick()), (1, ResumeRequested())])
    assert state.phase is P.SHADOWING and state.diff is None
    assert commands[:-1] == [StartShadow(10.0, 0)]


def test_a_webhook_check_that_never_answers_pauses_and_runs_again_on_resume() -> None:
    state, _, _ = run(plan(WEBHOOK), [START, (60, Tick())])
    assert state.phase is P.PAUSED
    assert "the webhook check did not answer within 60 s" in state.reason
    state, commands, _ = run(plan(WEBHOOK), [START, (60, Tick()), (1, ResumeRequested())])
    assert commands[:-1] == [EnableTesters(), RunCheck(0, "https://ci.example.com/check", 60.0)]


def test_a_shadow_gate_failure_says_why() -> None:
    state, commands, _ = run(
        plan(SHADOW), [START, (1, DiffReported(0, DiffSummary(100, (), 100, 50)))]
    )
    assert state.phase is P.ROLLING_BACK
    assert commands[:1] == [RollBack()]
    assert state.reason == (
        "step 1 of 2 (shadow 10%): the shadow gate failed: the candidate failed 50 of 100 shadow "
        "requests (50.00%); at most 1% tolerated"
    )


def test_evidence_gathered_while_paused_is_kept() -> None:
    state, _, _ = run(plan(SHADOW), [START, (1, PauseRequested()), (1, diff(500))])
    assert state.diff == DiffSummary(500, (), 500, 0)
    assert state.phase is P.PAUSED  # a paused shadow step does not end
    state, _, _ = run(
        plan(SHADOW),
        [START, (1, PauseRequested()), (1, diff(50)), (1, ResumeRequested()), (600, Tick())],
    )
    assert state.phase is P.PROMOTING


def test_a_paused_promotion_resumes_by_promoting_again() -> None:
    state, commands, _ = run(plan(), [START, (1, DriverFailed("x")), (1, ResumeRequested())])
    assert state.phase is P.PROMOTING
    assert commands[:-1] == [SetWeight(100.0), Promote()]


def test_helpers() -> None:
    rollout: RolloutPlan = plan(SHADOW, WEBHOOK, CANARY)
    assert [describe_step(step) for step in rollout.steps] == [
        "shadow 10%",
        "testers, webhook check",
        "canary 5%",
        "promote",
    ]
    state = RolloutState(rollout)
    assert state.elapsed(5.0) == 0.0
    assert state.running is P.PENDING
    decision = Decision(Verdict.FAIL, (), "FAIL: errors", 10, 10, 2)
    assert JudgeReported.from_decision(2, decision) == JudgeReported(
        2, Verdict.FAIL, "FAIL: errors"
    )
    assert Phase.PROMOTED.terminal and not Phase.PAUSED.terminal
