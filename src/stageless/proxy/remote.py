"""Configuration pushed by the control plane: a proxy that follows a proxy config's stream.

A configuration file with a ``control_plane`` section (``url``, ``token`` or ``token_env``,
``config``, ``cache_path``) sets only ``listen``, ``admin`` and ``workers``; the rest comes
from the proxy config named ``config`` on the control plane, over
``GET {url}/api/v1/proxy-configs/{config}/stream`` (server-sent events, one ``proxy-config``
event with the whole document on connect and after every change; see docs/proxy.md,
"Configuration from the control plane").

The merge rule (:func:`stageless.proxy.config.pushed_config`): the pushed document is a complete
configuration; its ``listen``, ``admin`` and ``workers`` are replaced by the file's, because they
belong to the machine and cannot change without a restart.

:class:`RemoteConfig` runs one asyncio task on the proxy's event loop:

* ``initial()`` waits (``initial_wait_s``) for the control plane's current version; when the
  control plane cannot be reached (or refuses, or sends a document that does not validate) it
  starts from the cache file (``cache_path``) instead, and with neither it raises
  :class:`ControlPlaneUnavailableError`: the proxy does not start without a configuration.
* ``attach(apply)`` hands every later good version to ``apply`` (``ProxyApp.reload`` or
  ``Supervisor.apply``), which switches configuration without dropping a connection. A version
  that does not validate here (a ``secret_env`` unset on this machine, say) is refused and
  logged, and the running configuration stays.
* Each applied version is written to the cache file (temporary file, fsync, ``os.replace``).
* A lost connection keeps the last good configuration; reconnections wait a capped exponential
  backoff with full jitter and send ``Last-Event-ID``; no byte for three heartbeats means a dead
  connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from httpx_sse import ServerSentEvent, SSEError, aconnect_sse

from stageless.errors import UpstreamError, ValidationError
from stageless.files import write_atomically
from stageless.proxy.config import ControlPlaneConfig, ProxyConfig, pushed_config

log = logging.getLogger("stageless.proxy")

CACHE_FORMAT = 1
"""The value of the cache file's ``stageless_proxy_config_cache`` key."""
STABLE_CONNECTION_S = 10.0
"""A connection that lasted this long counts as working: the backoff starts again."""
_JITTER = random.SystemRandom()  # not the random module's global state


class ControlPlaneUnavailableError(UpstreamError):
    """No configuration at start: the control plane gave none in time and no cache was usable."""


@dataclass(frozen=True, slots=True)
class RemoteOptions:
    """Timing of the stream (the defaults suit production; tests shorten them).

    Attributes:
        heartbeat_s: the control plane's heartbeat interval; no byte for three of them means the
            connection is dead.
        backoff_initial_s: ceiling of the first reconnection delay (doubling per failure).
        backoff_max_s: the longest reconnection delay.
        connect_timeout_s: TCP connect (and request write) timeout.
        initial_wait_s: how long ``initial()`` waits for the control plane before the cache.
    """

    heartbeat_s: float = 15.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    connect_timeout_s: float = 5.0
    initial_wait_s: float = 10.0


def stream_url(control_plane: ControlPlaneConfig) -> str:
    """The stream of the proxy config ``control_plane`` names."""
    return f"{control_plane.url}/api/v1/proxy-configs/{quote(control_plane.config, safe='')}/stream"


