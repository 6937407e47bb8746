"""Real programs on loopback for the data-plane driver tests: two small upstreams (stable and
candidate), HAProxy and nginx started on free ports, and a client loop of GETs.

The upstreams are HTTP/1.1 keep-alive servers answering with their name; ``/status/<code>``
answers that status. Each remembers the ``x-stageless-*`` headers it received. A missing
haproxy or nginx program fails the test that needs it (never a skip): the project's set-up
installs both (scripts/debian-packages).
"""

from __future__ import annotations

import contextlib
import http.client
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.ports import free_port


def program(name: str) -> str:
    """The path of ``name``; fails the test when it is not installed."""
    found = shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/usr/bin") / name) if p.exists()), None
    )
    if found is None:
        pytest.fail(
            f"{name} is not installed: the {name} driver's tests run the real program "
            "(scripts/setup installs it from scripts/debian-packages)"
        )
    return found


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes
    server: Upstream

    def do_GET(self) -> None:
        self.server.seen.append({k.lower(): v for k, v in self.headers.items()})
        self.server.count += 1
        every = self.server.fail_every
        status = 500 if self.server.failing or (every and self.server.count % every == 0) else 200
        if self.path.startswith("/status/"):
            status = int(self.path.removeprefix("/status/"))
        body = self.server.name.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the hook's name
        """Quiet."""


class Upstream(ThreadingHTTPServer):
    """A keep-alive HTTP/1.1 server on a loopback port that answers with its name."""

    daemon_threads = True
    request_queue_size = 256  # nginx opens a connection per mirror copy

    def __init__(self, name: str, *, failing: bool = False) -> None:
        self.name = name
        self.failing = failing  # answer 500 to everything (a regression)
        self.fail_every = 0  # > 0: answer 500 to every n-th request (a baseline error rate)
        self.count = 0
        self.seen: list[dict[str, str]] = []
        super().__init__(("127.0.0.1", free_port()), _Handler)
        self.thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def handle_error(self, request: object, client_address: object) -> None:
        """Quiet: a proxy closing a pooled connection is no error."""

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


@contextlib.contextmanager
def upstreams(*, failing: bool = False) -> Iterator[tuple[Upstream, Upstream]]:
    """Stable and a candidate (``failing``: one that answers 500 to everything)."""
    stable, candidate = Upstream("stable"), Upstream("candidate", failing=failing)
    try:
        yield stable, candidate
    finally:
        stable.stop()
        candidate.stop()


def wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path | None = None) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            details = log.read_text() if log is not None and log.exists() else ""
            out = process.stderr.read().decode() if process.stderr else ""
            pytest.fail(f"the program exited with {process.returncode}: {out}{details}")
        probe = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        try:
            probe.connect()
        except OSError:
            pass
        else:
            return
        finally:
            probe.close()
        time.sleep(0.02)
    pytest.fail(f"nothing listens on port {port} after 10 s")


