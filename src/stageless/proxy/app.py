"""Running the proxy: one process, or a supervisor and N worker processes.

:class:`ProxyApp` runs everything on one event loop: the worker (listener, pools, shadowing),
the hub (merged statistics, batches, admin endpoints) and the signal handlers. It is what
``stageless proxy`` runs with ``workers: 1`` and what tests and the demo embed
(``await app.start()`` ... ``await app.stop()``).

With ``workers: N > 1``, :mod:`stageless.proxy.supervisor` starts N processes that each run a
worker and send their statistics to the supervisor's hub through a pipe.

Signals: SIGHUP reloads the configuration file (a file that does not validate is refused with
its errors in the log, and the running configuration stays); SIGTERM and SIGINT drain: stop
accepting, let in-flight requests finish for ``timeouts.shutdown_grace_s``, write the last
batches, exit.

Configuration from the control plane (a ``control_plane`` section in the file): ``serve``
gets the first configuration from a :class:`~stageless.proxy.remote.RemoteConfig` and passes it
as ``remote``; ``start`` attaches ``reload`` to it, so every pushed version is applied like a
SIGHUP reload, and ``stop`` stops following the control plane first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stageless.errors import ValidationError
from stageless.proxy import native
from stageless.proxy.config import ProxyConfig, load_config
from stageless.proxy.configdiff import diff_config, reload_problems
from stageless.proxy.hub import AdminServer, Hub, admin_server
from stageless.proxy.worker import Worker, listening_socket

if TYPE_CHECKING:
    from stageless.proxy.remote import RemoteConfig

log = logging.getLogger("stageless.proxy")

#: How often worker statistics are merged into the hub.
MERGE_S = 1.0


class ProxyApp:
    """The proxy in this process: one worker, the hub, the admin server."""

    def __init__(
        self,
        config: ProxyConfig,
        *,
        config_path: Path | None = None,
        remote: RemoteConfig | None = None,
    ) -> None:
        self.config = config
        self.config_path = config_path
        self.remote = remote  # the control plane this proxy follows, if any
        self.loop = asyncio.get_running_loop()
        self.worker = Worker(config, self.loop)
        self.hub = Hub(config, control_plane=remote.control_plane if remote else None)
        self.hub.status = self.status
        self.admin: AdminServer | None = None
        self.tasks: list[asyncio.Task[Any]] = []
        self.stopped = asyncio.Event()
        self.port = 0
        self.admin_port = 0

    async def start(self) -> None:
        host, port = self.config.listen_address()
        sock = listening_socket(host, port, reuse_port=False)
        self.port = sock.getsockname()[1]
        await self.worker.start(sock)
        if self.config.admin is not None:
            await self._start_admin()
        self.tasks.append(self.worker.spawn(self._merge_loop(), "proxy stats merge"))
        self.tasks.append(self.worker.spawn(self.hub.run_batches(), "proxy batches"))
        if self.remote is not None:
            self.remote.attach(self.reload)  # pushed versions from now on
        log.info("stageless proxy listening on %s:%d", host, self.port)

    async def _start_admin(self) -> None:
        host, port = self.config.admin_address()
        sock = listening_socket(host, port, reuse_port=False)
        self.admin_port = sock.getsockname()[1]
        self.admin = admin_server(self.hub.app())
        self.tasks.append(self.worker.spawn(self.admin.serve(sockets=[sock]), "proxy admin"))

    def merge(self) -> None:
        """Move the worker's statistics and diff counts into the hub now."""
        self.hub.absorb(self.worker.stats.snapshot_and_reset(), self.worker.take_diff())

    async def _merge_loop(self) -> None:
        while True:
            await asyncio.sleep(MERGE_S)
            self.merge()

    def install_signal_handlers(self) -> None:
        self.loop.add_signal_handler(signal.SIGHUP, self.reload_from_file)
        for sig in (signal.SIGTERM, signal.SIGINT):
            self.loop.add_signal_handler(sig, self._begin_stop)

    def _begin_stop(self) -> None:
        self.worker.spawn(self.stop(), "proxy stop")

    def reload_from_file(self) -> None:
        if self.config_path is None:
            log.warning("SIGHUP: no configuration file to reload")
            return
        config = read_for_reload(self.config_path, self.remote)
        if config is not None:
            self.reload(config)

    def reload(self, config: ProxyConfig) -> bool:
        """Apply ``config``; refuse (and keep the running one) if a restart-only field changed."""
        changes = accept_reload(self.config, config)
        if changes is None:
            return False
        self.config = config
        # What the worker counted so far was routed by the old split: into the hub before the
        # new one starts a step, or its users would count as the new step's new users.
        self.merge()
        self.worker.reload(config)
        self.hub.configure(config)
        log.info("configuration reloaded: %s", "; ".join(changes) or "no changes")
        return True

    def status(self) -> dict[str, Any]:
        worker = self.worker
        remote: dict[str, Any] = {}
        if self.remote is not None:
            remote["control_plane"] = self.remote.status()
        if self.hub.reporter is not None:
            remote["reports"] = self.hub.reporter.status()
        return {
            "hot_path": native.status(),
            **remote,
            "connections": len(worker.connections),
            "retries": worker.retries,
            "rejected": worker.rejected,
            "refused": worker.refused,
            "services": [
                {
                    "name": s.name,
                    "weight": s.split.weight,
                    "shadow_share": s.shadow.share if s.shadow else 0,
                    "upstreams": {
                        "stable": self._health(s.stable.endpoints),
                        "candidate": self._health(s.candidate.endpoints),
                    },
                }
                for s in self.config.services
            ],
        }

    def _health(self, addresses: tuple[tuple[str, int], ...]) -> dict[str, bool]:
        result = {}
        for address in addresses:
            health = self.worker.health.address(address)
            result[f"{address[0]}:{address[1]}"] = health is None or health.healthy
        return result

    async def stop(self) -> None:
        """Drain, write the last statistics, stop everything started."""
        if self.stopped.is_set():
            return
        if self.remote is not None:
            await self.remote.stop()  # no reload while draining
        self.hub.draining = True
        await self.worker.drain(self.config.timeouts.shutdown_grace_s)
        self.merge()
        with contextlib.suppress(Exception):
            await self.hub.flush_batches(self.loop, time.time())
        if self.admin is not None:
            self.admin.should_exit = True
        for task in self.tasks:
            if task.get_name() != "proxy admin":
                task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.hub.close()
        self.stopped.set()


