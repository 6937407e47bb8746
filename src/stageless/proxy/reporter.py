"""Reports to the control plane: each interval's batches and diff counts, for the rollout judge.

A proxy that follows a proxy config on the control plane (``control_plane`` in its file) also
sends back what it measured: every batch interval, one ``POST
/api/v1/proxy-configs/{name}/reports`` with the interval's batches (the same JSON objects as the
batch file) and the shadow diff counts gathered since the last report (a mergeable
:class:`~stageless.diff.CollectorState`, as JSON). The control plane keeps them for the rollout
runner, which feeds the batches to the judge and the diff to the shadow gate.

A report that fails (control plane down, a 5xx) is kept and sent with the next one, so nothing
is lost by a short outage; beyond :data:`MAX_PENDING_BATCHES` the oldest batches are dropped
and counted (``dropped``): the proxy never grows without bound because the control plane is away.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

from stageless.analysis.batch import Batch
from stageless.diff import CollectorState, DiffCollector
from stageless.diff.wire import state_to_json
from stageless.proxy.config import ControlPlaneConfig

log = logging.getLogger("stageless.proxy")

#: Batches kept for the next report while the control plane does not take them.
MAX_PENDING_BATCHES = 20_000
#: Batches per request (a batch is about 1 to 25 KB of JSON with its latency samples).
BATCHES_PER_REQUEST = 32


class Reporter:
    """Sends batches and diff deltas to the control plane; one per proxy process with a hub."""

    def __init__(self, control_plane: ControlPlaneConfig, *, timeout_s: float = 5.0) -> None:
        self.url = (
            f"{control_plane.url.rstrip('/')}/api/v1/proxy-configs/{control_plane.config}/reports"
        )
        self.client = httpx.AsyncClient(
            headers={"Authorization": f"Bearer {control_plane.bearer}"}, timeout=timeout_s
        )
        self.pending: list[dict[str, Any]] = []
        self.diff = DiffCollector()
        self.sent = 0  # batches the control plane acknowledged
        self.failed = 0  # reports that failed (and were kept for the next one)
        self.dropped = 0  # batches dropped because too many were pending
        self.last_error: str | None = None

    def add_diff(self, state: CollectorState) -> None:
        """Diff counts gathered since the last report (merged until a report succeeds)."""
        self.diff.merge(state)

    async def report(self, batches: list[Batch]) -> bool:
        """Send ``batches`` and everything still pending; True when the control plane took them.

        A backlog (after an outage) goes in several requests of at most
        :data:`BATCHES_PER_REQUEST` batches, so no request grows past the control plane's body
        limit.
        """
        self.pending.extend(b.to_json() for b in batches)
        overflow = len(self.pending) - MAX_PENDING_BATCHES
        if overflow > 0:
            del self.pending[:overflow]
            self.dropped += overflow
        state = self.diff.take()
        while True:
            part = self.pending[:BATCHES_PER_REQUEST]
            body = {"batches": part, "diff": state_to_json(state)}
            try:
                response = await self.client.post(self.url, json=body)
            except httpx.HTTPError as exc:
                return self._keep(state, f"{type(exc).__name__}: {exc}")
            if response.status_code >= 500 or response.status_code == 429:
                return self._keep(state, f"HTTP {response.status_code}")
            if response.status_code >= 300:
                # Refused for good (a revoked token, a deleted config): keeping it would not help.
                log.error(
                    "the control plane refused this proxy's report (HTTP %d): %s",
                    response.status_code,
                    response.text[:300],
                )
                self.last_error = f"refused: HTTP {response.status_code}"
                self.dropped += len(part)
                del self.pending[: len(part)]
                return False
            self.sent += len(part)
            del self.pending[: len(part)]
            self.last_error = None
            state = CollectorState()  # the diff counts went with the first request
            if not self.pending:
                return True

    def _keep(self, state: CollectorState, error: str) -> bool:
        self.failed += 1
        self.diff.merge(state)
        if self.last_error is None:
            log.warning("cannot report to the control plane (%s); will retry", error)
        self.last_error = error
        return False

    def status(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "pending": len(self.pending),
            "failed": self.failed,
            "dropped": self.dropped,
            "last_error": self.last_error,
        }

    async def close(self) -> None:
        await self.client.aclose()


__all__ = ["BATCHES_PER_REQUEST", "MAX_PENDING_BATCHES", "Reporter"]
