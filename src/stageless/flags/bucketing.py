"""Deterministic bucketing: one mechanism for fractional flags and, later, traffic splits.

A unit (a user, a request) is hashed to an unsigned 32-bit integer ``h`` with MurmurHash3 x86
32-bit, seed 0, and mapped onto relative integer weights exactly as flagd does::

    W      = sum of the weights (each clamped at 0), 0 < W <= 2**31 - 1
    bucket = (h * W) >> 32                      # 0 <= bucket < W
    variant = the first one whose running sum of weights exceeds bucket

Two ways to turn a value into bytes to hash, named after flagd's fractional versions:

* **v2** (flagd Go today): the value must be a string; its UTF-8 bytes are hashed.
* **v3** (accepted flagd ADR, ``openfeature-flagd-core`` 2.0): the value's deterministic CBOR
  (RFC 8949 §4.2.1) is hashed, so numbers, booleans and objects bucket too. Integer-valued
  floats in [-2**63, 2**64 - 1] are encoded as integers (so ``1.0`` buckets with ``1`` and
  ``-0.0`` with ``0``); other floats take the shortest of float16/32/64 that round-trips; a
  top-level ``null`` or array does not bucket.

Everything here is pure and allocation-light: the fractional operator and the proxy's split
precompute :func:`hash_thresholds` once, then assign a unit with one hash and one bisect.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Sequence
from typing import Any, Final, TypeVar

import cbor2
import mmh3

__all__ = [
    "MAX_TOTAL_WEIGHT",
    "TooDeepError",
    "assign",
    "bucket_of",
    "cbor_text",
    "cumulative",
    "deterministic_cbor",
    "hash_thresholds",
    "murmur3_32",
    "utf8",
    "v2_hash",
    "v3_hash",
    "v3_text_hash",
]

MAX_TOTAL_WEIGHT = 2_147_483_647
"""The largest allowed sum of weights (a signed 32-bit integer, as in flagd)."""

DEFAULT_MAX_DEPTH = 64

_INT64_MIN = -(2**63)
_UINT64_MAX = 2**64 - 1

T = TypeVar("T")

#: MurmurHash3 x86 32-bit of ``data`` (bytes) with seed 0, as an unsigned integer. mmh3's own
#: function, with no Python function around it: the proxy calls it for every request. Give it
#: bytes only: strings are always encoded in Python first, as mmh3 5.3 crashes the interpreter
#: (a NULL dereference) on a str holding a lone surrogate.
murmur3_32: Final[Callable[[bytes], int]] = mmh3.mmh3_32_uintdigest


class TooDeepError(ValueError):
    """A value nested deeper than the allowed depth was given to :func:`deterministic_cbor`."""


def v2_hash(value: str) -> int:
    """flagd's v2 hash of a bucketing string: murmur3 of its UTF-8 bytes, unsigned.

    A string with lone surrogates (possible in Python, impossible in Go) is hashed as Go's JSON
    decoder would see it, with each lone surrogate replaced by U+FFFD.
    """
    return murmur3_32(utf8(value))


def utf8(value: str) -> bytes:
    """``value`` as UTF-8, with any lone surrogate replaced by U+FFFD as Go's JSON would."""
    try:
        return value.encode()
    except UnicodeEncodeError:
        return _replace_lone_surrogates(value).encode()


def _replace_lone_surrogates(value: str) -> str:
    return value.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def bucket_of(hash_value: int, total_weight: int) -> int:
    """Map an unsigned 32-bit hash onto ``[0, total_weight)``: ``(h * W) >> 32``."""
    return (hash_value * total_weight) >> 32


def cumulative(weights: Sequence[int]) -> tuple[int, ...]:
    """Running sums of ``weights`` after clamping negatives to 0: ``[1, -2, 3]`` → ``(1, 1, 4)``."""
    ends: list[int] = []
    total = 0
    for weight in weights:
        total += max(weight, 0)
        ends.append(total)
    return tuple(ends)


def assign(hash_value: int, cumulative_weights: Sequence[int], variants: Sequence[T]) -> T:
    """The variant whose range holds ``bucket_of(hash_value, total)``.

    ``cumulative_weights`` are running sums (see :func:`cumulative`); the last one is the total
    and must be positive.
    """
    bucket = bucket_of(hash_value, cumulative_weights[-1])
    return variants[bisect_right(cumulative_weights, bucket)]


