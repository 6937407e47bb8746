"""The Kubernetes Gateway API as a rollout driver: HTTPRoute manifests, metrics from Prometheus.

:func:`render_httproute` builds a ``gateway.networking.k8s.io/v1`` HTTPRoute for the plan's
service (the plan's ``gateway`` settings) giving the candidate a :class:`~stageless.rollout.
commands.Traffic`:

- one rule with two weighted ``backendRefs``: stable ``100000 - w`` and the candidate ``w``, the
  weight in units of 0.001 % (the plan's resolution; a backendRef's weight may be 0 to 1,000,000);
- with tester routing on, a rule before it that sends requests whose ``x-stageless-route``
  header is exactly one of the tokens valid now to the candidate (the Gateway API matches
  headers, not cookies, and cannot check a token's HMAC: the driver lists the valid tokens;
  :mod:`stageless.drivers.testers`). A rule with a header match wins over one without;
- with a shadow share, a ``RequestMirror`` filter on the weighted rule copying ``percent`` of
  requests (or a ``fraction`` for a share that is not a whole percent) to the candidate.

The Gateway API's standard channel has no sticky sessions (``sessionPersistence`` is
experimental), so the split is per request unless the implementation adds stickiness.

:class:`GatewayDriver` writes the manifest (YAML) to the settings' ``output`` (a file, replaced
whole, or standard output) and, when ``kubectl`` is on, applies it with ``kubectl apply -f -``;
nothing needs a cluster otherwise. Its batches come from Prometheus through
:class:`~stageless.metrics.prometheus.PrometheusSource` (the PromQL templates of
``gateway.metrics``). Mirrored responses are discarded by the data plane, so its shadow report
has no diff and no counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from stageless.analysis.batch import Batch
from stageless.drivers.base import DriverError, ShadowReport
from stageless.drivers.tally import DEFAULT_ROUTE
from stageless.drivers.testers import current_tokens
from stageless.metrics.prometheus import PrometheusConfig, PrometheusSource, PromQLTemplates
from stageless.metrics.source import SourceError
from stageless.rollout.commands import Traffic
from stageless.rollout.dataplanes import BackendRef, GatewaySettings
from stageless.rollout.plan import RolloutPlan

__all__ = [
    "API_VERSION",
    "ROUTE_HEADER",
    "WEIGHT_UNITS",
    "GatewayDriver",
    "backend_ref",
    "dump_manifest",
    "render_httproute",
]

API_VERSION = "gateway.networking.k8s.io/v1"
ROUTE_HEADER = "x-stageless-route"
WEIGHT_UNITS = 100_000
"""The two backendRefs' weights add up to this: 0.001 % per unit."""
KUBECTL_TIMEOUT_S = 60.0
HISTORY = 20_000


def _settings(plan: RolloutPlan) -> GatewaySettings:
    if plan.gateway is None:
        raise DriverError(f"the plan for {plan.service!r} has no gateway settings")
    return plan.gateway


def backend_ref(
    configured: BackendRef | None, addresses: tuple[str, ...], where: str
) -> dict[str, Any]:
    """The backendRef of a version: the configured Service, else ``name:port`` of its first
    address (which must then be a Service name)."""
    if configured is not None:
        ref: dict[str, Any] = {"name": configured.name, "port": configured.port}
        if configured.namespace:
            ref["namespace"] = configured.namespace
        return ref
    host, _, port = addresses[0].rpartition(":")
    if not host or host[0].isdigit() or host.startswith("[") or host.lower() != host:
        raise DriverError(
            f"gateway.{where}: the address {addresses[0]!r} is not a Kubernetes Service "
            f"name:port; set gateway.{where} to the Service"
        )
    return {"name": host, "port": int(port)}


def render_httproute(
    plan: RolloutPlan,
    traffic: Traffic,
    tokens: tuple[str, ...] = (),
    *,
    promoted: bool = False,
) -> dict[str, Any]:
    """The HTTPRoute giving the candidate ``traffic`` (``promoted``: every user on it)."""
    settings = _settings(plan)
    stable = backend_ref(settings.stable_backend, plan.stable.addresses, "stable_backend")
    candidate = backend_ref(
        settings.candidate_backend, plan.candidate.addresses, "candidate_backend"
    )
    weight = 100.0 if promoted else traffic.weight
    units = min(max(round(weight * 1000), 0), WEIGHT_UNITS)
    main: dict[str, Any] = {
        "backendRefs": [
            {**stable, "weight": WEIGHT_UNITS - units},
            {**candidate, "weight": units},
        ]
    }
    if traffic.shadow > 0 and not promoted:
        mirror: dict[str, Any] = {"backendRef": dict(candidate)}
        if float(traffic.shadow).is_integer():
            mirror["percent"] = int(traffic.shadow)
        else:
            mirror["fraction"] = {
                "numerator": round(traffic.shadow * 1000),
                "denominator": WEIGHT_UNITS,
            }
        main["filters"] = [{"type": "RequestMirror", "requestMirror": mirror}]
    rules: list[dict[str, Any]] = []
    if traffic.testers and tokens and not promoted:
        rules.append(
            {
                "matches": [
                    {"headers": [{"type": "Exact", "name": ROUTE_HEADER, "value": token}]}
                    for token in tokens
                ],
                "backendRefs": [dict(candidate)],
            }
        )
    rules.append(main)
    metadata: dict[str, Any] = {
        "name": settings.route_name or plan.service,
        "labels": {"app.kubernetes.io/managed-by": "stageless"},
        "annotations": {
            "stageless.dev/service": plan.service,
            "stageless.dev/candidate-weight": f"{weight:g}",
            "stageless.dev/testers": "on" if traffic.testers and not promoted else "off",
            "stageless.dev/shadow": f"{0 if promoted else traffic.shadow:g}",
        },
    }
    if settings.namespace:
        metadata["namespace"] = settings.namespace
    spec: dict[str, Any] = {"parentRefs": [_parent(p) for p in settings.parent_refs]}
    if settings.hostnames:
        spec["hostnames"] = list(settings.hostnames)
    spec["rules"] = rules
    return {"apiVersion": API_VERSION, "kind": "HTTPRoute", "metadata": metadata, "spec": spec}


