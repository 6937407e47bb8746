"""Webhook checks against a real loopback receiver: what answers pass, fail or are asked again."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from stageless.controller import (
    SIGNATURE_HEADER,
    CheckOutcome,
    RetryPolicy,
    run_check,
    verify_signature,
)
from stageless.controller.checks import CHECK_EVENT
from tests.controller.support import WEBHOOK_SECRET, Receiver

FAST = RetryPolicy(attempts=1000, base_delay_s=0.02, max_delay_s=0.05)
PAYLOAD = {"rollout": "shop-1", "service": "shop", "step": 1}


async def check(receiver: Receiver, timeout_s: float = 5.0) -> CheckOutcome:
    async with httpx.AsyncClient() as client:
        return await run_check(
            client, receiver.url, PAYLOAD, secret=WEBHOOK_SECRET, timeout_s=timeout_s, retry=FAST
        )


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ((200, {"result": "pass", "detail": "all green"}), CheckOutcome(True, "all green")),
        (
            (200, {"result": "fail", "detail": "checkout 500s"}),
            CheckOutcome(False, "checkout 500s"),
        ),
        ((201, {"passed": False}), CheckOutcome(False, "HTTP 201")),
        ((200, {"passed": True}), CheckOutcome(True, "HTTP 200")),
        ((204, None), CheckOutcome(True, "HTTP 204")),
        ((200, ["not", "an", "object"]), CheckOutcome(True, "HTTP 200")),
        ((403, {"error": "nope"}), CheckOutcome(False, 'HTTP 403: {"error": "nope"}')),
    ],
)
async def test_an_answer_decides(answer: tuple[int, Any], expected: CheckOutcome) -> None:
    with Receiver([answer]) as receiver:
        assert await check(receiver) == expected
        (asked,) = receiver.received
    assert asked.json() == PAYLOAD
    assert asked.headers["X-Stageless-Event"] == CHECK_EVENT
    assert verify_signature(WEBHOOK_SECRET, asked.headers[SIGNATURE_HEADER], asked.body)


async def test_a_check_that_is_down_is_asked_again_until_it_answers() -> None:
    with Receiver([(503, None), (502, None), (408, None), (200, {"result": "pass"})]) as receiver:
        assert (await check(receiver)).passed is True
        assert len(receiver.received) == 4


async def test_a_check_that_never_decides_gives_none_at_its_timeout() -> None:
    with Receiver([(503, None)]) as receiver:
        outcome = await check(receiver, timeout_s=0.3)
    assert outcome.passed is None
    assert outcome.detail == "the check did not decide within 0.3 s (HTTP 503)"
