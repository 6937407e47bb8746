"""Webhook checks: the gate of a testers step with ``approval: webhook``.

The runner POSTs a signed JSON body (as notifications are signed, ``stageless.controller.
notifier``) to the step's URL::

    {"rollout": "shop-1a2b3c4d", "service": "shop", "step": 1,
     "candidate": ["10.0.0.2:8080"], "stable": ["10.0.0.1:8080"]}

and reads the answer:

* 2xx with a JSON object ``{"result": "pass"}`` or ``{"result": "fail"}`` (or ``{"passed":
  true|false}``): that result, with the object's ``detail`` if it has one; 2xx without such an
  object: pass;
* any other 4xx: fail (the check refused the candidate);
* no answer, 408, 429 or a 5xx: asked again after a growing delay, until the step's
  ``timeout_s``; with no decision by then the outcome is ``None`` and the rollout pauses (the
  state machine's timer).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from stageless.controller.notifier import RetryPolicy, signed_headers

__all__ = ["CHECK_EVENT", "CheckOutcome", "run_check"]

CHECK_EVENT = "rollout.check"
_RETRY_STATUSES = frozenset({408, 429})


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    """A check's answer: ``passed`` True or False, or ``None`` when it never decided."""

    passed: bool | None
    detail: str


async def run_check(
    client: httpx.AsyncClient,
    url: str,
    payload: Mapping[str, Any],
    *,
    secret: bytes | None,
    timeout_s: float,
    retry: RetryPolicy | None = None,
) -> CheckOutcome:
    """Ask the check until it decides or ``timeout_s`` passes."""
    policy = retry or RetryPolicy(attempts=1_000_000, base_delay_s=1.0, max_delay_s=30.0)
    rng = random.Random()  # noqa: S311 (jitter, not a secret)
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    delivery = str(uuid.uuid4())
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    for attempt in range(1, policy.attempts + 1):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        headers = signed_headers(secret, body, event=CHECK_EVENT, delivery=delivery)
        try:
            response = await client.post(url, content=body, headers=headers, timeout=left)
        except httpx.HTTPError as exc:
            if not (isinstance(exc, httpx.TimeoutException) and last.startswith("HTTP ")):
                last = _describe(exc)  # (a timeout cut short by the deadline says less)
        else:
            outcome = _read(response)
            if outcome is not None:
                return outcome
            last = f"HTTP {response.status_code}"
        pause = min(policy.delay(attempt, rng), deadline - time.monotonic())
        if pause > 0:
            await asyncio.sleep(pause)
    return CheckOutcome(None, f"the check did not decide within {timeout_s:g} s ({last})")


def _describe(exc: httpx.HTTPError) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _read(response: httpx.Response) -> CheckOutcome | None:
    status = response.status_code
    if status >= 500 or status in _RETRY_STATUSES:
        return None
    if not response.is_success:
        return CheckOutcome(False, f"HTTP {status}: {response.text[:200]}".rstrip(": "))
    try:
        body = response.json()
    except ValueError:
        return CheckOutcome(True, f"HTTP {status}")
    if not isinstance(body, dict):
        return CheckOutcome(True, f"HTTP {status}")
    detail = str(body.get("detail", "")) or f"HTTP {status}"
    result = body.get("result")
    if result in ("pass", "fail"):
        return CheckOutcome(result == "pass", detail)
    passed = body.get("passed")
    if isinstance(passed, bool):
        return CheckOutcome(passed, detail)
    return CheckOutcome(True, detail)
