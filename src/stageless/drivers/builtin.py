"""The built-in proxy as a rollout driver, steered through the control plane.

Proxies that follow a proxy config on the control plane (``control_plane`` in their file) get
every new version of it over their stream within a second, and send their batches and diff
counts back as reports. So this driver needs no connection to any proxy:

- :meth:`BuiltinDriver.apply` edits the plan's service inside that proxy config (the split's
  weight, ``testers``, the shadow share) and stores the new version, only if something changed;
- :meth:`BuiltinDriver.promote` makes the candidate's addresses the service's stable ones;
- :meth:`BuiltinDriver.batches` and :meth:`BuiltinDriver.shadow_report` read the reports.

Every write names the rollout as its actor, so the audit log says who moved the traffic. The
store is synchronous (it is called from the API's worker threads too): each call runs in a
thread so the runner's event loop never waits on the disk.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import Callable
from typing import Any

from stageless.analysis.batch import Batch, TrafficClass, Version
from stageless.diff import CollectorState, NoiseFilter, make_report
from stageless.drivers.base import DriverError, ShadowReport
from stageless.errors import NotFoundError, StagelessError
from stageless.rollout.commands import Traffic
from stageless.rollout.plan import RolloutPlan
from stageless.service import Service
from stageless.service.errors import PreconditionFailedError
from stageless.service.flagsets import Precondition
from stageless.service.proxyconfigs import ProxyConfigService
from stageless.service.reports import ReportService

#: Attempts at a write that lost a race with another writer of the same proxy config.
WRITE_ATTEMPTS = 5


class BuiltinDriver:
    """Steers the plan's service inside a proxy config on this control plane.

    The proxy config is the plan's ``proxy_config`` (when the plan names one), else the one
    named like the service.
    """

    def __init__(
        self,
        plan: RolloutPlan,
        service: Service,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.configs: ProxyConfigService = service.proxy_configs
        self.reports: ReportService = service.reports
        self.config: str = getattr(plan, "proxy_config", None) or plan.service
        self.service = plan.service
        self.actor = f"rollout of {plan.service}"
        self.clock = clock
        self.shadow_since: float | None = None

    async def apply(self, traffic: Traffic) -> None:
        await asyncio.to_thread(self._edit, lambda entry: _apply(entry, traffic))
        if traffic.shadow > 0:
            if self.shadow_since is None:
                self.shadow_since = self.clock()
        else:
            self.shadow_since = None

    async def promote(self) -> None:
        await asyncio.to_thread(self._edit, _promote)
        self.shadow_since = None

    async def batches(self, since: float) -> list[Batch]:
        try:
            return await asyncio.to_thread(self.reports.batches, self.config, self.service, since)
        except StagelessError as exc:
            message = f"cannot read the reports of proxy config {self.config!r}: {exc}"
            raise DriverError(message) from exc

    async def shadow_report(self) -> ShadowReport:
        since = self.shadow_since
        if since is None:
            return ShadowReport(None, 0, 0)
        state = await asyncio.to_thread(self.reports.diff_since, self.config, since)
        prefix = f"{self.service} "
        own = CollectorState(
            {k: v for k, v in state.endpoints.items() if k.startswith(prefix)},
            state.untracked_requests,
        )
        copies = [
            b
            for b in await self.batches(since)
            if b.version is Version.CANDIDATE and b.traffic_class is TrafficClass.SHADOW
        ]
        return ShadowReport(
            make_report(own, 5, NoiseFilter()),
            sent=sum(b.requests for b in copies),
            failed=sum(b.errors for b in copies),
        )

    async def close(self) -> None:
        """Nothing to release: the proxies keep following the proxy config."""

    def _edit(self, change: Callable[[dict[str, Any]], None]) -> None:
        """Apply ``change`` to this service's entry and store a new version if it changed."""
        for _ in range(WRITE_ATTEMPTS):
            try:
                view = self.configs.view(self.config, secrets=True)
            except NotFoundError as exc:
                raise DriverError(f"proxy config {self.config!r} does not exist") from exc
            document = copy.deepcopy(view.document)
            entry = next(
                (s for s in document.get("services", []) if s.get("name") == self.service), None
            )
            if entry is None:
                raise DriverError(f"proxy config {self.config!r} has no service {self.service!r}")
            before = json.dumps(entry, sort_keys=True)
            change(entry)
            if json.dumps(entry, sort_keys=True) == before:
                return  # already so: nothing to write (apply is idempotent)
            try:
                self.configs.put(
                    self.config,
                    json.dumps(document),
                    precondition=Precondition(if_match=view.record.etag),
                    actor=self.actor,
                    message=f"rollout of {self.service}",
                )
            except PreconditionFailedError:
                continue  # another writer came first: read again and redo the change
            except StagelessError as exc:
                raise DriverError(f"cannot update proxy config {self.config!r}: {exc}") from exc
            return
        raise DriverError(
            f"proxy config {self.config!r} kept changing under the rollout; gave up after "
            f"{WRITE_ATTEMPTS} attempts"
        )


def _apply(entry: dict[str, Any], traffic: Traffic) -> None:
    split = entry.setdefault("split", {})
    split["weight"] = traffic.weight
    entry["testers"] = traffic.testers
    if traffic.shadow > 0:
        entry["shadow"] = {**entry.get("shadow", {}), "share": traffic.shadow}
    elif entry.get("shadow") is not None:
        entry["shadow"] = {**entry["shadow"], "share": 0}


def _promote(entry: dict[str, Any]) -> None:
    entry["stable"] = copy.deepcopy(entry["candidate"])
    _apply(entry, Traffic())


__all__ = ["BuiltinDriver"]