def read_for_reload(path: Path, remote: RemoteConfig | None) -> ProxyConfig | None:
    """The configuration a SIGHUP asks for, or None (logged) when the file does not validate.

    With a control plane, the file names it and gives listen/admin/workers; the rest is the
    last pushed version, merged by ``remote``.
    """
    try:
        config = load_config(path)
    except ValidationError as exc:
        log.error("reload refused, keeping the running configuration:\n%s", exc)
        return None
    if remote is not None:
        return remote.reload_local(config)
    return config


def accept_reload(old: ProxyConfig, new: ProxyConfig) -> list[str] | None:
    """What changes from ``old`` to ``new``, or None (logged) when a restart-only field changed."""
    problems = reload_problems(old, new)
    if problems:
        log.error("reload refused, keeping the running configuration: %s", "; ".join(problems))
        return None
    return diff_config(old, new)


async def serve(config_path: Path) -> None:
    """``stageless proxy --config FILE`` with one worker: run until SIGTERM or SIGINT."""
    config = load_config(config_path)
    remote = None
    if config.control_plane is not None:
        from stageless.proxy.remote import RemoteConfig  # httpx only when it is needed

        remote = RemoteConfig(config)
        config = await remote.initial()
    app = ProxyApp(config, config_path=config_path, remote=remote)
    await app.start()
    app.install_signal_handlers()
    await app.stopped.wait()


__all__ = ["ProxyApp", "accept_reload", "read_for_reload", "serve"]