class RemoteConfig:
    """Keeps this proxy's configuration in step with a proxy config on the control plane."""

    def __init__(
        self,
        local: ProxyConfig,
        *,
        environ: Mapping[str, str] | None = None,
        options: RemoteOptions | None = None,
    ) -> None:
        if local.control_plane is None:
            raise ValueError("the configuration has no control_plane section")
        self.local = local
        self.options = options or RemoteOptions()
        self._environ = environ
        self.config: ProxyConfig | None = None  # the last good configuration
        self.version: int | None = None
        self.etag: str | None = None
        self.from_cache = False
        self.connected = False
        self.refused = 0  # pushed versions refused since start
        self.last_error: str | None = None  # why the last connection or version failed
        self._document: dict[str, Any] | None = None
        self._last_event_id: str | None = None
        self._apply: Callable[[ProxyConfig], bool] | None = None
        self._handed_config: ProxyConfig | None = None  # what initial() returned
        self._settled = asyncio.Event()  # a first outcome: a configuration, or a failure
        self._task: asyncio.Task[None] | None = None
        self._outage = False

    @property
    def control_plane(self) -> ControlPlaneConfig:
        assert self.local.control_plane is not None  # noqa: S101  # checked in __init__
        return self.local.control_plane

    @property
    def name(self) -> str:
        return f"proxy config {self.control_plane.config!r} on {self.control_plane.url}"

    # --- lifecycle --------------------------------------------------------------------------

    async def initial(self) -> ProxyConfig:
        """Start following the control plane and return the configuration to start with."""
        self._start()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.options.initial_wait_s):
                await self._settled.wait()
        if self.config is None:
            await asyncio.to_thread(self._load_cache)
        if self.config is None:
            await self.stop()
            cache = self.control_plane.cache_file
            reason = self.last_error or f"no answer within {self.options.initial_wait_s:g} s"
            raise ControlPlaneUnavailableError(
                f"no configuration: {self.name} gave none ({reason}) and "
                + (f"the cache file {cache} has none" if cache else "no cache_path is set")
            )
        self._handed_config = self.config
        return self.config

    def attach(self, apply: Callable[[ProxyConfig], bool]) -> None:
        """Hand every later good version to ``apply`` (True: applied; False: refused), starting
        with one that arrived after ``initial()`` returned, if any."""
        self._apply = apply
        newer, handed = self.config, self._handed_config
        self._handed_config = None
        if newer is not None and newer is not handed and not apply(newer):
            self._refuse(f"version {self.version} was not applied (see above)", None)

    async def stop(self) -> None:
        """Stop following the control plane (the running configuration stays)."""
        self._apply = None
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.connected = False

    def reload_local(self, local: ProxyConfig) -> ProxyConfig | None:
        """SIGHUP: the configuration file again. A changed ``control_plane`` section takes
        effect at once (a new connection); the return value is the configuration to reload
        with (the last pushed document merged with the new file), or None for nothing to do."""
        problems = [
            f"{name} changed; this needs a restart"
            for name in ("listen", "admin", "workers")
            if getattr(local, name) != getattr(self.local, name)
        ]
        if local.control_plane is None:
            problems.append("control_plane was removed; this needs a restart")
        if problems:
            log.error("reload refused, keeping the running configuration: %s", "; ".join(problems))
            return None
        old = self.control_plane
        self.local = local
        new = self.control_plane
        if (new.url, new.config) != (old.url, old.config):
            self._last_event_id = None  # another proxy config: take its current version
        if new != old or new.bearer != old.bearer:
            log.info("control_plane changed: connecting to %s", self.name)
            if self._task is not None:
                self._task.cancel()
                self._task = None
                self._start()
        if self._document is None:
            return None
        try:
            return self._merge(self._document, self.version or 0)
        except ValidationError as exc:
            log.error("reload refused, keeping the running configuration:\n%s", exc)
            return None

    def status(self) -> dict[str, Any]:
        """For the admin ``/status`` endpoint."""
        return {
            "url": self.control_plane.url,
            "config": self.control_plane.config,
            "version": self.version,
            "connected": self.connected,
            "from_cache": self.from_cache,
            "refused": self.refused,
            "last_error": self.last_error,
        }

    # --- the stream -------------------------------------------------------------------------

    def _start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"stageless-proxy-config:{self.control_plane.config}"
            )

    async def _run(self) -> None:
        options = self.options
        attempt = 0
        timeout = httpx.Timeout(
            options.connect_timeout_s,
            read=3 * options.heartbeat_s,
            pool=options.connect_timeout_s,
        )
        headers = {"Authorization": f"Bearer {self.control_plane.bearer}"}
        async with httpx.AsyncClient(timeout=timeout, headers=headers) as client:
            while True:
                started = time.monotonic()
                productive = False
                try:
                    productive = await self._stream_once(client)
                    error = f"{self.control_plane.url} closed the stream"
                except _RefusedError as exc:
                    error = str(exc)
                except httpx.HTTPError as exc:
                    error = self._describe(exc)
                except SSEError as exc:
                    error = f"{stream_url(self.control_plane)} is not an event stream: {exc}"
                except Exception as exc:  # the task's one boundary: log, reconnect, never die
                    log.exception("following %s failed", self.name)
                    error = f"following the control plane failed: {exc!r}"
                self._disconnected(error)
                if productive or time.monotonic() - started >= STABLE_CONNECTION_S:
                    attempt = 0
                await asyncio.sleep(backoff_delay(options, attempt))
                attempt += 1

    async def _stream_once(self, client: httpx.AsyncClient) -> bool:
        """One connection, read until it ends; True if it delivered an event."""
        headers = {} if self._last_event_id is None else {"Last-Event-ID": self._last_event_id}
        productive = False
        url = stream_url(self.control_plane)
        async with aconnect_sse(client, "GET", url, headers=headers) as source:
            response = source.response
            if response.status_code != httpx.codes.OK:
                await response.aread()
                raise _RefusedError(self._describe_refusal(response))
            self.connected = True
            if self._outage:
                self._outage = False
                log.info("connected to %s again", self.name)
            async for event in source.aiter_sse():
                productive = await self._handle(event) or productive
        return productive

    async def _handle(self, event: ServerSentEvent) -> bool:
        if event.event not in {"proxy-config", "deleted"}:
            return False  # events of later protocol versions
        try:
            payload = json.loads(event.data)
        except ValueError:
            payload = None
        if not isinstance(payload, dict) or not isinstance(payload.get("version"), int):
            self._refuse(f"a malformed {event.event!r} event: {event.data[:200]!r}", None)
            return False
        version: int = payload["version"]
        if event.event == "deleted":
            log.warning(
                "%s was deleted (version %d); keeping the running configuration", self.name, version
            )
            self._settled.set()
            return True
        event_id = event.id or str(version)
        document = payload.get("document")
        if not isinstance(document, dict):
            self._refuse(f"version {version} came without a document object", event_id)
            return True
        etag = str(payload.get("etag", ""))
        if etag and etag == self.etag and self.config is not None:
            self._last_event_id = event_id
            return True  # the version in force (a reconnection without Last-Event-ID)
        try:
            config = self._merge(document, version)
        except ValidationError as exc:
            self._refuse(f"version {version} does not validate here:\n{exc}", event_id)
            return True
        apply = self._apply
        if apply is not None and not apply(config):
            self._refuse(f"version {version} was not applied (see above)", event_id)
            return True
        if apply is None:
            log.info("%s: version %d received", self.name, version)
        self.config, self._document, self.version, self.etag = config, document, version, etag
        self._last_event_id, self.from_cache = event_id, False
        self._settled.set()
        await asyncio.to_thread(self._save_cache, document, version, etag)
        return True

    def _merge(self, document: Mapping[str, Any], version: int) -> ProxyConfig:
        return pushed_config(
            document,
            local=self.local,
            source=f"{self.name}, version {version}",
            environ=self._environ,
        )

    def _refuse(self, why: str, event_id: str | None) -> None:
        if event_id is not None:
            self._last_event_id = event_id  # not sent again on reconnecting
        self.refused += 1
        self.last_error = why
        self._settled.set()
        log.error("%s: refused %s; keeping the running configuration", self.name, why)

    def _disconnected(self, error: str) -> None:
        self.connected = False
        self.last_error = error
        self._settled.set()
        if self._outage:
            log.debug("%s: still unreachable: %s", self.name, error)
            return
        self._outage = True
        log.warning("lost %s: %s; keeping the running configuration", self.name, error)

    # --- the cache file ---------------------------------------------------------------------

    def _save_cache(self, document: Mapping[str, Any], version: int, etag: str) -> None:
        path = self.control_plane.cache_file
        if path is None:
            return
        payload = {
            "stageless_proxy_config_cache": CACHE_FORMAT,
            "server": self.control_plane.url,
            "proxy_config": self.control_plane.config,
            "version": version,
            "etag": etag,
            "document": document,
            "saved_at": time.time(),
        }
        try:
            write_atomically(path, json.dumps(payload, separators=(",", ":")).encode())
        except OSError as exc:
            log.warning("cannot write the configuration cache %s: %s", path, exc)

    def _load_cache(self) -> None:
        path = self.control_plane.cache_file
        if path is None or self.config is not None:
            return
        cached = read_cache(path, server=self.control_plane.url, name=self.control_plane.config)
        if cached is None:
            return
        version, etag, document = cached
        try:
            config = pushed_config(
                document,
                local=self.local,
                source=f"{path} (cached version {version})",
                environ=self._environ,
            )
        except ValidationError as exc:
            log.warning("ignoring the configuration cache %s: %s", path, exc)
            return
        self.config, self._document, self.version, self.etag = config, document, version, etag
        self._last_event_id, self.from_cache = str(version), True
        log.warning(
            "starting from %s version %d in the cache %s (the control plane is unreachable)",
            self.name,
            version,
            path,
        )

    # --- messages -----------------------------------------------------------------------------

    def _describe(self, exc: httpx.HTTPError) -> str:
        url = self.control_plane.url
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
            return f"cannot connect to {url}: {exc}"
        if isinstance(exc, httpx.ReadTimeout):
            return f"no data from {url} for {3 * self.options.heartbeat_s:g} s (missed heartbeats)"
        return f"the stream from {url} broke: {exc or exc.__class__.__name__}"

    def _describe_refusal(self, response: httpx.Response) -> str:
        detail = ""
        with contextlib.suppress(ValueError):
            body = response.json()
            if isinstance(body, dict) and isinstance(body.get("detail"), str):
                detail = f": {body['detail']}"
        status = response.status_code
        what = {
            401: "rejected the token",
            403: "does not allow this token to stream the proxy config",
            404: "has no such proxy config",
        }.get(status, "refused the stream")
        return f"{self.control_plane.url} {what} (HTTP {status}) for {self.name}{detail}"