def _parent(ref: Any) -> dict[str, Any]:
    parent: dict[str, Any] = {"name": ref.name}
    if ref.namespace:
        parent["namespace"] = ref.namespace
    if ref.section_name:
        parent["sectionName"] = ref.section_name
    return parent


def dump_manifest(manifest: Mapping[str, Any]) -> str:
    """The manifest as a YAML document (keys in the order written, starting with ``---``)."""
    return "---\n" + yaml.safe_dump(dict(manifest), sort_keys=False, default_flow_style=False)


class GatewayDriver:
    """Steers one service through an HTTPRoute; reads its batches from Prometheus."""

    def __init__(
        self,
        plan: RolloutPlan,
        *,
        clock: Callable[[], float] = time.time,
        environ: Mapping[str, str] | None = None,
        source: PrometheusSource | None = None,
    ) -> None:
        self.plan = plan
        self.settings = _settings(plan)
        self.clock = clock
        self.environ = environ
        metrics = self.settings.metrics
        defaults = PromQLTemplates()
        self.source = source or PrometheusSource(
            PrometheusConfig(
                url=metrics.url,
                templates=PromQLTemplates(
                    requests=metrics.requests or defaults.requests,
                    errors=metrics.errors or defaults.errors,
                    client_errors=metrics.client_errors,
                    latency_buckets=metrics.latency_buckets or defaults.latency_buckets,
                ),
                canary_version=metrics.candidate_version,
                baseline_version=metrics.stable_version,
                interval_s=metrics.interval_s,
            )
        )
        self.traffic: Traffic | None = None
        self.promoted = False
        self.written: str | None = None
        self.fetched: list[Batch] = []
        self.fetched_until: float | None = None
        self.lock = asyncio.Lock()

    async def apply(self, traffic: Traffic) -> None:
        async with self.lock:
            self.traffic, self.promoted = traffic, False
            await asyncio.to_thread(self._publish)

    async def promote(self) -> None:
        async with self.lock:
            self.traffic, self.promoted = Traffic(), True
            await asyncio.to_thread(self._publish)

    async def batches(self, since: float) -> list[Batch]:
        async with self.lock:
            if self.traffic is not None and self.traffic.testers:
                await asyncio.to_thread(self._publish)  # expired tokens out, new ones in
            await asyncio.to_thread(self._fetch, since)
        return [b for b in self.fetched if b.ts >= since]

    async def shadow_report(self) -> ShadowReport:
        """The data plane discards mirrored answers: no diff, no counts."""
        return ShadowReport(None, 0, 0)

    async def close(self) -> None:
        await asyncio.to_thread(self.source.close)

    def manifest(self) -> dict[str, Any]:
        """The HTTPRoute for the current traffic (tokens read now)."""
        traffic = self.traffic or Traffic()
        tokens: tuple[str, ...] = ()
        if traffic.testers and self.settings.testers is not None:
            tokens = current_tokens(
                self.settings.testers, self.plan.service, self.clock(), self.environ
            )
        return render_httproute(self.plan, traffic, tokens, promoted=self.promoted)

    # --- blocking parts, run in a thread -------------------------------------------------------

    def _publish(self) -> None:
        text = dump_manifest(self.manifest())
        if text == self.written:
            return
        if self.settings.output == "-":
            sys.stdout.write(text)
            sys.stdout.flush()
        else:
            _replace(Path(self.settings.output), text)
        if self.settings.kubectl:
            self._kubectl_apply(text)
        self.written = text
        share = 1.0 if self.promoted else (self.traffic or Traffic()).weight / 100
        self.source.set_canary_share(share)

    def _kubectl_apply(self, text: str) -> None:
        kubectl = shutil.which("kubectl")
        if kubectl is None:
            raise DriverError("gateway.kubectl is on, but kubectl is not on PATH")
        command = [kubectl, "apply", "-f", "-"]
        if self.settings.kubectl_context:
            command += ["--context", self.settings.kubectl_context]
        try:
            done = subprocess.run(  # noqa: S603 - kubectl from PATH, no shell
                command,
                input=text,
                capture_output=True,
                text=True,
                timeout=KUBECTL_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise DriverError(f"kubectl apply failed: {exc}") from exc
        if done.returncode != 0:
            raise DriverError(f"kubectl apply failed: {(done.stderr or done.stdout).strip()}")

    def _fetch(self, since: float) -> None:
        """Query the whole intervals since the last query (or ``since``) up to now."""
        start = since if self.fetched_until is None else max(self.fetched_until, since)
        now = self.clock()
        step = self.settings.metrics.interval_s
        if now - start < step:
            return
        try:
            found = self.source.fetch_batches(self.plan.service, DEFAULT_ROUTE, start, now)
        except SourceError as exc:
            raise DriverError(f"metrics for {self.plan.service!r}: {exc}") from exc
        whole = int((now - start) // step)
        self.fetched_until = start + whole * step
        self.fetched = [*self.fetched, *found][-HISTORY:]


def _replace(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (a reader sees the old file or the new one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, staged = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(staged, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(staged)
        raise DriverError(f"gateway.output: cannot write {path}: {exc}") from exc
