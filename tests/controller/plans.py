"""Rollout plans for the controller tests: a shop service, a fast judge, the usual steps."""

from __future__ import annotations

JUDGE = "judges: {default: {min_canary_requests: 200, warmup_s: 0}}\n"
HEAD = """\
service: shop
stable: {addresses: ["127.0.0.1:9001"]}
candidate: {addresses: ["127.0.0.1:9002"]}
"""


def plan(*steps: str, webhooks: str = "") -> str:
    listed = "".join(f"  - {step}\n" for step in (*steps, "{kind: promote}"))
    hooks = f"webhooks: [{{url: '{webhooks}'}}]\n" if webhooks else ""
    return f"{HEAD}steps:\n{listed}{JUDGE}{hooks}"


SHADOW = "{kind: shadow, share: 10, until: {compared: 50, duration_s: 60}}"
TESTERS = "{kind: testers}"


def canary(weight: float, min_s: float = 0.3) -> str:
    # max_duration_s is also the judge's budget in batch time, which the scripted driver makes
    # much faster than the wall clock: a day, so that no test's judge runs out of it.
    return f"{{kind: canary, weight: {weight}, min_duration_s: {min_s}, max_duration_s: 86400}}"
