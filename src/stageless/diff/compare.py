"""Differences between two lifted responses, by field path, with Diffy's kinds.

For each path of either side:

- on one side only: ``MissingField`` (the other side lacks it) or ``ExtraField`` (only the
  other side has it); nothing is reported under a missing or extra object;
- both sides equal (numbers within ``numeric_tolerance``): nothing;
- two arrays: different lengths, ``SeqSizeDifference``; ordered arrays holding the same
  elements in another order, ``OrderingDifference``; otherwise the differing elements are paired
  (by index for ordered arrays; for unordered arrays the elements both sides share are set
  aside and the rest paired, objects sharing the most fields first) and compared under
  ``<path>[]``;
- two values of one type (two strings, two numbers, two booleans, two text bodies...):
  ``PrimitiveDifference``;
- values of different types (a string and a number, an object and an array, JSON and text):
  ``TypeDifference``; nothing is reported under the object side.

When array elements disagree at one path in several ways, the path gets the first kind of
:data:`PRECEDENCE`. The work is linear in the size of the two lifts.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Hashable, Iterable
from enum import StrEnum
from typing import NamedTuple

from stageless.diff.lift import OBJECT, Array, Digest, Fields, Leaf, Lifted, Marker, element_fields


class DifferenceKind(StrEnum):
    """The kinds of difference, named as Diffy names them."""

    TYPE = "TypeDifference"
    MISSING = "MissingField"
    EXTRA = "ExtraField"
    SEQ_SIZE = "SeqSizeDifference"
    ORDERING = "OrderingDifference"
    PRIMITIVE = "PrimitiveDifference"


PRECEDENCE = tuple(DifferenceKind)
MAX_MATCHED = 16
_RANK = {kind: rank for rank, kind in enumerate(PRECEDENCE)}


class _Absent:
    __slots__ = ()

    def __repr__(self) -> str:
        return "(absent)"


ABSENT = _Absent()
"""The value of a side that lacks the path."""


class Difference(NamedTuple):
    """One differing path: its kind and the two sides' leaves (:data:`ABSENT` when missing)."""

    kind: DifferenceKind
    primary: Leaf | _Absent
    other: Leaf | _Absent


def _group(value: object) -> str:
    kind = type(value)
    if kind is int or kind is float:
        return "number"
    if kind is str:
        return "string"
    if value is None:
        return "null"
    if isinstance(value, Marker):
        return value.group
    if kind is tuple:
        return "array"
    if isinstance(value, Digest):
        return value.kind
    return kind.__name__  # pragma: no cover - lift produces none other


class _Comparison:
    """The state of one comparison: the result, the objects cut off, the rules."""

    __slots__ = ("cut", "out", "tolerance", "unordered")

    def __init__(self, tolerance: float, unordered: bool) -> None:
        self.out: dict[str, Difference] = {}
        self.cut: set[str] = set()
        self.tolerance = tolerance
        self.unordered = unordered

    def put(self, path: str, kind: DifferenceKind, primary: object, other: object) -> None:
        previous = self.out.get(path)
        if previous is None or _RANK[kind] < _RANK[previous.kind]:
            self.out[path] = Difference(kind, primary, other)  # type: ignore[arg-type]

    def fields(self, a: Fields, b: Fields) -> None:
        if a == b:
            return
        for path, va in a.items():
            vb = b.get(path, ABSENT)
            if vb is ABSENT:
                self.put(path, DifferenceKind.MISSING, va, ABSENT)
                if va is OBJECT:
                    self.cut.add(path)
            elif va != vb:
                self.leaves(path, va, vb)
        for path, vb in b.items():
            if path not in a:
                self.put(path, DifferenceKind.EXTRA, ABSENT, vb)
                if vb is OBJECT:
                    self.cut.add(path)

    def leaves(self, path: str, va: object, vb: object) -> None:
        ga, gb = _group(va), _group(vb)
        if ga != gb:
            self.put(path, DifferenceKind.TYPE, va, vb)
            if va is OBJECT or vb is OBJECT:
                self.cut.add(path)
        elif ga == "array":
            self.arrays(path, va, vb)  # type: ignore[arg-type]
        elif ga == "number" and self.tolerance and type(va) is not Marker:
            x: float = va  # type: ignore[assignment]
            y: float = vb  # type: ignore[assignment]
            if abs(x - y) > self.tolerance * max(abs(x), abs(y)):
                self.put(path, DifferenceKind.PRIMITIVE, va, vb)
        else:
            self.put(path, DifferenceKind.PRIMITIVE, va, vb)

    def arrays(self, path: str, a: Array, b: Array) -> None:
        if len(a) != len(b):
            self.put(path, DifferenceKind.SEQ_SIZE, a, b)
            return
        counts_a, counts_b = Counter(a), Counter(b)
        pairs: Iterable[tuple[Hashable, Hashable]]
        if self.unordered:
            if counts_a == counts_b:
                return  # the same multiset (in different orders after a hash tie)
            pairs = _pairs(_unmatched(a, counts_b), _unmatched(b, counts_a))
        else:
            if counts_a == counts_b:
                self.put(path, DifferenceKind.ORDERING, a, b)
                return
            pairs = ((ka, kb) for ka, kb in zip(a, b, strict=True) if ka != kb)
        element_path = path + "[]"
        for ka, kb in pairs:
            self.fields(element_fields(ka, element_path), element_fields(kb, element_path))

    def result(self) -> dict[str, Difference]:
        if not self.cut:
            return self.out
        return {path: d for path, d in self.out.items() if not self._under_cut(path)}

    def _under_cut(self, path: str) -> bool:
        end = len(path)
        while True:
            end = max(path.rfind(".", 0, end), path.rfind("[", 0, end))
            if end <= 0:
                return False
            if path[:end] in self.cut:
                return True