@contextlib.contextmanager
def running(
    command: list[str], port: int, log: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``command`` (a server in the foreground) until the block ends."""
    process = subprocess.Popen(  # noqa: S603 - fixed programs with our own arguments
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        wait_for_port(port, process, log)
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stderr:
            process.stderr.close()


def get(
    port: int,
    path: str = "/",
    *,
    headers: dict[str, str] | None = None,
    connection: http.client.HTTPConnection | None = None,
) -> tuple[int, str, http.client.HTTPResponse]:
    """One GET; returns (status, body, response)."""
    conn = connection or http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path, headers=headers or {})
    response = conn.getresponse()
    body = response.read().decode()
    if connection is None:
        conn.close()
    return response.status, body, response


@dataclass
class Load:
    """A client loop of GETs on keep-alive connections, one user (cookie) per request in turn;
    counts answers by body and every failure.

    Like browsers and most HTTP clients, it sends a GET again, once, on a new connection when a
    *reused* keep-alive connection was closed before any byte of an answer came back (the server
    closed it as idle while the request was on its way: nothing was processed). Those are
    counted in ``retried``; anything else (a fresh connection failing, an error answer, a
    second failure) is a failure.
    """

    port: int
    users: list[str] = field(default_factory=list)
    answers: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    by_user: dict[str, set[str]] = field(default_factory=dict)
    keep_alive: bool = True
    stop: threading.Event = field(default_factory=threading.Event)
    requests: int = 0
    retried: int = 0

    def run(self) -> None:
        conn, used = self._connect(), 0
        index = 0
        while not self.stop.is_set():
            user = self.users[index % len(self.users)] if self.users else ""
            index += 1
            headers = {"Cookie": f"stageless-key={user}"} if user else {}
            if not self.keep_alive:
                headers["Connection"] = "close"
            try:
                status, body, response = get(self.port, headers=headers, connection=conn)
            except _CLOSED_UNANSWERED as exc:
                conn.close()
                conn, fresh = self._connect(), used == 0
                used = 0
                if fresh:
                    self.failures.append(f"{type(exc).__name__} on a new connection: {exc}")
                    continue
                self.retried += 1
                try:
                    status, body, response = get(self.port, headers=headers, connection=conn)
                except (OSError, http.client.HTTPException) as again:
                    self.failures.append(f"{type(again).__name__} (after a retry): {again}")
                    conn.close()
                    conn = self._connect()
                    continue
            except (OSError, http.client.HTTPException) as exc:
                self.failures.append(f"{type(exc).__name__}: {exc}")
                conn.close()
                conn, used = self._connect(), 0
                continue
            used += 1
            self.requests += 1
            if status != 200:
                self.failures.append(f"HTTP {status}: {body[:80]}")
            self.answers[body] += 1
            if user:
                self.by_user.setdefault(user, set()).add(body)
            if response.will_close:
                conn.close()
                conn, used = self._connect(), 0
        conn.close()

    def _connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)


_CLOSED_UNANSWERED = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


@contextlib.contextmanager
def load(
    port: int, *, clients: int = 2, users: int = 0, keep_alive: bool = True
) -> Iterator[list[Load]]:
    """``clients`` loops of GETs in threads while the block runs."""
    loops = [
        Load(port, users=[f"user-{c}-{i}" for i in range(users)], keep_alive=keep_alive)
        for c in range(clients)
    ]
    threads = [threading.Thread(target=loop.run, daemon=True) for loop in loops]
    for thread in threads:
        thread.start()
    try:
        yield loops
    finally:
        for loop in loops:
            loop.stop.set()
        for thread in threads:
            thread.join(timeout=15)


def user_answers(port: int, users: list[str]) -> dict[str, str]:
    """Which version each user (sticky cookie) gets, on keep-alive connections."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    found: dict[str, str] = {}
    try:
        for user in users:
            _, body, response = get(
                port, headers={"Cookie": f"stageless-key={user}"}, connection=conn
            )
            found[user] = body
            if response.will_close:  # nginx closes after keepalive_requests (1000)
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    finally:
        conn.close()
    return found


SECRET = "0123456789abcdef0123456789abcdef"  # noqa: S105 - a test key
ENVIRON = {"SHOP_KEY": SECRET}
TESTERS = "{tokens_file: %s, signing_keys: [{id: k1, secret_env: SHOP_KEY}]}"


@dataclass(frozen=True)
class Tokens:
    """A tokens file holding a valid token, an expired one, one for another service and a
    forged one (signed with another secret)."""

    file: Path
    valid: str
    expired: str
    other_service: str
    forged: str


def tokens_file(directory: Path, now: float) -> Tokens:
    from stageless.analysis.batch import TrafficClass
    from stageless.routing.tokens import SigningKey, issue_token

    key = SigningKey("k1", SECRET.encode())

    def token(
        service: str = "shop", ttl: float = 3600, at: float = now, k: SigningKey = key
    ) -> str:
        return issue_token(
            k, service=service, traffic_class=TrafficClass.TESTER, subject="ann", ttl_s=ttl, now=at
        )

    made = Tokens(
        file=directory / "tokens",
        valid=token(),
        expired=token(ttl=60, at=now - 3600),
        other_service=token("cart"),
        forged=token(k=SigningKey("k1", b"x" * 32)),
    )
    made.file.write_text(
        f"# tester tokens\n{made.valid}\n{made.expired}  # Bob's, old\n{made.other_service}\n"
        f"{made.forged}\n\n"
    )
    return made
