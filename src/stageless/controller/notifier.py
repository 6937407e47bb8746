"""Webhooks: every rollout transition POSTed to the plan's URLs, signed, retried with backoff.

Each delivery is one JSON body, sent with::

    Content-Type: application/json
    X-Stageless-Event: rollout.transition
    X-Stageless-Delivery: <uuid, the same on every retry of this delivery>
    X-Stageless-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>

The signature uses the control plane's ``webhook_secret``; a receiver recomputes it over the raw
body (:func:`verify_signature` does it) and rejects old timestamps to stop replays. Without a
secret the signature header is left out. A delivery that fails (no connection, a timeout, 408,
429 or a 5xx answer) is retried up to ``RetryPolicy.attempts`` times in all, after
exponentially growing delays with jitter; any other answer ends it (2xx delivered, other 4xx
refused). Deliveries run in the background: a slow receiver never holds up a rollout.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import random
import time
import uuid
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

__all__ = [
    "DELIVERY_HEADER",
    "EVENT_HEADER",
    "SIGNATURE_HEADER",
    "RetryPolicy",
    "WebhookNotifier",
    "sign",
    "signed_headers",
    "verify_signature",
]

log = logging.getLogger("stageless.controller")

SIGNATURE_HEADER = "X-Stageless-Signature"
DELIVERY_HEADER = "X-Stageless-Delivery"
EVENT_HEADER = "X-Stageless-Event"
DEFAULT_TOLERANCE_S = 300.0
_RETRY_STATUSES = frozenset({408, 429})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``attempts`` tries in all; before try n+1 a delay drawn from [d/2, d] where
    d = min(``max_delay_s``, ``base_delay_s`` · 2ⁿ⁻¹)."""

    attempts: int = 6
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0

    def delay(self, retry: int, rng: random.Random) -> float:
        """The pause before retry number ``retry`` (1 for the first retry)."""
        ceiling = min(self.max_delay_s, self.base_delay_s * 2.0 ** (retry - 1))
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The signature header value: ``t=<timestamp>,v1=<hex HMAC-SHA256>``."""
    digest = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify_signature(
    secret: bytes,
    header: str,
    body: bytes,
    *,
    now: float | None = None,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` within ``tolerance_s`` of ``now``."""
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        return False
    expected = sign(secret, timestamp, body).partition(",v1=")[2]
    return hmac.compare_digest(expected, parts.get("v1", ""))


def signed_headers(
    secret: bytes | None, body: bytes, *, event: str, delivery: str
) -> dict[str, str]:
    """The headers of one signed JSON request."""
    headers = {"Content-Type": "application/json", EVENT_HEADER: event, DELIVERY_HEADER: delivery}
    if secret is not None:
        headers[SIGNATURE_HEADER] = sign(secret, int(time.time()), body)
    return headers


class WebhookNotifier:
    """Sends signed notifications in background tasks; ``close()`` waits for them briefly."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        secret: bytes | None,
        retry: RetryPolicy | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._client = client
        self._secret = secret
        self._retry = retry or RetryPolicy()
        self._rng = rng or random.Random()  # noqa: S311 (jitter, not a secret)
        self._tasks: set[asyncio.Task[Any]] = set()
        self.delivered = 0
        self.failed = 0

    def notify(self, urls: Sequence[str], payload: Mapping[str, Any], *, event: str) -> None:
        """Deliver ``payload`` to every URL in the background (one delivery id each)."""
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        for url in urls:
            self._spawn(self.deliver(url, body, event=event), name=f"webhook {url}")

    async def deliver(self, url: str, body: bytes, *, event: str) -> bool:
        """One delivery with its retries; True once the receiver answered 2xx."""
        delivery = str(uuid.uuid4())
        last = ""
        for attempt in range(1, self._retry.attempts + 1):
            if attempt > 1:
                await asyncio.sleep(self._retry.delay(attempt - 1, self._rng))
            headers = signed_headers(self._secret, body, event=event, delivery=delivery)
            try:
                response = await self._client.post(url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                continue
            if response.is_success:
                self.delivered += 1
                return True
            last = f"HTTP {response.status_code}"
            if response.status_code < 500 and response.status_code not in _RETRY_STATUSES:
                break
        self.failed += 1
        log.warning("webhook %s not delivered (%s): %s", url, event, last)
        return False

    def _spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self, timeout_s: float = 2.0) -> None:
        """Give deliveries in flight ``timeout_s`` to finish, then cancel the rest."""
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=timeout_s)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
