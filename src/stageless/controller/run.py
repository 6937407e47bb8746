"""One rollout's state machine, executed durably while this instance holds its lease.

A :class:`RolloutRun` (started by :class:`~stageless.controller.runner.Controller`) feeds the
machine (``stageless.rollout.machine``) with events: the requests people recorded (pause,
resume, promote, abort, approve), the judge's verdicts on the batches the driver reports, the
shadow diff, webhook check answers, the driver's own answers, and a ``Tick`` every ``tick_s``.
Each transition is recorded (state, history row, handled requests, audit entry) *before* its
commands are carried out, and the batches the judge consumed are recorded before the verdict
they led to, so a crash at any point loses nothing the rollout decided on.

After a restart (or when another instance takes a rollout over, once its holder stopped renewing
the lease) a run starts from the recorded state: it re-applies the current traffic (drivers are
idempotent), re-sends a promotion or a rollback that was in progress, rebuilds the current
canary step's judge by replaying its recorded evidence, and asks a pending webhook check again.
Timers continue from the recorded step start, so a restart does not reset them.

Leases: a run renews its rollout's lease every third of ``lease_s``; if it cannot (another
instance took the rollout), it stops without writing anything more.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from stageless.analysis.batch import Batch, TrafficClass
from stageless.analysis.config import JudgeConfig
from stageless.controller.checks import CheckOutcome, run_check
from stageless.drivers.base import Driver, DriverError
from stageless.errors import StagelessError
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
from stageless.rollout.machine import RolloutState, describe_step, transition
from stageless.rollout.phases import Phase
from stageless.rollout.plan import RolloutPlan, TestersStep
from stageless.service.rollouts import (
    LeaseLostError,
    RolloutAction,
    RolloutRequest,
    RolloutView,
)
from stageless.service.rolloutstate import to_json

if TYPE_CHECKING:
    from stageless.analysis.judge import SequentialJudge
    from stageless.controller.runner import Controller

__all__ = ["CONTROLLER_ACTOR", "RolloutRun", "new_judge", "wait_at_most"]

log = logging.getLogger("stageless.controller")

CONTROLLER_ACTOR = "stageless-controller"
"""The audit actor of transitions no person asked for (timers, verdicts, the driver)."""
TRANSITION_EVENT = "rollout.transition"
_TRAFFIC_COMMANDS = (SetWeight, EnableTesters, StartShadow, StopShadow)


def new_judge(config: JudgeConfig) -> SequentialJudge:
    """A fresh sequential judge (imported on first use: NumPy stays out of a start-up that
    runs no canary)."""
    from stageless.analysis.judge import SequentialJudge

    return SequentialJudge(config)


@dataclass
class _JudgeRun:
    """The canary step's judge and what it has consumed (to skip batches seen already)."""

    step: int
    judge: SequentialJudge
    cursor: float
    seen: set[str] = field(default_factory=set)  # keys of the batches at ``cursor``
    reported: bool = False
    evidence: int = 0

    def fresh(self, batches: list[Batch], service: str) -> list[Batch]:
        """The batches not consumed yet, of ``service``'s users, in order."""
        new: list[Batch] = []
        for batch in batches:
            if batch.ts < self.cursor or batch.service != service:
                continue
            if batch.traffic_class is not TrafficClass.USER:
                continue
            key = json.dumps(batch.to_json(), sort_keys=True)
            if batch.ts == self.cursor and key in self.seen:
                continue
            if batch.ts > self.cursor:
                self.cursor, self.seen = batch.ts, set()
            self.seen.add(key)
            new.append(batch)
        return new