def backoff_delay(options: RemoteOptions, attempt: int) -> float:
    """The wait before reconnection ``attempt`` (0, 1, ...): full jitter, uniform in
    ``[0, min(backoff_max_s, backoff_initial_s * 2**attempt)]``, so proxies that lost the same
    control plane do not all come back at once. (The SDK's ``stageless.sdk.backoff`` computes
    the same; the proxy does not import the SDK package, which pulls in OpenFeature.)"""
    exponent = min(attempt, 64)  # 2.0**attempt would overflow after ~1000 failures
    ceiling = min(options.backoff_max_s, options.backoff_initial_s * 2.0**exponent)
    return _JITTER.uniform(0.0, ceiling)


class _RefusedError(Exception):
    """The control plane answered the stream request with an error status."""


def read_cache(path: Path, *, server: str, name: str) -> tuple[int, str, dict[str, Any]] | None:
    """``(version, etag, document)`` cached for proxy config ``name`` of ``server``, or None
    (missing, unreadable, not a cache, or another server's or config's: logged)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("cannot read the configuration cache %s: %s", path, exc.strerror or exc)
        return None
    try:
        loaded = json.loads(raw)
    except ValueError:
        loaded = None
    if not isinstance(loaded, dict) or loaded.get("stageless_proxy_config_cache") != CACHE_FORMAT:
        log.warning("ignoring %s: not a Stageless proxy configuration cache", path)
        return None
    version, etag, document = loaded.get("version"), loaded.get("etag"), loaded.get("document")
    if not (isinstance(version, int) and isinstance(etag, str) and isinstance(document, dict)):
        log.warning("ignoring %s: not a Stageless proxy configuration cache", path)
        return None
    if (loaded.get("server"), loaded.get("proxy_config")) != (server, name):
        log.warning(
            "ignoring the configuration cache %s: it holds proxy config %r of %s, not %r of %s",
            path,
            loaded.get("proxy_config"),
            loaded.get("server"),
            name,
            server,
        )
        return None
    return version, etag, document


__all__ = [
    "CACHE_FORMAT",
    "ControlPlaneUnavailableError",
    "RemoteConfig",
    "RemoteOptions",
    "backoff_delay",
    "read_cache",
    "stream_url",
]