def hash_thresholds(cumulative_weights: Sequence[int]) -> tuple[int, ...]:
    """Precomputed hash bounds: variant ``i`` gets the hashes ``h < thresholds[i]``.

    ``bisect_right(thresholds, h)`` equals ``bisect_right(cumulative, bucket_of(h, W))`` for
    every 32-bit ``h`` (``(h * W) >> 32 < c`` exactly when ``h < ceil(c * 2**32 / W)``), so the
    hot path skips the multiplication and the shift.
    """
    total = cumulative_weights[-1]
    return tuple(-((-end << 32) // total) for end in cumulative_weights)


def cbor_text(value: str) -> bytes:
    """The CBOR encoding of a text string (major type 3): length header, then UTF-8 bytes."""
    data = utf8(value)
    return _head(0x60, len(data)) + data


def v3_text_hash(value: str) -> int:
    """``v3_hash`` of a string, without the type dispatch (the fractional hot path)."""
    data = utf8(value)
    size = len(data)
    head = _TEXT_HEADS[size] if size < _SMALL else _head(0x60, size)
    return murmur3_32(head + data)


def _head(major: int, argument: int) -> bytes:
    # The shortest CBOR head for a major type and an unsigned argument (RFC 8949 §4.2.1).
    if argument < 24:
        return bytes((major | argument,))
    if argument < 0x100:
        return bytes((major | 24, argument))
    if argument < 0x10000:
        return bytes((major | 25,)) + argument.to_bytes(2, "big")
    if argument < 0x100000000:
        return bytes((major | 26,)) + argument.to_bytes(4, "big")
    return bytes((major | 27,)) + argument.to_bytes(8, "big")


_SMALL = 256
_TEXT_HEADS = tuple(_head(0x60, size) for size in range(_SMALL))
_TRUE = b"\xf5"
_FALSE = b"\xf4"


def deterministic_cbor(value: Any, *, max_depth: int = DEFAULT_MAX_DEPTH) -> bytes | None:
    """flagd v3's deterministic CBOR of a bucketing value, or None if it does not bucket.

    Strings, booleans and integers are encoded here directly (``cbor2.dumps`` costs several
    microseconds per call even for a short string, and these are the hot cases); floats,
    objects and big integers go through ``cbor2`` with canonical encoding after integer-valued
    floats are normalised. ``None``, arrays and non-JSON types at the top level do not bucket.
    Raises :class:`TooDeepError` for objects nested deeper than ``max_depth``.
    """
    kind = type(value)
    if kind is str:
        return cbor_text(value)
    if kind is bool:
        return _TRUE if value else _FALSE
    if kind is int:
        return _encode_int(value)
    if kind is float:
        return _encode_float(value)
    if kind is dict:
        return bytes(cbor2.dumps(_normalise(value, max_depth), canonical=True))
    return None


def _encode_int(value: int) -> bytes:
    if 0 <= value <= _UINT64_MAX:
        return _head(0x00, value)
    if _INT64_MIN <= value < 0:
        return _head(0x20, -1 - value)
    return bytes(cbor2.dumps(value, canonical=True))  # a bignum (tag 2 or 3)


def _encode_float(value: float) -> bytes:
    if value.is_integer() and _INT64_MIN <= value <= _UINT64_MAX:
        return _encode_int(int(value))
    return bytes(cbor2.dumps(value, canonical=True))


def _normalise(value: Any, depth: int) -> Any:
    """A copy of a JSON value with integer-valued floats as ints; refuses non-JSON types."""
    if depth <= 0:
        raise TooDeepError("value is nested too deeply to bucket")
    kind = type(value)
    if kind is float:
        if value.is_integer() and _INT64_MIN <= value <= _UINT64_MAX:
            return int(value)
        return value
    if kind is dict:
        return {key: _normalise(item, depth - 1) for key, item in value.items()}
    if kind is list or kind is tuple:
        return [_normalise(item, depth - 1) for item in value]
    if value is None or kind is str or kind is bool or kind is int:
        return value
    raise TypeError(f"{kind.__name__} is not a JSON value")


def v3_hash(value: Any, *, max_depth: int = DEFAULT_MAX_DEPTH) -> int | None:
    """flagd's v3 hash of a bucketing value: murmur3 of its deterministic CBOR, or None."""
    try:
        encoded = deterministic_cbor(value, max_depth=max_depth)
    except (TypeError, UnicodeError, cbor2.CBOREncodeError):
        # A non-JSON value, or a lone surrogate nested in an object: it does not bucket.
        return None
    if encoded is None:
        return None
    return murmur3_32(encoded)
