"""Reconnection delays: capped exponential windows, full jitter, reset."""

from __future__ import annotations

from email.utils import formatdate

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stageless.sdk.backoff import Backoff, retry_after_s


def test_windows_double_up_to_the_cap() -> None:
    backoff = Backoff(0.5, 30.0, uniform=lambda _low, high: high)
    assert [backoff.next_delay() for _ in range(9)] == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]


def test_reset_starts_from_the_smallest_window() -> None:
    backoff = Backoff(0.5, 30.0, uniform=lambda _low, high: high)
    for _ in range(5):
        backoff.next_delay()
    backoff.reset()
    assert backoff.attempt == 0
    assert backoff.next_delay() == 0.5


def test_full_jitter_draws_from_zero_to_the_window() -> None:
    windows: list[tuple[float, float]] = []

    def record(low: float, high: float) -> float:
        windows.append((low, high))
        return low

    backoff = Backoff(1.0, 4.0, uniform=record)
    delays = [backoff.next_delay() for _ in range(4)]
    assert windows == [(0.0, 1.0), (0.0, 2.0), (0.0, 4.0), (0.0, 4.0)]
    assert delays == [0.0, 0.0, 0.0, 0.0]


@pytest.mark.parametrize(("initial", "maximum"), [(0, 1), (-1, 1), (2, 1)])
def test_bad_bounds_are_refused(initial: float, maximum: float) -> None:
    with pytest.raises(ValueError, match="0 < initial <= maximum"):
        Backoff(initial, maximum)


@given(
    initial=st.floats(0.001, 10),
    extra=st.floats(0, 100),
    attempts=st.integers(0, 2_000),
)
def test_every_delay_is_within_bounds(initial: float, extra: float, attempts: int) -> None:
    maximum = initial + extra
    backoff = Backoff(initial, maximum)
    for _ in range(attempts % 50):
        backoff.next_delay()
    for _ in range(attempts // 50):  # far past the cap: no overflow
        backoff.next_delay()
    delay = backoff.next_delay()
    assert 0.0 <= delay <= maximum
    assert backoff.ceiling() <= maximum


@given(st.integers(0, 10**9), st.floats(0, 2e9))
def test_retry_after_in_seconds_is_read_as_given(seconds: int, now: float) -> None:
    assert retry_after_s(str(seconds), now) == seconds
    assert retry_after_s(f" {seconds} ", now) == seconds


@given(st.integers(0, 10**6), st.integers(1_000_000_000, 2_000_000_000))
def test_retry_after_as_an_http_date_counts_from_now(ahead: int, now: int) -> None:
    header = formatdate(now + ahead, usegmt=True)
    assert retry_after_s(header, now) == ahead
    assert retry_after_s(header, now + ahead + 10) == 0.0  # in the past: at once


@pytest.mark.parametrize("value", [None, "", "soon", "-5", "1.5", "٣", "Mon, 99 Foo 2020"])
def test_anything_else_is_no_retry_after(value: str | None) -> None:
    assert retry_after_s(value, 1_700_000_000.0) is None
