"""A small, real SSE server that speaks the control plane's live-sync wire format.

It pins the format the SDK relies on (notes/control-plane-contract.md, docs/sdk.md) independently
of the real server: ``GET /api/v1/flag-sets/{name}/stream`` with a Bearer token, ``id:
<version>`` + ``event: flag-set`` + ``data: {"flag_set", "version", "etag", "document"}``,
``event: deleted``, ``: ping`` heartbeats, and ``Last-Event-ID`` equal to the current version
skipping the initial event. Built on the standard library's HTTP server so that every byte on
the wire is visible here; it can be stopped abruptly (connections cut) and started again on the
same port, and it can go silent to imitate a dead connection.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

STREAM_PATH = "/api/v1/flag-sets/{name}/stream"


@dataclass(frozen=True)
class SeenRequest:
    path: str
    headers: dict[str, str]
    at: float = field(default_factory=time.monotonic)


class ContractServer:
    """One flag set served over the live-sync stream on 127.0.0.1."""

    def __init__(
        self,
        *,
        flag_set: str = "web",
        token: str = "stl_test",  # noqa: S107 (a test token)
        heartbeat_s: float = 0.5,
    ) -> None:
        self.flag_set = flag_set
        self.token = token
        self.heartbeat_s = heartbeat_s
        self.version = 0
        self.document: Mapping[str, Any] | None = None
        self.deleted = False
        self.muted: set[socket.socket] = set()  # connections that send nothing, not even pings
        self.requests: list[SeenRequest] = []
        self.refusals: list[tuple[int, dict[str, str]]] = []  # answers for the next requests
        self.condition = threading.Condition()
        self.port = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- what the flag set holds ---------------------------------------------------------

    def publish(self, document: Mapping[str, Any]) -> int:
        """Store a new version and push it to every connected client."""
        with self.condition:
            self.version += 1
            self.document, self.deleted = document, False
            self.condition.notify_all()
            return self.version

    def delete(self) -> None:
        with self.condition:
            self.version += 1
            self.document, self.deleted = None, True
            self.condition.notify_all()

    def refuse(self, status: int, headers: dict[str, str], times: int = 1) -> None:
        """Answer the next ``times`` stream requests with ``status`` (a problem) and
        ``headers``, as a rate limiter or an overloaded proxy would."""
        with self.condition:
            self.refusals.extend([(status, headers)] * times)

    def request_times(self) -> list[float]:
        """When each stream request arrived (``time.monotonic()``)."""
        with self.condition:
            return [r.at for r in self.requests if r.path.endswith("/stream")]

    def mute_connections(self) -> None:
        """Make every live connection go silent (a dead peer); new ones work normally."""
        with self.condition:
            self.muted |= self._connections

    def stream_requests(self) -> list[SeenRequest]:
        with self.condition:
            return [r for r in self.requests if r.path.endswith("/stream")]

    # --- life cycle ------------------------------------------------------------------------

    def start(self) -> ContractServer:
        owner = self

        class Handler(_StreamHandler):
            server_owner = owner

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop abruptly: no new connections, and every live one cut."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self.condition:
            connections = list(self._connections)
            self._connections.clear()
            self.condition.notify_all()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> ContractServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def event_bytes(server: ContractServer) -> bytes:
    """The SSE event for the flag set's current state (call with the condition held)."""
    if server.deleted:
        data = json.dumps({"flag_set": server.flag_set, "version": server.version})
        return f"id: {server.version}\nevent: deleted\ndata: {data}\n\n".encode()
    data = json.dumps(
        {
            "flag_set": server.flag_set,
            "version": server.version,
            "etag": f'"v{server.version}"',
            "document": server.document,
        }
    )
    return f"id: {server.version}\nevent: flag-set\ndata: {data}\n\n".encode()


class _StreamHandler(BaseHTTPRequestHandler):
    server_owner: ContractServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        """Quiet: the tests read ``requests`` instead."""

    def do_GET(self) -> None:
        owner = self.server_owner
        with owner.condition:
            owner.requests.append(SeenRequest(self.path, dict(self.headers.items())))
            refusal = owner.refusals.pop(0) if owner.refusals else None
        if refusal is not None:
            self._problem(refusal[0], "unavailable", "try again later", refusal[1])
            return
        if self.path != STREAM_PATH.format(name=owner.flag_set):
            self._problem(404, "not_found", f"no flag set at {self.path}")
            return
        if self.headers.get("Authorization") != f"Bearer {owner.token}":
            self._problem(401, "unauthorized", "a valid token is required")
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        with owner.condition:
            owner._connections.add(self.connection)
        try:
            self._serve_events(owner)
        except OSError:
            pass  # the client or stop() cut the connection
        finally:
            with owner.condition:
                owner._connections.discard(self.connection)
            self.close_connection = True

    def _serve_events(self, owner: ContractServer) -> None:
        with owner.condition:
            sent = owner.version
            initial = self.headers.get("Last-Event-ID") != str(owner.version) and owner.version > 0
            pending = event_bytes(owner) if initial else b""
        if pending:
            self._chunk(pending)
        while True:
            with owner.condition:
                seen = sent
                owner.condition.wait_for(
                    lambda: owner.version != seen or owner._server is None,  # noqa: B023
                    timeout=owner.heartbeat_s,
                )
                if owner._server is None:
                    return
                changed = owner.version != sent
                sent = owner.version
                payload = event_bytes(owner) if changed else b": ping\n\n"
                silent = self.connection in owner.muted
            if not silent:
                self._chunk(payload)

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _problem(
        self, status: int, code: str, detail: str, headers: dict[str, str] | None = None
    ) -> None:
        body = json.dumps(
            {
                "type": f"https://stageless.dev/problems/{code}",
                "title": code.replace("_", " "),
                "status": status,
                "detail": detail,
                "code": code,
            }
        ).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/problem+json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
