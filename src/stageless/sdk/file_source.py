"""Flags from a file on disk, reloaded when the file changes.

The watcher (watchfiles, in a daemon thread) watches the file's directory rather than the file,
so that a file replaced by rename (editors, config management, Kubernetes ConfigMap volumes with
their ``..data`` symlink swap) is seen like an edit in place. Every wake-up compares the file's
bytes with the last version read, so duplicate or spurious events cost one small read and
report nothing. As a backstop for file systems without change notification (some network and
container mounts), the file's ``stat`` signature is also checked every ``check_interval``.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import watchfiles
import yaml

from stageless.clock import Clock
from stageless.errors import ValidationError
from stageless.flags import FlagSet, parse_flag_set
from stageless.sdk.changes import changed_flags
from stageless.sdk.source import SourceListener, SourceUnavailableError

logger = logging.getLogger(__name__)

DEFAULT_STEP_MS = 50
"""Quiet time after the last change before the file is read (groups an editor's writes)."""
DEFAULT_CHECK_INTERVAL = 1.0
"""Seconds between ``stat`` checks, the backstop when change notification is unavailable."""
WATCH_START_TIMEOUT = 5.0
"""How long :meth:`FileSource.watch` waits for the watcher to be live before returning anyway."""

Format = Literal["json", "yaml"]
_SUFFIXES: dict[str, Format] = {".json": "json", ".yaml": "yaml", ".yml": "yaml"}


def format_for(path: str | os.PathLike[str]) -> Format | None:
    """The document format a file name implies: JSON or YAML by suffix, else None (sniffed)."""
    return _SUFFIXES.get(Path(path).suffix.lower())


def read_source(path: str | os.PathLike[str]) -> bytes:
    """The bytes of a flag file, or SourceUnavailableError with a plain message."""
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        raise SourceUnavailableError(f"cannot read flag file {os.fspath(path)}: {reason}") from exc


def load_flag_file(
    path: str | os.PathLike[str],
    *,
    fractional_version: Literal[2, 3] = 2,
    clock: Clock | None = None,
) -> FlagSet:
    """Read and parse a flag file (JSON or YAML by suffix).

    Raises:
        SourceUnavailableError: the file cannot be read.
        ValidationError: the document is invalid; every issue names its path.
    """
    return _parse(read_source(path), path, fractional_version, clock)


def _parse(
    data: bytes,
    path: str | os.PathLike[str],
    fractional_version: Literal[2, 3],
    clock: Clock | None,
) -> FlagSet:
    if clock is None:
        return parse_flag_set(
            data,
            format=format_for(path),
            fractional_version=fractional_version,
            source_name=os.fspath(path),
        )
    return parse_flag_set(
        data,
        format=format_for(path),
        fractional_version=fractional_version,
        clock=clock,
        source_name=os.fspath(path),
    )


def _raw_document(data: bytes, path: str | os.PathLike[str]) -> Mapping[str, Any]:
    """The plain JSON value of a document that already parsed, for diffing versions."""
    if format_for(path) == "json":
        loaded = json.loads(data)
    else:
        loaded = yaml.load(data, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506
    return loaded if isinstance(loaded, Mapping) else {}


class _StopSignal:
    """The ``stop_event`` handed to watchfiles, which also tells when the watcher is live.

    watchfiles polls ``is_set()`` from inside its watch loop, only once the OS watches are in
    place; the first poll therefore marks the moment after which no change can be missed.
    """

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.live = threading.Event()

    def is_set(self) -> bool:
        self.live.set()
        return self.stop.is_set()


class FileSource:
    """A :class:`~stageless.sdk.source.FlagSource` backed by a JSON or YAML flag file."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        fractional_version: Literal[2, 3] = 2,
        clock: Clock | None = None,
        watch: bool = True,
        check_interval: float = DEFAULT_CHECK_INTERVAL,
    ) -> None:
        self._path = Path(path).absolute()
        self._fractional_version: Literal[2, 3] = fractional_version
        self._clock = clock
        self._watch_enabled = watch
        self._check_interval = check_interval
        self._lock = threading.Lock()  # serialises reloads (watcher thread vs. load())
        self._good: FlagSet | None = None
        self._good_data: bytes | None = None
        self._bad_data: bytes | None = None  # the last broken content reported, to report it once
        self._failing = False  # a failure was reported and no good version came since
        self._signature: tuple[int, int, int] | None = None
        self._stop: _StopSignal | None = None
        self._thread: threading.Thread | None = None

    @property
    def name(self) -> str:
        return str(self._path)

    @property
    def path(self) -> Path:
        return self._path

    def load(self) -> FlagSet:
        with self._lock:
            self._signature = self._stat()
            try:
                data = read_source(self._path)
            except SourceUnavailableError:
                self._bad_data, self._failing = None, True
                raise
            try:
                flags = _parse(data, self._path, self._fractional_version, self._clock)
            except ValidationError:
                self._bad_data, self._failing = data, True
                raise
            self._good, self._good_data = flags, data
            self._bad_data, self._failing = None, False
            return flags

    def watch(self, listener: SourceListener) -> None:
        """Start the watcher thread; returns once it is watching (or after ``WATCH_START_TIMEOUT``).

        A change made between :meth:`load` and this call is picked up here, before returning.
        """
        if not self._watch_enabled or self._thread is not None:
            return
        stop = _StopSignal()
        thread = threading.Thread(
            target=self._run,
            args=(listener, stop),
            name=f"stageless-watch:{self._path.name}",
            daemon=True,
        )
        self._stop, self._thread = stop, thread
        thread.start()
        if stop.live.wait(WATCH_START_TIMEOUT):
            self.check(listener, force=False)

    @property
    def watching(self) -> bool:
        """Whether the watcher thread is running and receiving change notifications."""
        thread = self._thread
        return (
            thread is not None
            and thread.is_alive()
            and self._stop is not None
            and self._stop.live.is_set()
        )

    def close(self) -> None:
        stop, thread = self._stop, self._thread
        self._stop, self._thread = None, None
        if stop is not None:
            stop.stop.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    # --- the watcher thread -------------------------------------------------------------

    def _run(self, listener: SourceListener, stop: _StopSignal) -> None:
        try:
            self._watch_loop(listener, stop)
        except Exception as exc:  # the one boundary of this thread: report, never die silently
            logger.exception("flag file watcher for %s stopped", self._path)
            listener.flags_failed(SourceUnavailableError(f"watching {self._path} failed: {exc}"))
        finally:
            stop.live.set()  # never leave watch() waiting for a watcher that is gone

    def _watch_loop(self, listener: SourceListener, stop: _StopSignal) -> None:
        names = {self._path.name, self._path.resolve().name}
        directories = {self._path.parent, self._path.resolve().parent}

        def relevant(_change: watchfiles.Change, changed_path: str) -> bool:
            name = os.path.basename(changed_path)
            # "..data" and friends: Kubernetes swaps a symlinked directory to update a ConfigMap.
            return name in names or name.startswith("..")

        for changes in watchfiles.watch(
            *directories,
            watch_filter=relevant,
            step=DEFAULT_STEP_MS,
            stop_event=stop,
            rust_timeout=max(1, int(self._check_interval * 1000)),
            yield_on_timeout=True,
            raise_interrupt=False,
            recursive=False,
        ):
            if stop.is_set():
                return
            self.check(listener, force=bool(changes))

    def check(self, listener: SourceListener, *, force: bool = True) -> None:
        """Re-read the file if it may have changed and tell ``listener`` what happened.

        With ``force`` false, the file is read only if its ``stat`` signature changed. The
        watcher calls this; tests and callers without a watcher may call it directly.
        """
        with self._lock:
            signature = self._stat()
            if not force and signature == self._signature:
                return
            self._signature = signature
            try:
                data = read_source(self._path)
            except SourceUnavailableError as exc:
                if signature is None and self._failing and self._bad_data is None:
                    return  # still missing: reported once already
                self._bad_data, self._failing = None, True
                listener.flags_failed(exc)
                return
            self._apply(data, listener)

    def _apply(self, data: bytes, listener: SourceListener) -> None:
        if self._failing and data == self._bad_data:
            return  # the same broken content: already reported
        if data == self._good_data and self._good is not None:
            if self._failing:  # back to the last good version after a failure
                self._bad_data, self._failing = None, False
                listener.flags_loaded(self._good, ())
            return
        try:
            flags = _parse(data, self._path, self._fractional_version, self._clock)
        except ValidationError as exc:
            self._bad_data, self._failing = data, True
            listener.flags_failed(exc)
            return
        previous = self._good_data
        changed = (
            changed_flags(_raw_document(previous, self._path), _raw_document(data, self._path))
            if previous is not None
            else sorted(flags.keys())
        )
        self._good, self._good_data = flags, data
        self._bad_data, self._failing = None, False
        listener.flags_loaded(flags, changed)

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self._path)
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)


__all__ = [
    "DEFAULT_CHECK_INTERVAL",
    "FileSource",
    "format_for",
    "load_flag_file",
    "read_source",
]
