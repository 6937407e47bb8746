"""What the OFREP routes precompute and cache, so that an evaluation costs little beyond HTTP.

* ``ItemEncoder``: the JSON item of a resolution, and the counter child it counts into. The
  engine builds every successful resolution once per compiled flag set and shares it, so the
  encoding is memoized per resolution object (failures are built per evaluation and encoded
  each time).
* ``BulkPlan``: one compiled flag set's bulk answer with the context-free part done: flags
  without targeting (static, disabled, uncompilable targeting) resolve the same for every
  context, so their items are encoded once; only targeted flags are evaluated per request.
* ``AnswerCache``: finished bulk answers by (plan, raw request body), least recently used
  first out, within a byte budget. The body determines the context, and the plan the flag set
  version, so equal keys give equal answers; flag sets whose rules read ``$flagd.timestamp``
  are never cached (their answer can change with no new version). Clients that send one
  context again and again (a page load per visitor with the same attributes, a server
  revalidating without ``If-None-Match``) then cost a dictionary lookup instead of an
  evaluation of every flag. A body spelled differently (key order, spaces) is a different key,
  and only a cache miss: the ETag still uses the canonical context digest.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from stageless.api.metrics import UNKNOWN_FLAG, Batch, Countable, Metrics
from stageless.api.ofrep_cache import Entry
from stageless.flags import ErrorCode, Flag, FlagState, Resolution

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

MEMO_LIMIT = 100_000  # memoized items; old flag-set versions' ones are let go all at once
ANSWER_BUDGET_BYTES = 8 * 1024 * 1024  # bodies and keys kept by AnswerCache
MAX_CACHED_REQUEST_BYTES = 8 * 1024  # larger request bodies are evaluated every time


def success_item(resolution: Resolution) -> dict[str, Any]:
    """The OFREP body of a resolution without error (no ``value``/``variant`` when none)."""
    item: dict[str, Any] = {"key": resolution.key, "reason": str(resolution.reason)}
    if resolution.variant is not None:
        item["variant"] = resolution.variant
    item["metadata"] = dict(resolution.metadata)
    if resolution.variant is not None:
        item["value"] = resolution.value
    return item


def failure_item(resolution: Resolution) -> dict[str, Any]:
    return {
        "key": resolution.key,
        "errorCode": str(resolution.error_code),
        "errorDetails": resolution.error_message or str(resolution.error_code),
        "metadata": dict(resolution.metadata),
    }


def item(resolution: Resolution) -> dict[str, Any]:
    return success_item(resolution) if resolution.error_code is None else failure_item(resolution)


class ItemEncoder:
    """Encodes resolutions as OFREP items and names the counter child each one counts into."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        # Keyed by id(): the tuple holds the resolution, so its id cannot be reused meanwhile.
        self._memo: dict[int, tuple[Resolution, bytes, Countable]] = {}

    def encode(self, flag_set: str, resolution: Resolution) -> tuple[bytes, Countable]:
        """The JSON item of ``resolution`` and the evaluation counter of its flag and reason."""
        memo = self._memo.get(id(resolution))
        if memo is not None and memo[0] is resolution:
            return memo[1], memo[2]
        encoded = _dumps(item(resolution)).encode()
        known = resolution.error_code is not ErrorCode.FLAG_NOT_FOUND
        flag = resolution.key if known else UNKNOWN_FLAG
        child = self._metrics.evaluations.labels(flag_set, flag, str(resolution.reason))
        if resolution.error_code is None:  # errors are built per evaluation: not worth keeping
            if len(self._memo) >= MEMO_LIMIT:
                self._memo.clear()
            self._memo[id(resolution)] = (resolution, encoded, child)
        return encoded, child


def context_free(flag: Flag) -> bool:
    """Whether ``flag`` resolves the same for every context (the engine runs no rule for it)."""
    return (
        flag.state is FlagState.DISABLED
        or flag.targeting is None
        or flag.targeting_error is not None
    )


@dataclass(frozen=True, slots=True, eq=False)
class Answer:
    """A bulk answer: the comma-separated items, what the ETag hashes, what it counts."""

    flags: bytes
    tag: str  # the context digest; the items themselves when the rules read the time
    batch: Batch


class BulkPlan:
    """The bulk answer of one compiled flag set, with its context-free items encoded once."""

    __slots__ = ("_dynamic", "_encoder", "_parts", "_static", "entry", "metadata", "name")

    def __init__(self, name: str, entry: Entry, encoder: ItemEncoder) -> None:
        flags = entry.compiled.flags
        self.name = name
        self.entry = entry
        self.metadata = _dumps(dict(flags.metadata)).encode()
        self._encoder = encoder
        self._parts: list[bytes] = []
        self._dynamic: list[tuple[int, str]] = []
        self._static: list[Countable] = []
        for index, key in enumerate(flags.keys()):
            if context_free(flags.flag(key)):
                encoded, child = encoder.encode(name, flags.evaluate(key))
                self._parts.append(encoded)
                self._static.append(child)
            else:
                self._parts.append(b"")
                self._dynamic.append((index, key))

    @property
    def cacheable(self) -> bool:
        """Whether answers may be cached (no rule reads the time)."""
        return not self.entry.reads_time

    def evaluate(self, context: dict[str, Any], digest: str) -> Answer:
        """Every flag for ``context`` (whose canonical digest is ``digest``)."""
        parts = self._parts.copy()
        children = self._static.copy()
        evaluate = self.entry.compiled.flags.evaluate
        encode = self._encoder.encode
        for index, key in self._dynamic:
            encoded, child = encode(self.name, evaluate(key, context))
            parts[index] = encoded
            children.append(child)
        flags = b",".join(parts)
        tag = digest if self.cacheable else flags.decode()
        return Answer(flags, tag, Batch(children))


class AnswerCache:
    """Bulk answers by (plan, request body), least recently used out first. One event loop."""

    def __init__(self, budget: int = ANSWER_BUDGET_BYTES) -> None:
        self._budget = budget
        self._size = 0
        self._answers: OrderedDict[tuple[BulkPlan, bytes], Answer] = OrderedDict()

    def get(self, plan: BulkPlan, body: bytes) -> Answer | None:
        key = (plan, body)
        answer = self._answers.get(key)
        if answer is not None:
            self._answers.move_to_end(key)
        return answer

    def put(self, plan: BulkPlan, body: bytes, answer: Answer) -> None:
        if not plan.cacheable or len(body) > MAX_CACHED_REQUEST_BYTES:
            return
        key = (plan, body)
        if key in self._answers:
            return
        self._answers[key] = answer
        self._size += _cost(body, answer)
        while self._size > self._budget and self._answers:
            (_, old_body), old = self._answers.popitem(last=False)
            self._size -= _cost(old_body, old)

    def __len__(self) -> int:
        return len(self._answers)


def _cost(body: bytes, answer: Answer) -> int:
    return len(body) + len(answer.flags) + len(answer.tag) + 200  # + the objects around them
