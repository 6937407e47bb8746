"""Webhook notifications against a real loopback receiver: signed bodies, retries with backoff
for failures that may pass, none for refusals, and the signature check receivers use."""

from __future__ import annotations

import itertools
import random
import time
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from stageless.controller import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    RetryPolicy,
    WebhookNotifier,
    sign,
    verify_signature,
)
from tests.controller.support import WEBHOOK_SECRET, Receiver
from tests.ports import free_port

FAST = RetryPolicy(attempts=4, base_delay_s=0.02, max_delay_s=0.1)
PAYLOAD = {"event": "rollout.transition", "rollout": "shop-1", "to": "CANARY"}


async def test_a_notification_is_signed_and_delivered_once() -> None:
    with Receiver() as receiver:
        async with httpx.AsyncClient() as client:
            notifier = WebhookNotifier(client, secret=WEBHOOK_SECRET, retry=FAST)
            notifier.notify([receiver.url + "/a", receiver.url + "/b"], PAYLOAD, event="e.x")
            await notifier.close(5)
        (first, second) = sorted(receiver.wait_for(2), key=lambda r: r.path)
    assert (notifier.delivered, notifier.failed) == (2, 0)
    assert first.path == "/a"
    assert first.json() == PAYLOAD
    assert first.headers[EVENT_HEADER] == "e.x"
    assert first.headers["Content-Type"] == "application/json"
    assert first.headers[DELIVERY_HEADER] != second.headers[DELIVERY_HEADER]
    signature = first.headers[SIGNATURE_HEADER]
    assert verify_signature(WEBHOOK_SECRET, signature, first.body)
    timestamp = int(signature.split(",")[0].removeprefix("t="))
    assert abs(timestamp - time.time()) < 60
    assert signature == sign(WEBHOOK_SECRET, timestamp, first.body)


async def test_failures_that_may_pass_are_retried_with_the_same_delivery_id() -> None:
    answers: list[tuple[int, Any]] = [(503, None), (429, None), (200, {})]
    with Receiver(answers) as receiver:
        async with httpx.AsyncClient() as client:
            notifier = WebhookNotifier(client, secret=WEBHOOK_SECRET, retry=FAST)
            assert await notifier.deliver(receiver.url, b'{"n": 1}', event="e")
        tries = receiver.wait_for(3)
    assert len(tries) == 3
    assert len({t.headers[DELIVERY_HEADER] for t in tries}) == 1
    assert all(verify_signature(WEBHOOK_SECRET, t.headers[SIGNATURE_HEADER], t.body) for t in tries)
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(tries)]
    assert all(gap >= 0.01 for gap in gaps), gaps  # backed off (at least half of 0.02 s)


async def test_a_refusal_is_not_retried_and_an_absent_receiver_is_given_up_on() -> None:
    with Receiver([(400, {"error": "no"})]) as receiver:
        async with httpx.AsyncClient() as client:
            notifier = WebhookNotifier(client, secret=None, retry=FAST)
            assert not await notifier.deliver(receiver.url, b"{}", event="e")
            nobody = f"http://127.0.0.1:{free_port()}/hook"
            started = time.monotonic()
            assert not await notifier.deliver(nobody, b"{}", event="e")
            assert time.monotonic() - started < 2
        (only,) = receiver.received
    assert SIGNATURE_HEADER not in only.headers  # no secret: unsigned
    assert notifier.failed == 2


def test_a_signature_is_refused_when_tampered_stale_or_malformed() -> None:
    body = b'{"a": 1}'
    now = time.time()
    header = sign(WEBHOOK_SECRET, int(now), body)
    assert verify_signature(WEBHOOK_SECRET, header, body, now=now)
    assert not verify_signature(WEBHOOK_SECRET, header, body + b"x", now=now)
    assert not verify_signature(b"another-secret-0123456789abcdef0123", header, body, now=now)
    assert not verify_signature(WEBHOOK_SECRET, header, body, now=now + 301)
    assert not verify_signature(WEBHOOK_SECRET, "v1=abc", body, now=now)
    assert not verify_signature(WEBHOOK_SECRET, "t=x,v1=abc", body, now=now)


@given(st.integers(1, 30), st.floats(0.001, 10), st.floats(0.001, 100), st.integers(0, 2**32))
def test_a_delay_is_between_half_and_all_of_its_capped_exponential_ceiling(
    retry: int, base: float, cap: float, seed: int
) -> None:
    policy = RetryPolicy(attempts=retry + 1, base_delay_s=base, max_delay_s=cap)
    ceiling = min(cap, base * 2.0 ** (retry - 1))
    delay = policy.delay(retry, random.Random(seed))  # noqa: S311 - jitter
    assert ceiling / 2 <= delay <= ceiling


@pytest.mark.parametrize("attempts", [1, 3])
async def test_attempts_bound_the_tries(attempts: int) -> None:
    with Receiver([(500, None)]) as receiver:
        async with httpx.AsyncClient() as client:
            notifier = WebhookNotifier(
                client, secret=WEBHOOK_SECRET, retry=RetryPolicy(attempts, 0.01, 0.02)
            )
            assert not await notifier.deliver(receiver.url, b"{}", event="e")
        assert len(receiver.received) == attempts
