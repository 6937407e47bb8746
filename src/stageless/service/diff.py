"""The difference between two flag documents, flag by flag, with JSON paths.

Pure: takes two parsed documents and returns data. Each change names a path in the newer
document (``flags.banner.defaultVariant``) with the old and new values; flags added or removed
are listed by key. Top-level parts other than ``flags`` (``metadata``, ``$evaluators``) are
compared the same way under their own paths.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

_MISSING = object()


@dataclass(frozen=True, slots=True)
class Change:
    """One value that differs: where, before and after (``None`` paths absent on a side)."""

    path: str
    before: Any
    after: Any
    kind: str  # "added", "removed" or "changed"

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "kind": self.kind}
        if self.kind != "added":
            out["before"] = self.before
        if self.kind != "removed":
            out["after"] = self.after
        return out


@dataclass(frozen=True, slots=True)
class DocumentDiff:
    """Flags added, removed and changed (each with its changes), and other changes."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: dict[str, tuple[Change, ...]] = field(default_factory=dict)
    other: tuple[Change, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed or self.other)


def diff_documents(before: Mapping[str, Any], after: Mapping[str, Any]) -> DocumentDiff:
    """What changed from ``before`` to ``after`` (two parsed flagd documents)."""
    old_flags = _mapping(before.get("flags"))
    new_flags = _mapping(after.get("flags"))
    added = tuple(key for key in new_flags if key not in old_flags)
    removed = tuple(key for key in old_flags if key not in new_flags)
    changed: dict[str, tuple[Change, ...]] = {}
    for key in new_flags:
        if key in old_flags and not _same(old_flags[key], new_flags[key]):
            path = _join("flags", key)
            changed[key] = tuple(_walk(path, old_flags[key], new_flags[key]))
    other: list[Change] = []
    for key in _union(before, after):
        if key != "flags":
            other.extend(_walk(_join("", key), before.get(key, _MISSING), after.get(key, _MISSING)))
    return DocumentDiff(added, removed, changed, tuple(other))


def _walk(path: str, old: Any, new: Any) -> Iterator[Change]:
    if old is _MISSING and new is _MISSING:
        return
    if old is _MISSING:
        yield Change(path, None, new, "added")
    elif new is _MISSING:
        yield Change(path, old, None, "removed")
    elif isinstance(old, Mapping) and isinstance(new, Mapping):
        for key in _union(old, new):
            yield from _walk(_join(path, key), old.get(key, _MISSING), new.get(key, _MISSING))
    elif not _same(old, new):
        yield Change(path, old, new, "changed")


def _same(first: Any, second: Any) -> bool:
    # JSON equality, not Python's: there 1 == 1.0 == True, but a flag serving true is not one
    # serving 1.
    return json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)


def _union(first: Mapping[str, Any], second: Mapping[str, Any]) -> list[str]:
    return list(first) + [key for key in second if key not in first]


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _join(path: str, key: str) -> str:
    # Keys with dots or brackets would make a dotted path ambiguous: bracket them instead.
    if any(c in key for c in '.[]"'):
        return f"{path}[{json.dumps(key)}]"
    return f"{path}.{key}" if path else key
