"""The rollout controller as a pure state machine: ``transition(state, event, now)`` returns the
next state and the commands that get there. No I/O; time enters only as ``now``.

:data:`TRANSITIONS` is the whole contract: for each (phase, event type) the phases the machine
may move to. An event with no entry for the current phase is ignored (the state is unchanged and
a :class:`~stageless.rollout.commands.Log` says why); a handler whose result falls outside its
entry is refused the same way, so no sequence of events can take a rollout anywhere else.
docs/rollouts.md shows the table (a test keeps the two equal).

Rules the property tests check (tests/rollout/test_machine_properties.py):

- a FAIL (the judge's verdict, a failed gate or check) or an abort moves to ``ROLLING_BACK`` (or
  straight to ``ABORTED`` before any traffic), and ``RollBack`` is issued exactly when the
  candidate had traffic; after it, no command gives the candidate traffic again;
- INVALID follows ``rollback.on_invalid``; an undecided canary at ``max_duration_s`` (or an
  INCONCLUSIVE verdict) follows the step's ``on_timeout``;
- steps run in order; only ``PromoteRequested`` skips to the promotion;
- a paused rollout resumes at the step where it was: as it was after a person's pause (the
  paused time does not count towards the step's durations), afresh (new evidence, commands
  re-sent) after a pause the rollout took by itself (timeout, INVALID, driver failure, a check
  that never answered, a shadow step that compared nothing).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from stageless.analysis.verdict import Verdict
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
from stageless.rollout.gates import DiffSummary, shadow_gate
from stageless.rollout.phases import ACTIVE, STEP_PHASES, Phase
from stageless.rollout.plan import CanaryStep, RolloutPlan, ShadowStep, Step, TestersStep

__all__ = ["TRANSITIONS", "RolloutState", "describe_step", "transition"]

_P = Phase
_NEXT = frozenset(STEP_PHASES.values())
"""Where advancing to the next step (or starting) can lead: the next step's phase."""


def _table() -> dict[tuple[Phase, type[Event]], frozenset[Phase]]:
    t: dict[tuple[Phase, type[Event]], frozenset[Phase]] = {
        (_P.PENDING, StartRequested): _NEXT,
        (_P.PENDING, PromoteRequested): frozenset({_P.PROMOTING}),
        (_P.PENDING, AbortRequested): frozenset({_P.ABORTED}),
    }
    for phase in ACTIVE:
        t[phase, PauseRequested] = frozenset({_P.PAUSED})
        t[phase, PromoteRequested] = frozenset({_P.PROMOTING})
        t[phase, AbortRequested] = frozenset({_P.ROLLING_BACK})
        t[phase, DriverFailed] = frozenset({_P.PAUSED})
    t[_P.SHADOWING, DiffReported] = frozenset({_P.SHADOWING, _P.ROLLING_BACK}) | _NEXT
    t[_P.TESTING, ApprovalGiven] = frozenset({_P.TESTING}) | _NEXT
    t[_P.TESTING, CheckPassed] = frozenset({_P.TESTING}) | _NEXT
    t[_P.TESTING, CheckFailed] = frozenset({_P.TESTING, _P.ROLLING_BACK})
    t[_P.CANARY, JudgeReported] = frozenset({_P.CANARY, _P.PAUSED, _P.ROLLING_BACK}) | _NEXT
    t[_P.SHADOWING, Tick] = frozenset({_P.SHADOWING, _P.PAUSED, _P.ROLLING_BACK}) | _NEXT
    t[_P.TESTING, Tick] = frozenset({_P.TESTING, _P.PAUSED}) | _NEXT
    t[_P.CANARY, Tick] = frozenset({_P.CANARY, _P.PAUSED, _P.ROLLING_BACK}) | _NEXT
    t[_P.PAUSED, ResumeRequested] = frozenset({_P.SHADOWING, _P.TESTING, _P.CANARY, _P.PROMOTING})
    t[_P.PAUSED, PromoteRequested] = frozenset({_P.PROMOTING})
    t[_P.PAUSED, AbortRequested] = frozenset({_P.ROLLING_BACK})
    t[_P.PAUSED, JudgeReported] = frozenset({_P.PAUSED, _P.ROLLING_BACK})
    t[_P.PAUSED, CheckFailed] = frozenset({_P.PAUSED, _P.ROLLING_BACK})
    for event in (DriverFailed, CheckPassed, ApprovalGiven, DiffReported):
        t[_P.PAUSED, event] = frozenset({_P.PAUSED})
    t[_P.PROMOTING, PromotionCompleted] = frozenset({_P.PROMOTED})
    t[_P.PROMOTING, DriverFailed] = frozenset({_P.PAUSED})
    t[_P.PROMOTING, AbortRequested] = frozenset({_P.ROLLING_BACK})
    t[_P.ROLLING_BACK, RollbackCompleted] = frozenset({_P.ROLLED_BACK, _P.ABORTED})
    t[_P.ROLLING_BACK, DriverFailed] = frozenset({_P.ROLLING_BACK})
    for phase in Phase:  # time passes everywhere; only running steps have timers
        t.setdefault((phase, Tick), frozenset({phase}))
    return t


