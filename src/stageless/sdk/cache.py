"""The stream source's local cache: the last good flag document, kept on disk.

A process that starts while the control plane is unreachable serves the flags it saw last. The
file is JSON::

    {"stageless_flag_cache": 1, "server": "...", "flag_set": "web", "version": 7,
     "etag": "...", "document": {...flagd document...}, "saved_at": 1700000000.0}

Writes are atomic and durable: the new content goes to a temporary file in the same directory,
is flushed and fsynced, then renamed over the cache with ``os.replace`` (atomic on POSIX and
Windows), and the directory is fsynced so the rename itself survives a power cut. A reader
therefore sees the old file or the new one, never a torn mix.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stageless.files import write_atomically

logger = logging.getLogger(__name__)

CACHE_FORMAT = 1
"""The value of the file's ``stageless_flag_cache`` key; other values are ignored."""


@dataclass(frozen=True, slots=True)
class CachedFlags:
    """One flag set's last good document as a server sent it."""

    server: str
    flag_set: str
    version: int
    etag: str
    document: Mapping[str, Any]
    saved_at: float


def write_cache(path: Path, cached: CachedFlags) -> None:
    """Replace the cache file atomically with ``cached`` (:func:`stageless.files.write_atomically`).

    Raises OSError if the directory cannot be written; the temporary file is removed then.
    """
    payload = json.dumps(
        {
            "stageless_flag_cache": CACHE_FORMAT,
            "server": cached.server,
            "flag_set": cached.flag_set,
            "version": cached.version,
            "etag": cached.etag,
            "document": cached.document,
            "saved_at": cached.saved_at,
        },
        separators=(",", ":"),
    ).encode()
    write_atomically(path, payload)


def read_cache(path: Path, *, server: str, flag_set: str) -> CachedFlags | None:
    """The cached flags for ``flag_set`` from ``server``, or None.

    None when the file is missing, unreadable, not a Stageless cache, or written for another
    server or flag set (a reason is logged at WARNING for everything but a missing file).
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        logger.warning("cannot read the flag cache %s: %s", path, exc.strerror or exc)
        return None
    try:
        loaded = json.loads(raw)
    except ValueError as exc:
        logger.warning("ignoring the flag cache %s: not JSON (%s)", path, exc)
        return None
    cached = _from_json(loaded)
    if cached is None:
        logger.warning("ignoring the flag cache %s: not a Stageless flag cache", path)
        return None
    if cached.server != server or cached.flag_set != flag_set:
        logger.warning(
            "ignoring the flag cache %s: it holds flag set %r from %s, not %r from %s",
            path,
            cached.flag_set,
            cached.server,
            flag_set,
            server,
        )
        return None
    return cached


def _from_json(loaded: Any) -> CachedFlags | None:
    if not isinstance(loaded, dict) or loaded.get("stageless_flag_cache") != CACHE_FORMAT:
        return None
    server, flag_set = loaded.get("server"), loaded.get("flag_set")
    version, etag = loaded.get("version"), loaded.get("etag")
    document, saved_at = loaded.get("document"), loaded.get("saved_at", 0.0)
    if not (
        isinstance(server, str)
        and isinstance(flag_set, str)
        and isinstance(version, int)
        and isinstance(etag, str)
        and isinstance(document, dict)
        and isinstance(saved_at, int | float)
    ):
        return None
    return CachedFlags(server, flag_set, version, etag, document, float(saved_at))


__all__ = ["CACHE_FORMAT", "CachedFlags", "read_cache", "write_cache"]
