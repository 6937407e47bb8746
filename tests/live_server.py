"""A real ``stageless serve`` in a child process, for the SDK, client and CLI tests.

SQLite in a temporary data directory, an ephemeral loopback port (kept across a kill and a
restart, so clients can find the server again), tokens created through the service layer on
the same database before the server starts (the way ``stageless tokens create`` does).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from stageless.service import open_service
from stageless.store import sqlite_url
from tests.ports import free_port

START_TIMEOUT = 20.0


class LiveServer:
    """``stageless serve`` on 127.0.0.1; ``kill()`` is SIGKILL, ``start()`` brings it back."""

    def __init__(self, data_dir: Path, *, heartbeat_s: float = 0.5) -> None:
        self.data_dir = data_dir
        self.heartbeat_s = heartbeat_s
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log = data_dir / "serve.log"
        data_dir.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def create_token(self, name: str, scope: str, flag_set: str | None = None) -> str:
        service = open_service(sqlite_url(self.data_dir))
        try:
            return service.tokens.create(name, scope, flag_set=flag_set, actor="test").plaintext
        finally:
            service.close()

    def start(self) -> LiveServer:
        env = {k: v for k, v in os.environ.items() if not k.startswith("STAGELESS_")}
        command = [
            sys.executable,
            "-m",
            "stageless",
            "serve",
            "--data-dir",
            str(self.data_dir),
            "--port",
            str(self.port),
            "--heartbeat-s",
            str(self.heartbeat_s),
            "--log-level",
            "warning",
            "--graceful-timeout-s",
            "1",
        ]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(  # noqa: S603 (our own command line)
                command, stdout=log, stderr=subprocess.STDOUT, env=env
            )
        self._wait_healthy()
        return self

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"stageless serve exited: {self.log.read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/api/v1/health", timeout=1).status_code == 200:
                    return
            time.sleep(0.05)
        raise AssertionError(f"stageless serve not healthy in time: {self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown, streams cut mid-connection."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(timeout=10)

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.kill()
