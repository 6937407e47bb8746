"""A rollout state survives its JSON form, whatever events brought it there."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from stageless.analysis.verdict import Verdict
from stageless.rollout.commands import RollBack, StartJudge
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
from stageless.rollout.machine import RolloutState, transition
from stageless.service.rolloutstate import state_from_json, state_to_json, to_json
from tests.rollout.factories import SHADOW, TESTERS, WEBHOOK, canary, plan

PLAN = plan(SHADOW, TESTERS, WEBHOOK, canary(5), canary(50, on_timeout="proceed"))
steps = st.integers(0, 5)
events: st.SearchStrategy[Event] = st.one_of(
    st.just(StartRequested("ci")),
    st.just(PauseRequested("alice")),
    st.just(ResumeRequested("alice")),
    st.just(PromoteRequested()),
    st.just(AbortRequested("bob", "bad")),
    st.just(PromotionCompleted()),
    st.just(RollbackCompleted()),
    st.just(DriverFailed("down")),
    st.just(Tick()),
    st.builds(ApprovalGiven, steps),
    st.builds(CheckPassed, steps),
    st.builds(CheckFailed, steps),
    st.builds(JudgeReported, steps, st.sampled_from(list(Verdict))),
    st.builds(
        DiffReported,
        steps,
        st.builds(
            DiffSummary,
            st.integers(0, 2000),
            st.lists(st.sampled_from(["body.a", "status"]), unique=True).map(tuple),
            st.integers(0, 10),
            st.integers(0, 10),
        ),
    ),
)


@given(st.lists(st.tuples(st.floats(0, 4000), events), max_size=25))
def test_every_reachable_state_survives_json(sequence: list[tuple[float, Event]]) -> None:
    state = RolloutState(PLAN)
    now = 1_000.0
    for delay, event in sequence:
        now += delay
        state, _ = transition(state, event, now)
        text = json.dumps(state_to_json(state), allow_nan=False)
        assert state_from_json(json.loads(text), PLAN) == state


def test_events_and_commands_name_their_type() -> None:
    judged = to_json(JudgeReported(2, Verdict.FAIL, "errors doubled"))
    assert judged == {
        "type": "JudgeReported",
        "step": 2,
        "verdict": "FAIL",
        "summary": "errors doubled",
    }
    assert to_json(RollBack()) == {"type": "RollBack"}
    start = to_json(StartJudge(3, PLAN.judge_configs[3]))
    assert start["type"] == "StartJudge"
    assert start["config"]["min_duration_s"] == 60.0
    assert "type" not in start["config"]
    json.dumps(start, allow_nan=False)