TRANSITIONS: Mapping[tuple[Phase, type[Event]], frozenset[Phase]] = _table()
"""(phase, event type) -> the phases the machine may move to (its own phase included when the
event may leave it where it is). Anything not listed is ignored."""


@dataclass(frozen=True, slots=True)
class RolloutState:
    """Everything the controller knows about one rollout.

    ``step`` indexes ``plan.steps`` (the step running, paused or promoting); ``step_started_at``
    is when it started (moved forward by the length of a person's pause); ``paused_from`` /
    ``paused_at`` / ``restart_on_resume`` describe a pause; ``passed`` is set once the step's
    gate passed while the step must still wait (a canary's ``min_duration_s``, a pause);
    ``diff`` is the shadow step's latest evidence; ``traffic`` what the candidate receives (the
    traffic commands issued so far, folded); ``reason`` why the rollout is where it is;
    ``aborted`` whether a rollback in progress was an abort (it then ends ``ABORTED``).
    """

    plan: RolloutPlan
    phase: Phase = Phase.PENDING
    step: int = 0
    step_started_at: float | None = None
    paused_from: Phase | None = None
    paused_at: float | None = None
    restart_on_resume: bool = False
    passed: bool = False
    diff: DiffSummary | None = None
    traffic: Traffic = field(default_factory=Traffic)
    reason: str = "not started"
    aborted: bool = False

    @property
    def current(self) -> Step:
        """The plan's step at ``step``."""
        return self.plan.steps[self.step]

    def elapsed(self, now: float) -> float:
        """Seconds the current step has run (0 before it started)."""
        return 0.0 if self.step_started_at is None else max(0.0, now - self.step_started_at)

    @property
    def running(self) -> Phase:
        """The phase of the current step, also while paused (``paused_from``)."""
        if self.phase is Phase.PAUSED and self.paused_from is not None:
            return self.paused_from
        return self.phase


Result = tuple[RolloutState, list[Command]]


def transition(state: RolloutState, event: Event, now: float) -> Result:
    """The state after ``event`` at time ``now``, and the commands to carry out, in order.

    Never raises for an event: one that the table does not allow in the current phase, or that
    belongs to another step, leaves the state as it is, with a ``Log`` command saying why.
    """
    allowed = TRANSITIONS.get((state.phase, type(event)))
    name = type(event).__name__
    if allowed is None:
        return state, [Log(f"ignored {name}: not allowed in {state.phase}", "warning")]
    new, commands = _HANDLERS[type(event)](state, event, now)
    if new.phase not in allowed:
        return state, [
            Log(
                f"refused {name} in {state.phase}: it led to {new.phase}, not in the table", "error"
            )
        ]
    return new, commands


def describe_step(step: Step) -> str:
    """``canary 5%``, ``shadow 10%``, ``testers, manual approval``, ``promote``."""
    if isinstance(step, CanaryStep):
        return f"canary {step.weight:g}%"
    if isinstance(step, ShadowStep):
        return f"shadow {step.share:g}%"
    if isinstance(step, TestersStep):
        return "testers, manual approval" if step.webhook is None else "testers, webhook check"
    return "promote"


def _label(state: RolloutState, index: int) -> str:
    return f"step {index + 1} of {len(state.plan.steps)} ({describe_step(state.plan.steps[index])})"


# -- moves shared by the handlers -----------------------------------------------------------------


def _moved(state: RolloutState, commands: list[Command], **changes: Any) -> Result:
    """``state`` with ``changes``, the traffic folded through ``commands``, and a ``Notify``
    appended when the phase or the step changes."""
    traffic = state.traffic
    for command in commands:
        traffic = traffic.after(command)
    new = replace(state, traffic=traffic, **changes)
    if new.phase is not state.phase or new.step != state.step:
        commands = [*commands, Notify(state.phase, new.phase, new.step, new.reason)]
    return new, commands


