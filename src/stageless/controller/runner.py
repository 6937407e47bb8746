"""The rollout runner: one :class:`Controller` per control-plane instance runs every unfinished
rollout whose lease it holds.

The controller (started and stopped with the app's lifespan) looks for unfinished rollouts every
``poll_s`` and runs each one whose lease it gets in its own task, a
:class:`~stageless.controller.run.RolloutRun` (the durable execution of one rollout's state
machine: see that module). A run that fails is tried again after a delay that doubles from one
poll interval up to ``MAX_RETRY_S``.

Leases: a run renews its rollout's lease every third of ``lease_s``; if it cannot (another
instance took the rollout), it stops without writing anything more. A graceful stop releases
the leases at once; after a crash they expire after ``lease_s``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import httpx

from stageless.clock import SYSTEM_CLOCK, Clock
from stageless.controller.notifier import RetryPolicy, WebhookNotifier
from stageless.controller.run import RolloutRun, wait_at_most
from stageless.drivers.base import Driver
from stageless.rollout.plan import RolloutPlan
from stageless.service.rollouts import (
    RolloutRecord,
    RolloutService,
)

__all__ = [
    "Controller",
    "DriverFactory",
    "RunnerOptions",
    "instance_id",
]

log = logging.getLogger("stageless.controller")

DriverFactory = Callable[[RolloutPlan], Driver]
"""Makes the driver of a plan (``driver: builtin`` -> the built-in proxy's driver). Raises
:class:`~stageless.drivers.base.DriverError` for a driver it cannot make."""
MAX_RETRY_S = 60.0
"""The longest wait before running a rollout again after its run failed."""


@dataclass(frozen=True, slots=True)
class RunnerOptions:
    """How often the runner acts, and with which keys and retries."""

    tick_s: float = 1.0
    """Seconds between ticks of a running rollout (timers, new batches, requests)."""
    poll_s: float = 1.0
    """Seconds between looks for rollouts this instance does not run yet."""
    lease_s: float = 15.0
    """How long a lease lasts without renewal (renewed every third of it)."""
    shadow_poll_s: float = 5.0
    """Seconds between reads of a shadow step's diff report."""
    webhook_secret: bytes | None = None
    """Signs webhook notifications and checks (``X-Stageless-Signature``)."""
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    """Retries of webhook notifications."""
    check_retry: RetryPolicy | None = None
    """Pacing of webhook checks (None: from 1 s up to 30 s between tries)."""


def instance_id() -> str:
    """This process's lease owner name: host, process id and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Controller:
    """Runs every unfinished rollout whose lease this instance holds."""

    def __init__(
        self,
        rollouts: RolloutService,
        driver_factory: DriverFactory,
        *,
        options: RunnerOptions | None = None,
        clock: Clock = SYSTEM_CLOCK,
        owner: str | None = None,
    ) -> None:
        self.rollouts = rollouts
        self.driver_factory = driver_factory
        self.options = options or RunnerOptions()
        self.clock = clock
        self.owner = owner or instance_id()
        self.runs: dict[str, RolloutRun] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._supervisor: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self._failures: dict[str, int] = {}
        self._retry_at: dict[str, float] = {}
        self._http: httpx.AsyncClient | None = None
        self.notifier: WebhookNotifier | None = None

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            raise RuntimeError("the controller is not started")
        return self._http

    async def start(self) -> None:
        """Start looking for rollouts to run (call from the running loop)."""
        self._wake = asyncio.Event()
        self._http = httpx.AsyncClient(timeout=10.0, follow_redirects=False)
        self.notifier = WebhookNotifier(
            self._http, secret=self.options.webhook_secret, retry=self.options.retry
        )
        self._supervisor = self.spawn(self._supervise(), name="rollout supervisor")

    def wake(self, rollout_id: str | None = None) -> None:
        """Act now rather than at the next poll: a rollout was started or asked something."""
        self._wake.set()
        run = self.runs.get(rollout_id) if rollout_id is not None else None
        if run is not None:
            run.wake.set()

    async def stop(self) -> None:
        """Stop every run (their leases released, the data plane left as it is)."""
        self._stopping = True
        while tasks := [t for t in self._tasks if not t.done()]:
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks)
        if self.notifier is not None:
            await self.notifier.close()
        if self._http is not None:
            await self._http.aclose()

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        """Start a task and keep a reference to it until it ends."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _supervise(self) -> None:
        while not self._stopping:
            try:
                records = await asyncio.to_thread(self.rollouts.unfinished)
                for record in records:
                    if record.id not in self.runs:
                        await self._try_run(record)
            except Exception:
                # The one broad boundary of the supervisor: a database hiccup must not end it.
                log.exception("looking for rollouts to run failed; trying again")
            self._wake.clear()
            await wait_at_most(self._wake, self.options.poll_s)

    async def _try_run(self, record: RolloutRecord) -> None:
        if self._stopping or self._retry_at.get(record.id, 0.0) > self.clock.now():
            return
        lease = self.options.lease_s
        if not await asyncio.to_thread(self.rollouts.acquire, record.id, self.owner, ttl_s=lease):
            return
        run = RolloutRun(self, record.id)
        self.runs[record.id] = run
        task = self.spawn(run.run(), name=f"rollout {record.id}")
        task.add_done_callback(lambda _task: self._ended(run))

    def _ended(self, run: RolloutRun) -> None:
        """Forget a run; after a failed one, wait before trying that rollout again (doubling
        from one poll interval up to ``MAX_RETRY_S``)."""
        self.runs.pop(run.rollout_id, None)
        if not run.failed:
            self._failures.pop(run.rollout_id, None)
            self._retry_at.pop(run.rollout_id, None)
            return
        failures = self._failures.get(run.rollout_id, 0) + 1
        self._failures[run.rollout_id] = failures
        delay = min(MAX_RETRY_S, self.options.poll_s * 2 ** (failures - 1))
        self._retry_at[run.rollout_id] = self.clock.now() + delay