class RolloutRun:
    """One rollout, run by this instance while it holds the lease."""

    def __init__(self, controller: Controller, rollout_id: str) -> None:
        self.controller = controller
        self.rollout_id = rollout_id
        self.rollouts = controller.rollouts
        self.options = controller.options
        self.clock = controller.clock
        self.owner = controller.owner
        self.wake = asyncio.Event()
        self.state: RolloutState | None = None
        self.driver: Driver | None = None
        self.judge: _JudgeRun | None = None
        self.checks: asyncio.Queue[tuple[int, CheckOutcome]] = asyncio.Queue()
        self.failed = False
        self.deferred: list[Event] = []  # the driver's answers to commands re-sent in place
        self._renewed = 0.0
        self._shadow_read = 0.0

    @property
    def plan(self) -> RolloutPlan:
        assert self.state is not None  # noqa: S101 - set by run() before anything else
        return self.state.plan

    async def run(self) -> None:
        """Run until the rollout ends, the lease is lost or the task is cancelled."""
        finished = False
        try:
            view = await asyncio.to_thread(self.rollouts.get, self.rollout_id)
            self.state = view.state
            self._renewed = self.clock.now()
            if not await self._open_driver(view):
                return
            await self._resume(view)
            while self.state is not None and not self.state.phase.terminal:
                await self._renew()
                await self._step()
                if self.state.phase.terminal:
                    break
                self.wake.clear()
                await wait_at_most(self.wake, self.options.tick_s)
            finished = True
        except LeaseLostError as exc:
            log.warning("rollout %s: stopped running it: %s", self.rollout_id, exc)
            finished = True  # nothing to release: the lease is someone else's
        except asyncio.CancelledError:
            raise
        except Exception:
            # The one broad boundary of a run: log it; the lease is released below, so this or
            # another instance picks the rollout up again from its recorded state (this one
            # after a growing pause).
            self.failed = True
            log.exception("rollout %s: the run failed", self.rollout_id)
        finally:
            await self._close(release=not finished)

    async def _close(self, *, release: bool) -> None:
        if self.driver is not None:
            with contextlib.suppress(Exception):
                await self.driver.close()
        if release:
            with contextlib.suppress(Exception):
                await asyncio.shield(
                    asyncio.to_thread(self.rollouts.release, self.rollout_id, self.owner)
                )

    async def _open_driver(self, view: RolloutView) -> bool:
        """Make the plan's driver. A rollout that has not started yet is aborted without one;
        one that is under way is left to try again (its traffic stays as the data plane has it)."""
        try:
            self.driver = self.controller.driver_factory(view.plan)
        except (DriverError, StagelessError, OSError) as exc:
            if view.state.phase is not Phase.PENDING:
                raise
            log.error("rollout %s: no driver: %s", self.rollout_id, exc)
            await self._handle(
                AbortRequested(CONTROLLER_ACTOR, f"no driver for {view.plan.driver!r}: {exc}")
            )
            return False
        return True

    # --- resuming --------------------------------------------------------------------------

    async def _resume(self, view: RolloutView) -> None:
        state = view.state
        if state.phase is Phase.PENDING:
            await self._handle(StartRequested(view.record.created_by), actor=view.record.created_by)
            return
        log.info("rollout %s: resuming %s at step %d", self.rollout_id, state.phase, state.step + 1)
        if state.running is Phase.CANARY:
            await self._rebuild_judge(state)
        if state.phase is Phase.ROLLING_BACK:
            follow = await self._carry_out([RollBack()])
        elif state.phase is Phase.PROMOTING:
            follow = await self._carry_out([SetWeight(state.traffic.weight), Promote()])
        else:
            failure = await self._apply(state.traffic)
            follow = [] if failure is None else [failure]
        for event in follow:
            await self._handle(event)
        resumed = self.state
        assert resumed is not None  # noqa: S101
        step = resumed.current
        if (
            resumed.phase is Phase.TESTING
            and isinstance(step, TestersStep)
            and step.webhook is not None
            and not resumed.passed
        ):
            self._start_check(RunCheck(resumed.step, step.webhook.url, step.webhook.timeout_s))

    async def _rebuild_judge(self, state: RolloutState) -> None:
        config = self.plan.judge_configs[state.step]
        started = state.step_started_at if state.step_started_at is not None else 0.0
        self.judge = _JudgeRun(state.step, new_judge(config), started)
        evidence = await asyncio.to_thread(self.rollouts.evidence, self.rollout_id, state.step)
        replayed = self.judge.fresh(evidence, self.plan.service)
        for batch in replayed:
            self.judge.judge.observe(batch)
        self.judge.evidence = len(evidence)
        # A final verdict found again is reported again: it was recorded before its transition,
        # and the transition may not have been.
        log.info(
            "rollout %s: judge of step %d rebuilt from %d batches (%s)",
            self.rollout_id,
            state.step + 1,
            len(evidence),
            self.judge.judge.verdict(),
        )

    # --- one tick --------------------------------------------------------------------------

    async def _renew(self) -> None:
        now = self.clock.now()
        if now - self._renewed < self.options.lease_s / 3:
            return
        held = await asyncio.to_thread(
            self.rollouts.acquire, self.rollout_id, self.owner, ttl_s=self.options.lease_s
        )
        if not held:
            raise LeaseLostError(f"another instance holds rollout {self.rollout_id!r} now")
        self._renewed = now

    async def _step(self) -> None:
        deferred, self.deferred = self.deferred, []
        for event in deferred:
            await self._handle(event)
        for request in await asyncio.to_thread(self.rollouts.pending, self.rollout_id):
            await self._handle(_event_of(request), actor=request.actor, handled=(request.id,))
        while not self.checks.empty():
            step, outcome = self.checks.get_nowait()
            if outcome.passed is True:
                await self._handle(CheckPassed(step, outcome.detail))
            elif outcome.passed is False:
                await self._handle(CheckFailed(step, outcome.detail))
            else:
                log.warning("rollout %s: %s", self.rollout_id, outcome.detail)
        await self._judge()
        await self._shadow()
        await self._handle(Tick())

    async def _judge(self) -> None:
        run, state, driver = self.judge, self.state, self.driver
        if run is None or state is None or driver is None or state.step != run.step:
            return
        try:
            batches = await driver.batches(run.cursor)
        except DriverError as exc:
            log.warning("rollout %s: reading batches failed: %s", self.rollout_id, exc)
            return
        fresh = run.fresh(batches, self.plan.service)
        if not fresh and (run.reported or not run.judge.verdict().final):
            return
        for batch in fresh:
            run.judge.observe(batch)
        decision = run.judge.decision()
        if fresh:
            run.evidence = await asyncio.to_thread(
                self.rollouts.save_evidence,
                self.rollout_id,
                run.step,
                fresh,
                decision,
                owner=self.owner,
            )
        if decision.verdict.final and not run.reported:
            run.reported = True
            await self._handle(JudgeReported.from_decision(run.step, decision))

    async def _shadow(self) -> None:
        state, driver = self.state, self.driver
        if state is None or driver is None or state.running is not Phase.SHADOWING:
            return
        now = self.clock.now()
        if now - self._shadow_read < self.options.shadow_poll_s:
            return
        self._shadow_read = now
        try:
            report = await driver.shadow_report()
        except DriverError as exc:
            log.warning("rollout %s: reading the shadow report failed: %s", self.rollout_id, exc)
            return
        if report.report is None:
            summary = DiffSummary(0, (), report.sent, report.failed)
        else:
            summary = DiffSummary.from_report(
                report.report, candidate_requests=report.sent, candidate_errors=report.failed
            )
        if summary != state.diff:
            await self._handle(DiffReported(state.step, summary))

    # --- transitions and commands --------------------------------------------------------------

    async def _handle(
        self, event: Event, *, actor: str = CONTROLLER_ACTOR, handled: tuple[int, ...] = ()
    ) -> None:
        """Run ``event`` and the events its commands lead to through the machine, recording
        each transition before carrying out its commands."""
        queue: deque[tuple[Event, str, tuple[int, ...]]] = deque([(event, actor, handled)])
        while queue:
            event, actor, handled = queue.popleft()
            before = self.state
            assert before is not None  # noqa: S101 - set before any event is handled
            after, commands = transition(before, event, self.clock.now())
            changed = after != before
            if changed or handled:
                notes = [c.message for c in commands if isinstance(c, Log)]
                await asyncio.to_thread(
                    self.rollouts.save_transition,
                    self.rollout_id,
                    before,
                    after,
                    event,
                    commands,
                    owner=self.owner,
                    actor=actor,
                    handled=handled,
                    reason=None if changed or not notes else "; ".join(notes),
                )
                self.state = after
            follow = await self._carry_out(commands)
            if changed:
                queue.extend((event, CONTROLLER_ACTOR, ()) for event in follow)
            else:  # commands re-sent in place (a rollback after a driver failure): next tick
                self.deferred.extend(follow)

    async def _carry_out(self, commands: list[Command]) -> list[Event]:
        """Carry out ``commands`` in order; the events they produce (the driver's answers)."""
        state = self.state
        assert state is not None  # noqa: S101
        follow: list[Event] = []
        _log_commands(self.rollout_id, commands)
        for command in commands:
            if isinstance(command, StartJudge):
                self.judge = _JudgeRun(command.step, new_judge(command.config), self.clock.now())
            elif isinstance(command, StopJudge):
                self.judge = None
            elif isinstance(command, RunCheck):
                self._start_check(command)
            elif isinstance(command, StartShadow):
                self._shadow_read = self.clock.now()  # the first read after one poll interval
            elif isinstance(command, Notify):
                self._notify(command, state)
        if any(isinstance(c, RollBack) for c in commands):
            failure = await self._apply(Traffic())
            follow.append(failure or RollbackCompleted())
        elif any(isinstance(c, _TRAFFIC_COMMANDS) for c in commands):
            failure = await self._apply(state.traffic)
            if failure is not None:
                return [failure]
        if any(isinstance(c, Promote) for c in commands):
            follow.append(await self._promote())
        return follow

    async def _apply(self, traffic: Traffic) -> DriverFailed | None:
        assert self.driver is not None  # noqa: S101
        try:
            await self.driver.apply(traffic)
        except DriverError as exc:
            log.error("rollout %s: the driver failed: %s", self.rollout_id, exc)
            return DriverFailed(str(exc))
        return None

    async def _promote(self) -> Event:
        assert self.driver is not None  # noqa: S101
        try:
            await self.driver.promote()
        except DriverError as exc:
            log.error("rollout %s: promoting failed: %s", self.rollout_id, exc)
            return DriverFailed(str(exc))
        return PromotionCompleted()

    def _start_check(self, command: RunCheck) -> None:
        payload = {
            "rollout": self.rollout_id,
            "service": self.plan.service,
            "step": command.step,
            "candidate": list(self.plan.candidate.addresses),
            "stable": list(self.plan.stable.addresses),
        }

        async def check() -> None:
            outcome = await run_check(
                self.controller.http,
                command.url,
                payload,
                secret=self.options.webhook_secret,
                timeout_s=command.timeout_s,
                retry=self.options.check_retry,
            )
            await self.checks.put((command.step, outcome))
            self.wake.set()

        self.controller.spawn(check(), name=f"rollout {self.rollout_id} check")

    def _notify(self, command: Notify, state: RolloutState) -> None:
        notifier = self.controller.notifier
        urls = [hook.url for hook in self.plan.webhooks]
        if notifier is None or not urls:
            return
        payload = {
            "event": TRANSITION_EVENT,
            "rollout": self.rollout_id,
            "service": self.plan.service,
            "from": str(command.previous),
            "to": str(command.phase),
            "step": command.step,
            "step_kind": describe_step(self.plan.steps[command.step]),
            "reason": command.reason,
            "traffic": to_json(state.traffic),
            "at": self.clock.now(),
        }
        notifier.notify(urls, payload, event=TRANSITION_EVENT)


def _event_of(request: RolloutRequest) -> Event:
    action, by = request.action, request.actor
    if action is RolloutAction.PAUSE:
        return PauseRequested(by)
    if action is RolloutAction.RESUME:
        return ResumeRequested(by)
    if action is RolloutAction.PROMOTE:
        return PromoteRequested(by)
    if action is RolloutAction.ABORT:
        return AbortRequested(by, request.reason)
    return ApprovalGiven(request.step if request.step is not None else -1, by)


def _log_commands(rollout_id: str, commands: list[Command]) -> None:
    for command in commands:
        if isinstance(command, Log):
            level = {"info": logging.INFO, "warning": logging.WARNING}.get(
                command.level, logging.ERROR
            )
            log.log(level, "rollout %s: %s", rollout_id, command.message)


async def wait_at_most(event: asyncio.Event, timeout_s: float) -> None:
    """Wait for ``event`` at most ``timeout_s``. (``asyncio.timeout``, not ``wait_for``: on
    Python 3.11 ``wait_for`` swallows a cancellation that arrives as the event is set.)"""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):
            await event.wait()