def _leave(state: RolloutState) -> list[Command]:
    """Commands that end the current step's evidence gathering (its judge)."""
    if state.running is Phase.CANARY and state.phase in (Phase.CANARY, Phase.PAUSED):
        return [StopJudge(state.step)]
    return []


def _enter(
    state: RolloutState, index: int, now: float, reason: str, *, force: bool = False
) -> Result:
    """Start step ``index``: its traffic, its evidence gathering, its timer. ``force`` re-sends
    the traffic commands even where the traffic should already be so (after a driver failure)."""
    step = state.plan.steps[index]
    if step.kind == "promote":
        return _promote(state, now, reason, index=index)
    current = state.traffic
    commands = _leave(state)
    if isinstance(step, ShadowStep):
        commands.append(StartShadow(step.share, index))
    elif current.shadow > 0:
        commands.append(StopShadow())
    testers = current.testers or isinstance(step, TestersStep)
    if testers and (force or not current.testers):
        commands.append(EnableTesters())
    weight = step.weight if isinstance(step, CanaryStep) else current.weight
    if weight != current.weight or (force and weight > 0):
        commands.append(SetWeight(weight))
    if isinstance(step, CanaryStep):
        commands.append(StartJudge(index, state.plan.judge_configs[index]))
    if isinstance(step, TestersStep) and step.webhook is not None:
        commands.append(RunCheck(index, step.webhook.url, step.webhook.timeout_s))
    return _moved(
        state,
        commands,
        phase=STEP_PHASES[step.kind],
        step=index,
        step_started_at=now,
        paused_from=None,
        paused_at=None,
        restart_on_resume=False,
        passed=False,
        diff=None,
        reason=f"{_label(state, index)} started: {reason}",
    )


def _advance(state: RolloutState, now: float, reason: str) -> Result:
    return _enter(state, state.step + 1, now, reason)


def _promote(state: RolloutState, now: float, reason: str, *, index: int | None = None) -> Result:
    last = len(state.plan.steps) - 1
    commands = _leave(state)
    if state.traffic.shadow > 0:
        commands.append(StopShadow())
    commands += [SetWeight(100.0), Promote()]
    return _moved(
        state,
        commands,
        phase=Phase.PROMOTING,
        step=last if index is None else index,
        step_started_at=now,
        paused_from=None,
        paused_at=None,
        restart_on_resume=False,
        passed=False,
        diff=None,
        reason=f"promoting: {reason}",
    )


def _roll_back(state: RolloutState, reason: str, *, aborted: bool = False) -> Result:
    """Take all traffic from the candidate in one move (``ROLLING_BACK``), or end at once when
    it has none."""
    if not state.traffic.any:
        end = Phase.ABORTED if aborted else Phase.ROLLED_BACK
        return _moved(state, _leave(state), phase=end, reason=reason, aborted=aborted)
    return _moved(
        state,
        [RollBack(), *_leave(state)],
        phase=Phase.ROLLING_BACK,
        paused_from=None,
        paused_at=None,
        reason=reason,
        aborted=aborted,
    )


def _pause(state: RolloutState, now: float, reason: str, *, restart: bool) -> Result:
    if state.phase is Phase.PAUSED:
        return _moved(
            state,
            [Log(f"still paused: {reason}", "warning")],
            restart_on_resume=state.restart_on_resume or restart,
            reason=reason,
        )
    return _moved(
        state,
        [],
        phase=Phase.PAUSED,
        paused_from=state.phase,
        paused_at=now,
        restart_on_resume=restart,
        reason=f"paused at {_label(state, state.step)}: {reason}",
    )


def _on_timeout(state: RolloutState, now: float, why: str) -> Result:
    step = state.current
    assert isinstance(step, CanaryStep)  # noqa: S101 - only canary steps time out this way
    if step.on_timeout == "rollback":
        return _roll_back(state, f"{why}; on_timeout is rollback")
    if step.on_timeout == "proceed":
        return _advance(state, now, f"{_label(state, state.step)}: {why}; on_timeout is proceed")
    return _pause(state, now, f"{why}; on_timeout is pause: waiting for a person", restart=True)


def _ignore(state: RolloutState, why: str) -> Result:
    return state, [Log(why)]


def _stale(state: RolloutState, event: Event, step: int) -> Result | None:
    """Ignore evidence for another step than the current one."""
    if step != state.step:
        name = type(event).__name__
        return _ignore(
            state, f"ignored {name} for step {step + 1}: step {state.step + 1} is running"
        )
    return None


