"""The built-in metric source: the proxy's batches, one JSON object per line, in a growing file.

The file is followed as it grows: each :meth:`BatchFile.fetch_batches` reads the lines appended
since the previous call (a last line without its newline is still being written and waits for
the next call). Every new line is validated once, when it is first read; the source remembers
only where each batch lives in the file (its offset, ``ts``, service and route) and reads the
batches a window needs again, so a long rollout does not keep every latency sample in memory.

A file that shrank (rotated or truncated) is read again from the start. A line that is not a
valid batch is reported by number on every later call (``batches.jsonl line 12: requests: -1 is
not a count; ...``): a corrupt record means the evidence is incomplete, and the judge says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from stageless.analysis.batch import Batch, parse_batch
from stageless.errors import ValidationError
from stageless.metrics.source import SourceError


@dataclass(frozen=True, slots=True)
class _Entry:
    offset: int
    length: int
    ts: float
    service: str
    route: str


class BatchFile:
    """A :class:`~stageless.metrics.source.MetricSource` over a JSON-lines batch file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._entries: list[_Entry] = []
        self._read_to = 0
        self._lines = 0
        self._bad: list[str] = []

    def fetch_batches(self, service: str, route: str, start: float, end: float) -> list[Batch]:
        """The batches of ``service`` and ``route`` whose interval started in ``[start, end)``."""
        self._follow()
        if self._bad:
            shown = "; ".join(self._bad[:3])
            more = f" (and {len(self._bad) - 3} more bad lines)" if len(self._bad) > 3 else ""
            raise SourceError(f"{self.path}: {shown}{more}")
        wanted = [
            e
            for e in self._entries
            if e.service == service and e.route == route and start <= e.ts < end
        ]
        if not wanted:
            return []
        batches: list[Batch] = []
        try:
            with self.path.open("rb") as f:
                for entry in wanted:
                    f.seek(entry.offset)
                    batches.append(parse_batch(json.loads(f.read(entry.length))))
        except (OSError, ValueError, ValidationError) as exc:
            raise SourceError(f"{self.path}: changed while being read ({exc})") from exc
        batches.sort(key=lambda b: b.ts)
        return batches

    def _follow(self) -> None:
        """Index the complete lines appended since the last call."""
        try:
            size = self.path.stat().st_size
            if size < self._read_to:  # truncated or replaced: start again
                self._entries, self._read_to, self._lines, self._bad = [], 0, 0, []
            if size == self._read_to:
                return
            with self.path.open("rb") as f:
                f.seek(self._read_to)
                chunk = f.read(size - self._read_to)
        except FileNotFoundError as exc:
            raise SourceError(
                f"{self.path}: no such file (has the proxy written any batch?)"
            ) from exc
        except OSError as exc:
            raise SourceError(f"{self.path}: cannot read ({exc.strerror or exc})") from exc
        offset = self._read_to
        for line in chunk.splitlines(keepends=True):
            if not line.endswith(b"\n"):
                break  # still being written
            self._lines += 1
            self._index(line, offset)
            offset += len(line)
        self._read_to = offset

    def _index(self, line: bytes, offset: int) -> None:
        where = f"line {self._lines}"
        if not line.strip():
            return
        try:
            raw = json.loads(line)
        except ValueError as exc:
            self._bad.append(f"{where}: not JSON ({exc})")
            return
        try:
            batch = parse_batch(raw)
        except ValidationError as exc:
            self._bad.append(f"{where}: " + "; ".join(str(i) for i in exc.issues))
            return
        self._entries.append(_Entry(offset, len(line), batch.ts, batch.service, batch.route))