def _unmatched(keys: Array, other: Counter[Hashable]) -> list[Hashable]:
    """The keys left, in order, once each is matched against one equal key of ``other``."""
    available = dict(other)
    left: list[Hashable] = []
    for key in keys:
        count = available.get(key, 0)
        if count:
            available[key] = count - 1
        else:
            left.append(key)
    return left


def _pairs(left_a: list[Hashable], left_b: list[Hashable]) -> Iterable[tuple[Hashable, Hashable]]:
    """Pair the unmatched elements of two unordered arrays: objects sharing the most fields
    (arrays the most elements) first, up to :data:`MAX_MATCHED` elements a side; the rest in
    order. The pairing is the same whichever side comes first."""
    count = len(left_a)
    if count == 1 or count > MAX_MATCHED:
        return zip(left_a, left_b, strict=True)
    sets_b = [_members(kb) for kb in left_b]
    scored: list[tuple[int, int, int]] = []
    for i, ka in enumerate(left_a):
        members = _members(ka)
        if members:
            for j, other in enumerate(sets_b):
                shared = len(members & other)
                if shared:
                    scored.append((-shared, i, j))
    scored.sort()
    free_a, free_b = set(range(count)), set(range(count))
    pairs: list[tuple[Hashable, Hashable]] = []
    for _, i, j in scored:
        if i in free_a and j in free_b:
            free_a.remove(i)
            free_b.remove(j)
            pairs.append((left_a[i], left_b[j]))
    pairs.extend(
        zip((left_a[i] for i in sorted(free_a)), (left_b[j] for j in sorted(free_b)), strict=True)
    )
    return pairs


def _members(key: Hashable) -> frozenset[Hashable]:
    """What an element is made of, to measure how alike two elements are."""
    if type(key) is frozenset:
        return key
    if type(key) is tuple:
        return frozenset(key)
    return frozenset()


def compare(primary: Lifted, other: Lifted) -> dict[str, Difference]:
    """Every differing path with its kind and the two leaves (empty when the two agree).

    Both sides should be lifted with the same rules; the primary's tolerance applies.
    """
    if primary.same_bytes(other) or primary.fields == other.fields:
        return {}
    comparison = _Comparison(primary.rules.numeric_tolerance, primary.rules.unordered_arrays)
    comparison.fields(primary.fields, other.fields)
    return comparison.result()


def differences(primary: Lifted, other: Lifted) -> dict[str, DifferenceKind]:
    """Every differing path and its kind (see the module docstring)."""
    return {path: d.kind for path, d in compare(primary, other).items()}


def describe(value: object, limit: int = 120) -> str:
    """A short, readable rendering of a leaf for examples (JSON-like, cut at ``limit``)."""
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
    elif value is None:
        text = "null"
    elif isinstance(value, int | float):
        text = repr(value)
    elif type(value) is tuple:
        items = ", ".join(_element(key) for key in value[:5])
        more = ", …" if len(value) > 5 else ""
        text = f"[{items}{more}] ({len(value)} item{'' if len(value) == 1 else 's'})"
    else:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _element(key: Hashable) -> str:
    return "{…}" if type(key) is frozenset else describe(key, 40)


__all__ = [
    "ABSENT",
    "PRECEDENCE",
    "Difference",
    "DifferenceKind",
    "compare",
    "describe",
    "differences",
]