# -- handlers, one per event type --------------------------------------------------------------


def _start(state: RolloutState, event: StartRequested, now: float) -> Result:
    return _enter(state, 0, now, f"rollout started{_by(event.by)}")


def _pause_requested(state: RolloutState, event: PauseRequested, now: float) -> Result:
    return _pause(state, now, f"pause requested{_by(event.by)}", restart=False)


def _resume(state: RolloutState, event: ResumeRequested, now: float) -> Result:
    why = f"resumed{_by(event.by)}"
    assert state.paused_from is not None and state.paused_at is not None  # noqa: S101
    if state.restart_on_resume:
        if state.paused_from is Phase.PROMOTING:
            return _promote(state, now, why)
        return _enter(state, state.step, now, f"{why}, afresh", force=True)
    started = state.step_started_at if state.step_started_at is not None else now
    return _moved(
        state,
        [],
        phase=state.paused_from,
        step_started_at=started + (now - state.paused_at),
        paused_from=None,
        paused_at=None,
        reason=f"{_label(state, state.step)} {why}",
    )


def _promote_requested(state: RolloutState, event: PromoteRequested, now: float) -> Result:
    return _promote(state, now, f"promote requested{_by(event.by)}: remaining gates skipped")


def _abort(state: RolloutState, event: AbortRequested, now: float) -> Result:
    detail = f": {event.reason}" if event.reason else ""
    return _roll_back(state, f"aborted{_by(event.by)}{detail}", aborted=True)


def _driver_failed(state: RolloutState, event: DriverFailed, now: float) -> Result:
    if state.phase is Phase.ROLLING_BACK:
        return state, [
            RollBack(),
            Log(f"the driver failed ({event.reason}); rollback re-sent", "warning"),
        ]
    return _pause(state, now, f"the driver failed: {event.reason}", restart=True)


def _promotion_completed(state: RolloutState, event: PromotionCompleted, now: float) -> Result:
    return _moved(
        replace(state, traffic=Traffic()),
        [],
        phase=Phase.PROMOTED,
        reason="promoted: the candidate is the new stable",
    )


def _rollback_completed(state: RolloutState, event: RollbackCompleted, now: float) -> Result:
    end = Phase.ABORTED if state.aborted else Phase.ROLLED_BACK
    return _moved(state, [], phase=end, reason=f"{state.reason}; the candidate has no traffic")


def _approval(state: RolloutState, event: ApprovalGiven, now: float) -> Result:
    stale = _stale(state, event, event.step)
    if stale is not None:
        return stale
    step = state.current
    if not isinstance(step, TestersStep) or step.approval != "manual":
        return _ignore(
            state, f"ignored ApprovalGiven: {_label(state, state.step)} has no manual gate"
        )
    why = f"approved{_by(event.by)}"
    if state.phase is Phase.PAUSED:
        return _moved(state, [Log(f"{why}; the rollout goes on when resumed")], passed=True)
    return _advance(state, now, f"{_label(state, state.step)} {why}")


def _check_passed(state: RolloutState, event: CheckPassed, now: float) -> Result:
    stale = _stale(state, event, event.step) or _no_check(state, event)
    if stale is not None:
        return stale
    why = f"the webhook check passed{_detail(event.detail)}"
    if state.phase is Phase.PAUSED:
        return _moved(state, [Log(f"{why}; the rollout goes on when resumed")], passed=True)
    return _advance(state, now, f"{_label(state, state.step)}: {why}")


def _check_failed(state: RolloutState, event: CheckFailed, now: float) -> Result:
    stale = _stale(state, event, event.step) or _no_check(state, event)
    if stale is not None:
        return stale
    return _roll_back(
        state, f"{_label(state, state.step)}: the webhook check failed{_detail(event.detail)}"
    )


def _no_check(state: RolloutState, event: Event) -> Result | None:
    step = state.current
    if isinstance(step, TestersStep) and step.webhook is not None:
        return None
    return _ignore(
        state, f"ignored {type(event).__name__}: {_label(state, state.step)} has no webhook check"
    )


def _diff_reported(state: RolloutState, event: DiffReported, now: float) -> Result:
    stale = _stale(state, event, event.step)
    if stale is not None:
        return stale
    step = state.current
    if not isinstance(step, ShadowStep):
        return _ignore(
            state, f"ignored DiffReported: {_label(state, state.step)} is not a shadow step"
        )
    new = replace(state, diff=event.summary)
    limit = step.until.compared
    if state.phase is Phase.SHADOWING and limit is not None and event.summary.compared >= limit:
        return _shadow_ends(new, now, f"{event.summary.compared} requests compared")
    return new, []


