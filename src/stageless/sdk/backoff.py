"""Reconnection delays: capped exponential backoff with full jitter, and ``Retry-After``.

Each delay is drawn uniformly from ``[0, min(cap, initial * 2**attempt)]`` ("full jitter"):
when a server restarts, its thousands of clients spread their reconnections over the whole
window instead of arriving together at each power of two.

A server (or a proxy in front of it) that answers 429 or 503 may say how long to wait in
``Retry-After`` (RFC 9110: seconds, or an HTTP date); ``retry_after_s`` reads it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC
from email.utils import parsedate_to_datetime

# Jitter draws from the OS (not the random module's global state): forked workers must not
# share one sequence, and the application's own seeded `random` must stay untouched.
_JITTER = random.SystemRandom()

DEFAULT_INITIAL_DELAY = 0.5
"""Seconds: the ceiling of the first delay."""
DEFAULT_MAX_DELAY = 30.0
"""Seconds: no delay is ever longer than this."""


class Backoff:
    """Delays for successive failed attempts; :meth:`reset` after a success."""

    def __init__(
        self,
        initial: float = DEFAULT_INITIAL_DELAY,
        maximum: float = DEFAULT_MAX_DELAY,
        *,
        uniform: Callable[[float, float], float] = _JITTER.uniform,
    ) -> None:
        if not 0 < initial <= maximum:
            raise ValueError(
                f"backoff delays must satisfy 0 < initial <= maximum, got {initial} and {maximum}"
            )
        self._initial = initial
        self._maximum = maximum
        self._uniform = uniform
        self._attempt = 0

    @property
    def attempt(self) -> int:
        """How many delays were handed out since the last reset."""
        return self._attempt

    def ceiling(self) -> float:
        """The upper bound of the next delay."""
        # 2**attempt overflows a float only after ~1000 attempts; stop doubling once capped.
        exponent = min(self._attempt, 64)
        return min(self._maximum, self._initial * 2.0**exponent)

    def next_delay(self) -> float:
        """A delay in seconds for the next attempt, then move to the next window."""
        delay = self._uniform(0.0, self.ceiling())
        self._attempt += 1
        return min(max(delay, 0.0), self._maximum)

    def reset(self) -> None:
        """Start again from the smallest window (after a connection that worked)."""
        self._attempt = 0


def retry_after_s(value: str | None, now: float) -> float | None:
    """Seconds to wait according to a ``Retry-After`` header value, at Unix time ``now``.

    ``None`` when there is no header or it is neither a number of seconds nor an HTTP date; a
    date in the past means 0.
    """
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP date is always GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


__all__ = ["DEFAULT_INITIAL_DELAY", "DEFAULT_MAX_DELAY", "Backoff", "retry_after_s"]
