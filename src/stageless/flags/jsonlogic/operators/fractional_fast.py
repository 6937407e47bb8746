"""Fused evaluators for ``fractional``'s common case, the hot path of a percentage rollout.

They apply when the buckets are constant and the unit is a string read straight from the data:
the shorthand (``flagKey + targetingKey``) or a bucketing expression that
:func:`.fractional_unit.string_source` recognises, such as flagd's recommended
``{"cat": [{"var": "$flagd.flagKey"}, {"var": "email"}]}``. One closure then does the lookup,
the hash and a bisect over precomputed hash thresholds, with no operator calls in between.

Whenever the lookup does not end at a string (a missing key, a number, data that is not an
object) the general ``hasher`` compiled from the same rule decides, so the result is the same
as the general path's by construction; the property tests compare the two.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable
from typing import Any

import mmh3

from stageless.flags.bucketing import (
    cbor_text,
    hash_thresholds,
    v2_hash,
    v3_text_hash,
)
from stageless.flags.jsonlogic.compiler import Evaluator

Hasher = Callable[[Any], "int | None"]

# mmh3.hash on a str hashes its UTF-8 form without a Python-level encode, but it crashes the
# interpreter on a str holding a lone surrogate; an ASCII str cannot hold one, so it is only
# used behind str.isascii() (a flag check in CPython). Other strings go through v2_hash.
_hash_ascii = mmh3.hash
_hash_bytes = mmh3.mmh3_32_uintdigest

_LOOKUP_ERRORS = (KeyError, TypeError, IndexError)


def fused(
    prefix: str,
    path: tuple[str, ...],
    *,
    version: int,
    shorthand: bool,
    hasher: Hasher,
    split: tuple[tuple[Any, ...], tuple[int, ...]],
) -> Evaluator:
    """A fused evaluator; ``shorthand`` refuses an empty value, as flagd does for the key."""
    variants, ends = split
    thresholds = hash_thresholds(ends)

    def general(data: Any) -> Any:
        hash_value = hasher(data)
        return None if hash_value is None else variants[bisect_right(thresholds, hash_value)]

    if len(path) > 1:
        to_hash = _string_hasher(prefix, version=version, shorthand=shorthand)
        return _by_path(path, to_hash, general, variants, thresholds)
    (key,) = path
    if version == 2:
        if shorthand:
            return _v2_shorthand(prefix, key, general, variants, thresholds)
        return _v2_key(prefix, key, general, variants, thresholds)
    to_hash = _string_hasher(prefix, version=version, shorthand=shorthand)
    return _by_key(key, to_hash, shorthand, general, variants, thresholds)


def _string_hasher(prefix: str, *, version: int, shorthand: bool) -> Callable[[str], int]:
    if version == 2:

        def v2_unit_hash(value: str) -> int:
            unit = prefix + value
            return _hash_ascii(unit, 0, False) if unit.isascii() else v2_hash(unit)

        return v2_unit_hash
    if shorthand:
        pair_head = b"\x82" + cbor_text(prefix)  # the CBOR array [flagKey, targetingKey]
        return lambda value: _hash_bytes(pair_head + cbor_text(value), 0)
    return lambda value: v3_text_hash(prefix + value)


def _v2_key(
    prefix: str,
    key: str,
    general: Evaluator,
    variants: tuple[Any, ...],
    thresholds: tuple[int, ...],
) -> Evaluator:
    def fractional(data: Any) -> Any:
        try:
            unit = prefix + data[key]
        except _LOOKUP_ERRORS:
            return general(data)
        hash_value = _hash_ascii(unit, 0, False) if unit.isascii() else v2_hash(unit)
        return variants[bisect_right(thresholds, hash_value)]

    return fractional


def _v2_shorthand(
    prefix: str,
    key: str,
    general: Evaluator,
    variants: tuple[Any, ...],
    thresholds: tuple[int, ...],
) -> Evaluator:
    def fractional(data: Any) -> Any:
        try:
            value = data[key]
            unit = prefix + value
        except _LOOKUP_ERRORS:
            return general(data)
        if not value:
            return None
        hash_value = _hash_ascii(unit, 0, False) if unit.isascii() else v2_hash(unit)
        return variants[bisect_right(thresholds, hash_value)]

    return fractional


def _by_key(
    key: str,
    to_hash: Callable[[str], int],
    shorthand: bool,
    general: Evaluator,
    variants: tuple[Any, ...],
    thresholds: tuple[int, ...],
) -> Evaluator:
    def fractional(data: Any) -> Any:
        value = data.get(key) if type(data) is dict else None
        if type(value) is not str or (shorthand and not value):
            return general(data)
        return variants[bisect_right(thresholds, to_hash(value))]

    return fractional


def _by_path(
    path: tuple[str, ...],
    to_hash: Callable[[str], int],
    general: Evaluator,
    variants: tuple[Any, ...],
    thresholds: tuple[int, ...],
) -> Evaluator:
    def fractional(data: Any) -> Any:
        value = data
        for part in path:
            if type(value) is not dict:
                return general(data)
            value = value.get(part)
        if type(value) is not str:
            return general(data)
        return variants[bisect_right(thresholds, to_hash(value))]

    return fractional