def _shadow_ends(state: RolloutState, now: float, why: str) -> Result:
    step = state.current
    assert isinstance(step, ShadowStep)  # noqa: S101
    gate = shadow_gate(step, state.diff)
    label = _label(state, state.step)
    if gate.passed is None:
        return _pause(state, now, f"{why}: {gate.reason}", restart=True)
    if not gate.passed:
        return _roll_back(state, f"{label}: the shadow gate failed: {gate.reason}")
    return _advance(state, now, f"{label} passed: {gate.reason}")


def _judge_reported(state: RolloutState, event: JudgeReported, now: float) -> Result:
    stale = _stale(state, event, event.step)
    if stale is not None:
        return stale
    step = state.current
    if not isinstance(step, CanaryStep):
        return _ignore(state, f"ignored JudgeReported: {_label(state, state.step)} is not a canary")
    label = _label(state, state.step)
    said = f"the judge says {event.verdict}" + (f" ({event.summary})" if event.summary else "")
    paused = state.phase is Phase.PAUSED
    verdict = event.verdict
    if verdict is Verdict.FAIL:
        return _roll_back(state, f"{label}: {said}")
    if verdict is Verdict.INVALID:
        if state.plan.rollback.on_invalid == "rollback":
            return _roll_back(state, f"{label}: {said}; on_invalid is rollback")
        return _pause(
            state, now, f"{said}; on_invalid is pause: check the traffic split", restart=True
        )
    if verdict is Verdict.INCONCLUSIVE:
        if step.on_timeout == "proceed" and (paused or state.elapsed(now) < step.min_duration_s):
            # Proceeding is a pass without a verdict: it waits for min_duration_s like a PASS.
            wait = (
                "goes on when resumed"
                if paused
                else f"goes on after min_duration_s ({step.min_duration_s:g} s)"
            )
            return _moved(state, [Log(f"{said}; on_timeout is proceed: {wait}")], passed=True)
        return _on_timeout(state, now, said)
    if verdict is Verdict.PASS:
        if paused or state.elapsed(now) < step.min_duration_s:
            wait = (
                "the rollout goes on when resumed"
                if paused
                else f"waiting for min_duration_s ({step.min_duration_s:g} s)"
            )
            return _moved(state, [Log(f"{said}; {wait}")], passed=True)
        return _advance(state, now, f"{label} passed: {said}")
    return state, []


def _tick(state: RolloutState, event: Tick, now: float) -> Result:
    if state.phase not in ACTIVE:
        return state, []
    step = state.current
    elapsed = state.elapsed(now)
    label = _label(state, state.step)
    if isinstance(step, ShadowStep):
        limit = step.until.duration_s
        if limit is not None and elapsed >= limit:
            return _shadow_ends(state, now, f"{limit:g} s of shadowing")
        return state, []
    if isinstance(step, TestersStep):
        if state.passed:
            return _advance(state, now, f"{label} approved while paused")
        if step.webhook is not None and elapsed >= step.webhook.timeout_s:
            return _pause(
                state,
                now,
                f"the webhook check did not answer within {step.webhook.timeout_s:g} s",
                restart=True,
            )
        return state, []
    assert isinstance(step, CanaryStep)  # noqa: S101 - the active phases run these three kinds
    if state.passed and elapsed >= step.min_duration_s:
        return _advance(
            state, now, f"{label} passed and ran min_duration_s ({step.min_duration_s:g} s)"
        )
    if elapsed >= step.max_duration_s:
        return _on_timeout(
            state, now, f"no verdict after max_duration_s ({step.max_duration_s:g} s)"
        )
    return state, []


def _by(who: str) -> str:
    return f" by {who}" if who else ""


def _detail(detail: str) -> str:
    return f": {detail}" if detail else ""


_HANDLERS: dict[type[Event], Callable[[RolloutState, Any, float], Result]] = {
    StartRequested: _start,
    PauseRequested: _pause_requested,
    ResumeRequested: _resume,
    PromoteRequested: _promote_requested,
    AbortRequested: _abort,
    DriverFailed: _driver_failed,
    PromotionCompleted: _promotion_completed,
    RollbackCompleted: _rollback_completed,
    ApprovalGiven: _approval,
    CheckPassed: _check_passed,
    CheckFailed: _check_failed,
    DiffReported: _diff_reported,
    JudgeReported: _judge_reported,
    Tick: _tick,
}
