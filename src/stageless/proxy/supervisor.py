"""Several worker processes behind one address (``workers: N``), supervised by one process.

The supervisor binds the listening address once (``SO_REUSEPORT``, not listening itself, so it
only reserves the port), starts N worker processes that bind the same address and listen, and
runs the hub: the admin endpoints and the batch file. Every second each worker sends its
statistics and diff counts through its pipe. SIGHUP reloads the file and sends the validated
configuration to every worker; SIGTERM/SIGINT tell them to drain and wait for them. A worker
that dies is started again.

With a ``control_plane`` section the supervisor follows the control plane
(:class:`~stageless.proxy.remote.RemoteConfig`): the first configuration comes from it (or its
cache) before any worker starts, and each pushed version goes through :meth:`Supervisor.apply`,
as a SIGHUP reload does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import signal
import socket
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stageless.proxy import native
from stageless.proxy.app import accept_reload, read_for_reload
from stageless.proxy.config import ProxyConfig
from stageless.proxy.hub import Hub, admin_server
from stageless.proxy.worker import Worker, listening_socket, tune_collector

if TYPE_CHECKING:
    from stageless.proxy.remote import RemoteConfig

log = logging.getLogger("stageless.proxy")

MERGE_S = 1.0


def _reserve(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


class Supervisor:
    def __init__(self, config: ProxyConfig, config_path: Path) -> None:
        self.config = config
        self.config_path = config_path
        self.context = multiprocessing.get_context("spawn")
        self.processes: list[Any] = []
        self.pipes: list[Connection] = []
        self.hub = Hub(config)
        self.hub.status = self.status
        self.stopping = False
        self.done = asyncio.Event()
        self.port = 0
        self.remote: RemoteConfig | None = None

    async def _follow_control_plane(self) -> None:
        """With ``control_plane``: take the first configuration from it (or its cache)."""
        from stageless.proxy.remote import RemoteConfig  # httpx only when it is needed

        self.remote = RemoteConfig(self.config)
        self.config = await self.remote.initial()
        self.hub = Hub(self.config, control_plane=self.remote.control_plane)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        if self.config.control_plane is not None:
            await self._follow_control_plane()
        host, port = self.config.listen_address()
        reserved = _reserve(host, port)
        self.port = reserved.getsockname()[1]
        for index in range(self.config.workers):
            self._start_worker(index)
        admin = None
        if self.config.admin is not None:
            ahost, aport = self.config.admin_address()
            sock = listening_socket(ahost, aport, reuse_port=False)
            admin = admin_server(self.hub.app())
            admin_task = loop.create_task(admin.serve(sockets=[sock]))
        batches = loop.create_task(self.hub.run_batches())
        watch = loop.create_task(self._watch())
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: loop.create_task(self.stop()))
        if self.remote is not None:
            self.remote.attach(self.apply)  # pushed versions from now on
        log.info(
            "stageless proxy listening on %s:%d with %d workers", host, self.port, len(self.pipes)
        )
        await self.done.wait()
        batches.cancel()
        watch.cancel()
        await self.hub.flush_batches(loop, time.time())
        if admin is not None:
            admin.should_exit = True
            await admin_task
        await self.hub.close()
        reserved.close()

    def status(self) -> dict[str, Any]:
        """What /status shows with several workers: the workers and the configured services
        (connections and upstream health live in the workers and are not merged)."""
        return {
            "hot_path": native.status(),  # the workers are this Python, these sources, this build
            "workers": [
                {"pid": p.pid, "alive": p.is_alive(), "exitcode": p.exitcode}
                for p in self.processes
            ],
            "services": [
                {
                    "name": s.name,
                    "weight": s.split.weight,
                    "shadow_share": s.shadow.share if s.shadow else 0,
                    "testers": s.testers,
                }
                for s in self.config.services
            ],
        }

    def _start_worker(self, index: int) -> None:
        parent, child = self.context.Pipe()
        process = self.context.Process(
            target=worker_main,
            args=(self.config, self.port, child),
            name=f"stageless-proxy-worker-{index}",
        )
        process.start()
        child.close()
        loop = asyncio.get_running_loop()
        loop.add_reader(parent.fileno(), self._receive, parent)
        if index < len(self.processes):
            self.processes[index] = process
            self.pipes[index] = parent
        else:
            self.processes.append(process)
            self.pipes.append(parent)

    def _receive(self, pipe: Connection) -> None:
        try:
            message = pipe.recv()
        except (EOFError, OSError):
            asyncio.get_running_loop().remove_reader(pipe.fileno())
            return
        kind, snapshot, diff = message
        if kind == "stats":
            self.hub.absorb(snapshot, diff)

    async def _watch(self) -> None:
        while not self.stopping:
            await asyncio.sleep(0.5)
            for index, process in enumerate(self.processes):
                if not process.is_alive() and not self.stopping:
                    log.error(
                        "worker %d exited with %s; starting it again", index, process.exitcode
                    )
                    with contextlib.suppress(OSError, ValueError):
                        asyncio.get_running_loop().remove_reader(self.pipes[index].fileno())
                    self._start_worker(index)

    def reload(self) -> None:
        config = read_for_reload(self.config_path, self.remote)
        if config is not None:
            self.apply(config)

    def apply(self, config: ProxyConfig) -> bool:
        """Send ``config`` to every worker; refuse (keep the running one) if a restart-only
        field changed."""
        changes = accept_reload(self.config, config)
        if changes is None:
            return False
        self.config = config
        self.hub.configure(config)
        for pipe in self.pipes:
            with contextlib.suppress(OSError):
                pipe.send(("reload", config))
        log.info("configuration reloaded: %s", "; ".join(changes) or "no changes")
        return True

    async def stop(self) -> None:
        if self.stopping:
            return
        self.stopping = True
        if self.remote is not None:
            await self.remote.stop()  # no reload while draining
        self.hub.draining = True
        grace = self.config.timeouts.shutdown_grace_s
        for pipe in self.pipes:
            with contextlib.suppress(OSError):
                pipe.send(("drain", grace))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace + 5
        while any(p.is_alive() for p in self.processes) and loop.time() < deadline:
            await asyncio.sleep(0.05)
        for process in self.processes:
            if process.is_alive():
                process.kill()
            process.join(1)
        # the last statistics the workers sent before exiting
        for pipe in self.pipes:
            while True:
                try:
                    if not pipe.poll():
                        break
                    kind, snapshot, diff = pipe.recv()
                except (EOFError, OSError):
                    break
                if kind == "stats":
                    self.hub.absorb(snapshot, diff)
        self.done.set()


def worker_main(config: ProxyConfig, port: int, pipe: Connection) -> None:
    """The entry point of a worker process."""
    import uvloop

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides when to stop
    tune_collector()
    uvloop.run(_worker(config, port, pipe))


async def _worker(config: ProxyConfig, port: int, pipe: Connection) -> None:
    loop = asyncio.get_running_loop()
    worker = Worker(config, loop)
    host, _ = config.listen_address()
    await worker.start(listening_socket(host, port, reuse_port=True))
    finished = asyncio.Event()

    def send() -> None:
        with contextlib.suppress(OSError, BrokenPipeError):
            pipe.send(("stats", worker.stats.snapshot_and_reset(), worker.take_diff()))

    async def drain(grace: float) -> None:
        await worker.drain(grace)
        send()
        finished.set()

    def receive() -> None:
        try:
            kind, value = pipe.recv()
        except (EOFError, OSError):
            loop.remove_reader(pipe.fileno())
            worker.spawn(drain(config.timeouts.shutdown_grace_s), "drain")
            return
        if kind == "reload":
            worker.reload(value)
        elif kind == "drain":
            loop.remove_reader(pipe.fileno())
            worker.spawn(drain(value), "drain")

    loop.add_reader(pipe.fileno(), receive)
    loop.add_signal_handler(
        signal.SIGTERM, lambda: worker.spawn(drain(config.timeouts.shutdown_grace_s), "drain")
    )

    async def report() -> None:
        while True:
            await asyncio.sleep(MERGE_S)
            send()

    worker.spawn(report(), "stats report")
    await finished.wait()


__all__ = ["Supervisor", "worker_main"]
