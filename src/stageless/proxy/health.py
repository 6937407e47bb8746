"""Active health checks of upstream addresses: one asyncio task per checked address.

Each task sends ``GET <health_check.path> HTTP/1.1`` (with a Host header, ``Connection: close``)
every ``interval_s``, and reads the status line within ``timeout_s``: 2xx and 3xx pass; any
other status, a refused or reset connection, a timeout or a malformed answer fail. An address
turns unhealthy after ``unhealthy_threshold`` failures in a row and healthy again after
``healthy_threshold`` passes in a row. Every address starts healthy, so traffic flows from the
first request; one whose service has no ``health_check`` is never checked and always healthy
(:meth:`HealthChecker.address` returns None for it).

The hot path reads :attr:`AddressHealth.healthy`, a plain attribute. State changes are logged on
the ``stageless.proxy`` logger. Addresses are shared across services; the configuration
guarantees one health check per address.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple

from stageless.proxy.config import HealthCheck, ProxyConfig

__all__ = ["AddressHealth", "HealthChecker", "ProbeResult", "probe"]

log = logging.getLogger("stageless.proxy")

Endpoint = tuple[str, int]
_USER_AGENT = b"stageless-health-check"


def _display(endpoint: Endpoint) -> str:
    host, port = endpoint
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class ProbeResult(NamedTuple):
    """One check: did it pass, and what happened (``status 200``, ``connection refused``...)."""

    ok: bool
    detail: str


class AddressHealth:
    """The health of one upstream address; ``healthy`` is read on every request."""

    __slots__ = ("address", "checks", "detail", "failures", "healthy", "successes")

    def __init__(self, address: Endpoint) -> None:
        self.address = address
        self.healthy = True
        self.successes = 0  # passes in a row
        self.failures = 0  # failures in a row
        self.checks = 0
        self.detail = "not checked yet"

    def record(self, result: ProbeResult, check: HealthCheck) -> bool:
        """Count one probe against ``check``'s thresholds; True when ``healthy`` flipped."""
        self.checks += 1
        self.detail = result.detail
        if result.ok:
            self.successes += 1
            self.failures = 0
            if not self.healthy and self.successes >= check.healthy_threshold:
                self.healthy = True
                return True
        else:
            self.failures += 1
            self.successes = 0
            if self.healthy and self.failures >= check.unhealthy_threshold:
                self.healthy = False
                return True
        return False

    def __repr__(self) -> str:
        state = "healthy" if self.healthy else "unhealthy"
        return f"AddressHealth({_display(self.address)}, {state}, {self.detail!r})"


def _request(endpoint: Endpoint, check: HealthCheck) -> bytes:
    host = check.host if check.host is not None else _display(endpoint)
    return (
        f"GET {check.path} HTTP/1.1\r\nHost: {host}\r\n".encode("ascii")
        + b"User-Agent: "
        + _USER_AGENT
        + b"\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    )


def _status(line: bytes) -> ProbeResult:
    parts = line.split(None, 2)
    if not line.endswith(b"\n"):
        return ProbeResult(False, "connection closed before a status line")
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        return ProbeResult(False, f"malformed status line {line[:80]!r}")
    status = int(parts[1])
    return ProbeResult(200 <= status < 400, f"status {status}")


async def probe(endpoint: Endpoint, check: HealthCheck) -> ProbeResult:
    """One health check of ``endpoint``: connect, send the GET, read the status line."""
    host, port = endpoint
    try:
        async with asyncio.timeout(check.timeout_s):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                writer.write(_request(endpoint, check))
                line = await reader.readline()
            finally:
                writer.close()  # the status is all we need; no wait for the peer's close
    except TimeoutError:
        return ProbeResult(False, f"no answer within {check.timeout_s:g} s")
    except ConnectionRefusedError:
        return ProbeResult(False, "connection refused")
    except ConnectionResetError:
        return ProbeResult(False, "connection reset")
    except OSError as exc:
        return ProbeResult(False, exc.strerror or type(exc).__name__)
    except ValueError:  # a status line longer than the stream's limit
        return ProbeResult(False, "status line too long")
    return _status(line)


class HealthChecker:
    """Runs the health checks of one configuration; :meth:`update` follows reloads."""

    def __init__(self, config: ProxyConfig) -> None:
        self._checks: dict[Endpoint, HealthCheck] = dict(config.health_checks)
        self._states = {endpoint: AddressHealth(endpoint) for endpoint in self._checks}
        self._tasks: dict[Endpoint, asyncio.Task[None]] = {}
        self._retired: set[asyncio.Task[None]] = set()
        self._running = False

    @property
    def states(self) -> Mapping[Endpoint, AddressHealth]:
        """Every checked address and its health."""
        return MappingProxyType(self._states)

    def address(self, endpoint: Endpoint) -> AddressHealth | None:
        """The health of ``endpoint``, or None when it is not checked (always healthy)."""
        return self._states.get(endpoint)

    def start(self) -> None:
        """Start one task per checked address (call with the event loop running)."""
        self._running = True
        for endpoint in self._checks:
            self._spawn(endpoint)

    def update(self, config: ProxyConfig) -> None:
        """Follow a reload: new addresses start healthy, kept ones keep their state (and their
        ``AddressHealth`` object), a changed check restarts its task, dropped ones stop."""
        wanted = config.health_checks
        for endpoint in [e for e in self._checks if e not in wanted]:
            self._retire(endpoint)
            del self._states[endpoint]
        for endpoint, check in wanted.items():
            if endpoint not in self._states:
                self._states[endpoint] = AddressHealth(endpoint)
            elif check == self._checks[endpoint]:
                continue
            self._checks[endpoint] = check
            if self._running:
                self._retire(endpoint)
                self._spawn(endpoint)
        for endpoint in [e for e in self._checks if e not in wanted]:
            del self._checks[endpoint]

    async def stop(self) -> None:
        """Cancel every task and wait for them to end."""
        self._running = False
        for endpoint in list(self._tasks):
            self._retire(endpoint)
        tasks = list(self._retired)
        await asyncio.gather(*tasks, return_exceptions=True)

    def _spawn(self, endpoint: Endpoint) -> None:
        task = asyncio.get_running_loop().create_task(
            self._run(endpoint, self._checks[endpoint]),
            name=f"stageless-health-{_display(endpoint)}",
        )
        self._tasks[endpoint] = task

    def _retire(self, endpoint: Endpoint) -> None:
        task = self._tasks.pop(endpoint, None)
        if task is not None:
            task.cancel()
            self._retired.add(task)
            task.add_done_callback(self._retired.discard)

    async def _run(self, endpoint: Endpoint, check: HealthCheck) -> None:
        health = self._states[endpoint]
        while True:
            result = await probe(endpoint, check)
            if health.record(result, check):
                if health.healthy:
                    log.info(
                        "upstream %s is healthy again (%d checks passed in a row: %s)",
                        _display(endpoint),
                        health.successes,
                        result.detail,
                    )
                else:
                    log.warning(
                        "upstream %s is unhealthy (%d checks failed in a row: %s)",
                        _display(endpoint),
                        health.failures,
                        result.detail,
                    )
            await asyncio.sleep(check.interval_s)
