"""Real ``stageless serve`` processes on ephemeral loopback ports, and an SSE reader.

``start_server`` runs ``python -m stageless serve`` in a subprocess with its output in a log
file and waits until /api/v1/health answers; ``SseReader`` follows an event stream on a thread
and hands out parsed events with the time they arrived.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from stageless.store import TokenScope, open_store
from tests.ports import free_port

SECRET = "multi-instance-shared-key-0123456789abcdef"  # noqa: S105  # a test key
START_TIMEOUT = 20.0


@dataclass
class Server:
    """A running ``stageless serve`` process."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout)


def make_token(database_url: str, name: str = "admin", scope: str = "admin") -> str:
    """Create a token directly in the database (the bootstrap path) and return it."""
    with open_store(database_url) as store:
        return store.create_token(name, TokenScope(scope), actor="test").plaintext


def start_server(
    data_dir: Path, *, database: str | None = None, heartbeat: float = 1.0, cli: bool = False
) -> Server:
    """Start the server on a free loopback port; return once it is healthy.

    ``cli=True`` runs ``stageless serve`` with options; otherwise ``python -m stageless.api``
    with ``STAGELESS_*`` variables (the same server, without importing the whole CLI: faster).
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    settings = {
        "data_dir": str(data_dir),
        "port": str(port),
        "heartbeat_s": str(heartbeat),
        "secret_key": SECRET,
        "graceful_timeout_s": "3",
    }
    if database is not None:
        settings["database"] = database
    env = {k: v for k, v in os.environ.items() if not k.startswith("STAGELESS_")}
    if cli:
        command = [sys.executable, "-m", "stageless", "serve"]
        for name, value in settings.items():
            command += ["--" + name.replace("_", "-"), value]
    else:
        command = [sys.executable, "-m", "stageless.api"]
        env.update({"STAGELESS_" + name.upper(): value for name, value in settings.items()})
    log = data_dir / f"serve-{port}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)  # noqa: S603
    server = Server(process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"serve exited with {process.returncode}:\n{server.output()}")
        try:
            if httpx.get(server.url + "/api/v1/health", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    server.stop(signal.SIGKILL)
    raise AssertionError(f"serve did not become healthy:\n{server.output()}")


@dataclass(frozen=True)
class Event:
    name: str
    data: dict[str, Any]
    event_id: str | None
    arrived: float


class SseReader:
    """Follow an SSE stream on a daemon thread; ``next()`` returns parsed events in order."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.events: queue.Queue[Event | None] = queue.Queue()
        self.opened = threading.Event()
        self.status: int | None = None
        self._client = httpx.Client(timeout=httpx.Timeout(5, read=None))
        self._thread = threading.Thread(target=self._run, args=(url, headers), daemon=True)
        self._thread.start()
        assert self.opened.wait(10), "the stream did not open"

    def _run(self, url: str, headers: dict[str, str]) -> None:
        try:
            with self._client.stream("GET", url, headers=headers) as response:
                self.status = response.status_code
                self.opened.set()
                name, data, event_id = "message", "", None
                for line in response.iter_lines():
                    if line.startswith("event: "):
                        name = line[7:]
                    elif line.startswith("data: "):
                        data = line[6:]
                    elif line.startswith("id: "):
                        event_id = line[4:]
                    elif line == "" and data:
                        self.events.put(Event(name, json.loads(data), event_id, time.monotonic()))
                        name, data, event_id = "message", "", None
        except (httpx.HTTPError, RuntimeError):
            pass  # closed by the test or the server
        finally:
            self.opened.set()
            self.events.put(None)  # end of stream

    def next(self, timeout: float = 5.0) -> Event | None:
        """The next event, ``None`` at the end of the stream; fails after ``timeout``."""
        return self.events.get(timeout=timeout)

    def close(self) -> None:
        self._client.close()
