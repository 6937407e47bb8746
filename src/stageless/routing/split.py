"""The sticky weighted split: which users a service's candidate gets, bit-exact with a flag.

A user is identified by a *sticky key* (a cookie, a header or the client address). The split
hashes ``utf8(service) + key`` with MurmurHash3 x86 32-bit (seed 0), the flag engine's bucketing
(:mod:`stageless.flags.bucketing`), and sends the user to the candidate exactly when the hash is
below a threshold derived from the weight::

    units     = round(weight_percent * 1000)            # 0 … 100_000 (0.001 % resolution)
    threshold = ceil(units * 2**32 / 100_000)
    candidate = hash < threshold

So at a fixed weight a user never flips, and raising the weight only adds users (the threshold
only grows). This is exactly what a flagd flag keyed ``<service>`` returns for
``targetingKey = key`` with the targeting
``{"fractional": [["candidate", units], ["stable", 100000 - units]]}`` (fractional v2 hashes
``flagKey + targetingKey``): ``(h * W) >> 32 < units`` exactly when ``h < threshold``
(:func:`stageless.flags.bucketing.hash_thresholds`). tests/routing/test_split.py checks it
against the flag engine.
"""

from __future__ import annotations

import math

from stageless.flags.bucketing import hash_thresholds, murmur3_32, utf8, v2_hash

__all__ = [
    "SPLIT_UNITS",
    "is_candidate",
    "split_threshold",
    "split_units",
    "sticky_hash",
    "sticky_prefix",
]

SPLIT_UNITS = 100_000
"""The split's total weight: a weight in percent has a resolution of 0.001 %."""

_UNITS_PER_PERCENT = SPLIT_UNITS // 100


def split_units(weight_percent: float) -> int:
    """``weight_percent`` (0 … 100) in units of 0.001 %: ``round(weight_percent * 1000)``.

    Raises:
        ValueError: the weight is not a finite number between 0 and 100.
    """
    if type(weight_percent) is bool or not isinstance(weight_percent, int | float):
        raise ValueError(f"split weight must be a number, got {weight_percent!r}")
    if not (math.isfinite(weight_percent) and 0 <= weight_percent <= 100):
        raise ValueError(f"split weight is {weight_percent!r}; expected a percentage 0 to 100")
    return min(round(weight_percent * _UNITS_PER_PERCENT), SPLIT_UNITS)


def split_threshold(weight_percent: float) -> int:
    """The hash bound of a split: users whose sticky hash is below it get the candidate.

    ``ceil(units * 2**32 / 100_000)`` with ``units = split_units(weight_percent)``: 0 for a
    weight of 0 (nobody), ``2**32`` for 100 (everybody). Compute it once per configuration.
    """
    return hash_thresholds((split_units(weight_percent), SPLIT_UNITS))[0]


def sticky_hash(service: str, key: str | bytes) -> int:
    """The unsigned 32-bit hash of a sticky key within a service: murmur3 of ``service + key``.

    A ``str`` key is hashed as flagd hashes ``flagKey + targetingKey`` (its UTF-8, lone
    surrogates replaced); a ``bytes`` key (what the proxy reads off the wire) is appended to the
    service's UTF-8 as is, which is the same thing for a key that is valid UTF-8.
    """
    if type(key) is bytes:
        return murmur3_32(sticky_prefix(service) + key)
    if type(key) is str:
        return v2_hash(service + key)
    raise TypeError(f"sticky key must be str or bytes, got {type(key).__name__}")


def sticky_prefix(service: str) -> bytes:
    """What a service's sticky keys are appended to before hashing: the service name's UTF-8.

    For a ``bytes`` key, ``sticky_hash(service, key) == murmur3_32(sticky_prefix(service) +
    key)``: the proxy keeps the prefix per service and hashes each request with one call.
    """
    return utf8(service)


def is_candidate(hash_value: int, threshold: int) -> bool:
    """Whether a sticky hash falls in the candidate's share: ``hash_value < threshold``."""
    return hash_value < threshold
