"""Flags from the Stageless control plane, kept current over its live-sync stream.

``StreamSource`` holds one server-sent-events connection to
``GET {server}/api/v1/flag-sets/{name}/stream`` in a daemon thread. The wire format (see
docs/sdk.md, "Live sync from the control plane")::

    id: 7
    event: flag-set
    data: {"flag_set": "web", "version": 7, "etag": "...", "document": {...}}

    event: deleted
    data: {"flag_set": "web", "version": 8}

    : ping

The first ``flag-set`` event carries the current document; each later one is a new version.
Heartbeat comments arrive every ``heartbeat_s`` seconds; a connection that delivers no byte for
three heartbeats is presumed dead and replaced. Reconnections wait a capped exponential backoff
with full jitter and send ``Last-Event-ID`` (the server then skips a version the client already
has). A refusal that says when to come back (``Retry-After``, as a 429 or 503 from the server
or a proxy sends it) is honoured: the next attempt waits that long plus the jittered backoff,
at most ``retry_after_max_s``. While disconnected, the last good flags stay in force:
evaluation never depends on the network. The last good document is written to an optional
cache file, which a process that starts while the server is unreachable serves instead.

Fork safety: ``os.register_at_fork(after_in_child=...)`` gives every live source in a forked
child (gunicorn, uWSGI, Celery workers) fresh locks, drops the connection inherited from the
parent without touching the parent's side of it, and starts a new stream thread.

SSE decoding is httpx-sse's; connection management, reconnection and state are here.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import socket
import ssl
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import httpx
from httpx_sse import EventSource, ServerSentEvent, SSEError

from stageless.clock import SYSTEM_CLOCK, Clock
from stageless.errors import StagelessError, ValidationError
from stageless.flags import FlagSet, parse_flag_set
from stageless.sdk.backoff import (
    DEFAULT_INITIAL_DELAY,
    DEFAULT_MAX_DELAY,
    Backoff,
    retry_after_s,
)
from stageless.sdk.cache import CachedFlags, read_cache, write_cache
from stageless.sdk.changes import changed_flags
from stageless.sdk.documents import DOCUMENTS, Decoded
from stageless.sdk.source import SourceListener, SourceUnavailableError

logger = logging.getLogger(__name__)

DEFAULT_HEARTBEAT = 15.0
"""Seconds between the server's heartbeats (the server's ``heartbeat_s`` default)."""
STABLE_CONNECTION = 10.0
"""Seconds after which a connection counts as working even if it delivered no event."""
DEFAULT_RETRY_AFTER_MAX = 300.0
"""Seconds: the longest ``Retry-After`` a source honours."""
Notify = Callable[[SourceListener], None]


@dataclass(frozen=True, slots=True)
class StreamOptions:
    """How a :class:`StreamSource` connects, waits and parses.

    Attributes:
        heartbeat_s: the server's heartbeat interval; no byte for ``3 * heartbeat_s`` seconds
            means the connection is dead.
        backoff_initial_s: ceiling of the first reconnection delay (doubles per failure).
        backoff_max_s: the longest reconnection delay.
        connect_timeout_s: TCP connect (and request write) timeout.
        initial_wait_s: how long ``load()`` waits for the server before serving the cache.
        retry_after_max_s: the longest ``Retry-After`` (of a 429 or 503) honoured.
        fractional_version: bucketing of the ``fractional`` operator (2 or 3).
        clock: the source of ``$flagd.timestamp`` (the system clock if None).
    """

    heartbeat_s: float = DEFAULT_HEARTBEAT
    backoff_initial_s: float = DEFAULT_INITIAL_DELAY
    backoff_max_s: float = DEFAULT_MAX_DELAY
    connect_timeout_s: float = 5.0
    initial_wait_s: float = 5.0
    retry_after_max_s: float = DEFAULT_RETRY_AFTER_MAX
    fractional_version: Literal[2, 3] = 2
    clock: Clock | None = None

    @property
    def dead_after_s(self) -> float:
        """Silence after which a connection is replaced: three heartbeats."""
        return 3 * self.heartbeat_s


def stream_url(server: str, flag_set: str) -> str:
    """The live-sync stream URL of ``flag_set`` on ``server`` (a base URL such as
    ``http://127.0.0.1:7411``)."""
    return f"{server.rstrip('/')}/api/v1/flag-sets/{quote(flag_set, safe='')}/stream"


class StreamSource:
    """A :class:`~stageless.sdk.source.FlagSource` fed by the control plane's stream.

    ``load()`` starts the stream thread and returns the server's current flags (waiting up to
    ``options.initial_wait_s``), or, if the server cannot be reached, the cached flags; with
    neither it raises ``SourceUnavailableError`` and keeps trying in the background, so the
    provider becomes ready when the server answers. The listener hears ``flags_loaded`` for
    each good version, ``flags_failed`` for a rejected document or a deleted flag set, and
    ``flags_stale`` when the connection is lost (``flags_loaded`` with no changes when it is
    back).
    """

    def __init__(
        self,
        url: str,
        flag_set: str,
        token: str | None,
        *,
        cache_path: str | os.PathLike[str] | None = None,
        options: StreamOptions | None = None,
    ) -> None:
        self._server = url.rstrip("/")
        self._flag_set = flag_set
        self._token = token
        self._cache_path = None if cache_path is None else Path(cache_path)
        self._options = options or StreamOptions()
        self._url = stream_url(self._server, flag_set)
        # What the source knows; survives close() and fork.
        self._good: FlagSet | None = None
        self._good_document: Mapping[str, Any] | None = None
        self._version: int | None = None
        self._last_event_id: str | None = None
        self._from_cache = False
        self._error: StagelessError | None = None
        self._outage = False  # a lost connection was reported and none has worked since
        self._stale_unreported = False  # the outage began before watch(): tell the listener
        self._connected = False
        self._listener: SourceListener | None = None
        self._handed: FlagSet | None = None  # what load() returned (the provider has it)
        self._handed_document: Mapping[str, Any] | None = None
        self._reset_runtime()
        _LIVE.add(self)

    def _reset_runtime(self) -> None:
        """Locks, events and the thread: made anew at construction and in a forked child."""
        self._lock = threading.RLock()  # state + listener calls; evaluation never takes it
        self._settled = threading.Event()  # the first outcome: flags, a refusal or a failure
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None  # the live connection, to interrupt a read

    # --- FlagSource ---------------------------------------------------------------------

    @property
    def name(self) -> str:
        return f"flag set {self._flag_set!r} on {self._server}"

    @property
    def version(self) -> int | None:
        """The version of the flags in force, or None before any."""
        return self._version

    @property
    def connected(self) -> bool:
        """Whether the stream is connected right now."""
        return self._connected

    @property
    def from_cache(self) -> bool:
        """Whether the flags in force came from the cache file (the server not heard yet)."""
        return self._from_cache

    def load(self) -> FlagSet:
        """The current flags: from the server, else from the cache file.

        Raises:
            SourceUnavailableError: neither the server nor a cache gave flags in time.
            ValidationError: the server's document is invalid and there is no cache.
        """
        self._start()
        self._settled.wait(self._options.initial_wait_s)
        with self._lock:
            if self._good is None:
                self._load_cache()
            good = self._good
            self._handed, self._handed_document = good, self._good_document
            if good is not None:
                return good
            error = self._error or SourceUnavailableError(
                f"no answer from {self._server} within {self._options.initial_wait_s:g} s"
            )
        if isinstance(error, ValidationError):
            raise ValidationError(error.issues, source=error.source)
        raise SourceUnavailableError(str(error))

    def watch(self, listener: SourceListener) -> None:
        """Report to ``listener`` from now on, starting with what changed since ``load()``."""
        with self._lock:
            self._listener = listener
            good, handed = self._good, self._handed
            if good is not None and good is not self._handed:
                previous = self._handed_document
                changed = (
                    sorted(good.keys())
                    if previous is None or self._good_document is None
                    else changed_flags(previous, self._good_document)
                )
                _deliver(listener, lambda it: it.flags_loaded(good, changed))
            error = self._error
            if good is not None and self._outage:
                # Told by the stream thread at its next failed attempt rather than here: the
                # OpenFeature SDK sends PROVIDER_READY when initialize() returns, which would
                # otherwise overwrite a PROVIDER_STALE sent from inside it.
                self._stale_unreported = True
            elif good is not None and error is not None and handed is not None:
                _deliver(listener, lambda it: it.flags_failed(error))
        self._start()

    def close(self) -> None:
        """Stop the stream thread (within about a second) and forget the listener."""
        with self._lock:
            self._listener = None
            thread, stop, sock = self._thread, self._stop, self._socket
            self._thread = None
        stop.set()
        if sock is not None:
            with contextlib.suppress(OSError):  # wakes a read blocked on this connection
                sock.shutdown(socket.SHUT_RDWR)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        self._connected = False

    # --- the stream thread ----------------------------------------------------------------

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop = threading.Event()
            thread = threading.Thread(
                target=self._run,
                args=(self._stop,),
                name=f"stageless-stream:{self._flag_set}",
                daemon=True,
            )
            self._thread = thread
        thread.start()

    def _run(self, stop: threading.Event) -> None:
        options = self._options
        backoff = Backoff(options.backoff_initial_s, options.backoff_max_s)
        timeout = httpx.Timeout(
            options.connect_timeout_s, read=options.dead_after_s, pool=options.connect_timeout_s
        )
        headers = {} if self._token is None else {"Authorization": f"Bearer {self._token}"}
        with httpx.Client(timeout=timeout, headers=headers, verify=_ssl_context()) as client:
            while not stop.is_set():
                started = time.monotonic()
                productive = False
                try:
                    productive = self._stream_once(client, stop)
                    error = SourceUnavailableError(f"{self._server} closed the stream")
                except SourceUnavailableError as exc:
                    error = exc
                except httpx.HTTPError as exc:
                    error = SourceUnavailableError(self._describe(exc))
                except SSEError as exc:
                    error = SourceUnavailableError(f"{self._url} is not an event stream: {exc}")
                except Exception as exc:  # the thread's one boundary: log, reconnect, never die
                    logger.exception("live sync of %s failed", self.name)
                    error = SourceUnavailableError(f"live sync failed: {exc!r}")
                if stop.is_set():
                    return
                self._disconnected(error)
                if productive or time.monotonic() - started >= STABLE_CONNECTION:
                    backoff.reset()
                delay = backoff.next_delay()
                if isinstance(error, _RefusedError) and error.retry_after_s is not None:
                    delay += min(error.retry_after_s, options.retry_after_max_s)
                stop.wait(delay)

    def _stream_once(self, client: httpx.Client, stop: threading.Event) -> bool:
        """One connection, read until it ends; True if it delivered an event."""
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-store"}
        if self._last_event_id is not None:
            headers["Last-Event-ID"] = self._last_event_id
        productive = False
        with client.stream("GET", self._url, headers=headers) as response:
            if response.status_code != httpx.codes.OK:
                response.read()
                wait = retry_after_s(response.headers.get("retry-after"), time.time())
                raise _RefusedError(self._describe_refusal(response, wait), wait)
            stream = response.extensions.get("network_stream")
            self._socket = None if stream is None else stream.get_extra_info("socket")
            try:
                if stop.is_set():
                    return False
                self._reconnected()
                for event in EventSource(response).iter_sse():
                    if stop.is_set():
                        return productive
                    productive = self._handle(event) or productive
            finally:
                self._socket = None
        return productive

    def _handle(self, event: ServerSentEvent) -> bool:
        if event.event not in {"flag-set", "deleted"}:
            return False  # heartbeats and events of later protocol versions
        # Decoded and compiled once per process: every source on this server gets these bytes.
        decoded = DOCUMENTS.decode(event.event, event.data, self._compile_settings, self._compile)
        payload = decoded.payload
        if not isinstance(payload, dict) or not isinstance(payload.get("version"), int):
            self._failed(
                SourceUnavailableError(
                    f"{self._server} sent a malformed {event.event!r} event: {event.data[:200]!r}"
                ),
                event_id=None,
            )
            return False
        version: int = payload["version"]
        event_id = event.id or str(version)
        if event.event == "deleted":
            self._failed(
                SourceUnavailableError(
                    f"{self.name} was deleted (version {version}); serving the last good flags"
                ),
                event_id=event_id,
            )
            return True
        document = payload.get("document")
        if not isinstance(document, dict):
            self._failed(
                SourceUnavailableError(
                    f"{self._server} sent version {version} without a document object"
                ),
                event_id=event_id,
            )
            return True
        self._apply(decoded, document, version, str(payload.get("etag", "")), event_id)
        return True

    @property
    def _compile_settings(self) -> tuple[object, ...]:
        """What compiling a pushed document depends on besides the document (a cache key)."""
        options = self._options
        return (self.name, options.fractional_version, id(options.clock or SYSTEM_CLOCK))

    def _compile(self, payload: Any) -> FlagSet | ValidationError | None:
        """The flag set of a ``flag-set`` event's payload, or why it is invalid."""
        if not isinstance(payload, dict) or not isinstance(payload.get("version"), int):
            return None
        document = payload.get("document")
        if not isinstance(document, dict):
            return None
        options = self._options
        try:
            return parse_flag_set(
                document,
                fractional_version=options.fractional_version,
                clock=options.clock or SYSTEM_CLOCK,
                source_name=f"{self.name}, version {payload['version']}",
            )
        except ValidationError as exc:
            return exc

    def _apply(
        self,
        decoded: Decoded,
        document: dict[str, Any],
        version: int,
        etag: str,
        event_id: str,
    ) -> None:
        flags = decoded.flags
        if flags is None:
            self._failed(
                decoded.error
                or SourceUnavailableError(f"version {version} of {self.name} did not compile"),
                event_id=event_id,
            )
            return
        with self._lock:
            previous = self._good_document
            changed = sorted(flags.keys()) if previous is None else decoded.changed_since(previous)
            recovering = self._error is not None
            self._good, self._good_document, self._version = flags, document, version
            self._last_event_id, self._from_cache = event_id, False
            self._error, self._outage = None, False
            self._settled.set()
            listener = self._listener
            if listener is not None and (changed or recovering):
                _deliver(listener, lambda it: it.flags_loaded(flags, changed))
        self._save(CachedFlags(self._server, self._flag_set, version, etag, document, time.time()))

    def _reconnected(self) -> None:
        with self._lock:
            self._connected = True
            if not self._outage:
                return
            self._outage = self._stale_unreported = False
            if isinstance(self._error, SourceUnavailableError):
                self._error = None
            logger.info("live sync of %s is connected again", self.name)
            good, listener = self._good, self._listener
            if good is not None and listener is not None and self._error is None:
                _deliver(listener, lambda it: it.flags_loaded(good, ()))

    def _failed(self, error: StagelessError, *, event_id: str | None) -> None:
        with self._lock:
            if event_id is not None:
                self._last_event_id = event_id
            self._error = error
            self._settled.set()
            listener = self._listener
            if listener is not None:
                _deliver(listener, lambda it: it.flags_failed(error))
        logger.warning("%s", error)

    def _disconnected(self, error: SourceUnavailableError) -> None:
        with self._lock:
            self._connected = False
            if self._good is None:
                self._load_cache()
            if self._outage:
                if self._stale_unreported and self._listener is not None and self._good is not None:
                    self._stale_unreported = False
                    _deliver(self._listener, lambda it: it.flags_stale(error))
                logger.debug("live sync of %s: still down: %s", self.name, error)
                return
            self._outage, self._error = True, error
            self._settled.set()
            good, listener = self._good, self._listener
            if listener is not None:
                if good is not None:
                    _deliver(listener, lambda it: it.flags_stale(error))
                else:
                    _deliver(listener, lambda it: it.flags_failed(error))
        logger.warning("live sync of %s lost: %s; serving the last good flags", self.name, error)

    # --- cache ----------------------------------------------------------------------------

    def _load_cache(self) -> None:
        """Serve the cache file's flags if nothing better is known (call with the lock held)."""
        if self._cache_path is None or self._good is not None:
            return
        cached = read_cache(self._cache_path, server=self._server, flag_set=self._flag_set)
        if cached is None:
            return
        try:
            flags = parse_flag_set(
                cached.document,
                fractional_version=self._options.fractional_version,
                clock=self._options.clock or SYSTEM_CLOCK,
                source_name=f"{self._cache_path} (cached version {cached.version})",
            )
        except ValidationError as exc:
            logger.warning("ignoring the flag cache %s: %s", self._cache_path, exc)
            return
        self._good, self._good_document = flags, cached.document
        self._version, self._last_event_id = cached.version, str(cached.version)
        self._from_cache = True
        logger.info("serving %s version %d from %s", self.name, cached.version, self._cache_path)

    def _save(self, cached: CachedFlags) -> None:
        if self._cache_path is None:
            return
        try:
            write_cache(self._cache_path, cached)
        except OSError as exc:
            logger.warning("cannot write the flag cache %s: %s", self._cache_path, exc)

    # --- messages ---------------------------------------------------------------------------

    def _describe(self, exc: httpx.HTTPError) -> str:
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
            return f"cannot connect to {self._server}: {exc}"
        if isinstance(exc, httpx.ReadTimeout):
            return (
                f"no data from {self._server} for {self._options.dead_after_s:g} s "
                "(three missed heartbeats)"
            )
        return f"the stream from {self._server} broke: {exc or exc.__class__.__name__}"

    def _describe_refusal(self, response: httpx.Response, retry_after: float | None) -> str:
        detail = ""
        with contextlib.suppress(ValueError):
            body = response.json()
            if isinstance(body, dict) and isinstance(body.get("detail"), str):
                detail = f": {body['detail']}"
        status = response.status_code
        what = {
            401: "rejected the token",
            403: "does not allow this token to stream the flag set",
            404: "has no such flag set",
            429: "is rate limiting this client",
            503: "is unavailable",
        }.get(status, "refused the stream")
        later = "" if retry_after is None else f"; retrying after {retry_after:g} s (Retry-After)"
        return f"{self._server} {what} (HTTP {status}) for {self.name}{detail}{later}"

    # --- fork -------------------------------------------------------------------------------

    def _after_fork_in_child(self) -> None:
        running = self._thread is not None
        inherited = self._socket
        self._reset_runtime()
        self._connected = False
        if inherited is not None:
            # Only this process's descriptor is closed: no shutdown(), which would cut the
            # parent's connection too (the socket is shared across fork).
            with contextlib.suppress(OSError):
                inherited.close()
        if self._good is not None or self._error is not None:
            self._settled.set()
        if running:
            self._start()


class _RefusedError(SourceUnavailableError):
    """The server answered the stream request with an error status (maybe a ``Retry-After``)."""

    def __init__(self, message: str, retry_after_s: float | None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """One TLS configuration for every stream in the process.

    Building it (loading the CA bundle) costs ~40 ms, which each ``httpx.Client`` would
    otherwise pay: per source, and again in every forked worker. (Two threads racing here
    may build it twice; both results are equivalent.)
    """
    return httpx.create_ssl_context()


def _deliver(listener: SourceListener, call: Notify) -> None:
    try:
        call(listener)
    except Exception:  # a listener must not raise; if it does, the stream goes on
        logger.exception("a flag source listener raised")


_LIVE: weakref.WeakSet[StreamSource] = weakref.WeakSet()


def _restart_streams_in_child() -> None:
    DOCUMENTS.after_fork()
    for source in list(_LIVE):
        try:
            source._after_fork_in_child()
        except Exception:  # never break fork() for the application
            logger.exception("cannot restart live sync of %s after fork", source.name)


os.register_at_fork(after_in_child=_restart_streams_in_child)


__all__ = ["DEFAULT_HEARTBEAT", "StreamOptions", "StreamSource", "stream_url"]
