"""What the OFREP routes precompute and cache, so that an evaluation costs little beyond HTTP.

* ``ItemEncoder``: the JSON item of a resolution, and the counter child it counts into. The
  engine builds every successful resolution once per compiled flag set and shares it, so the
  encoding is memoized per resolution object (failures are built per evaluation and encoded
  each time).
* ``BulkPlan``: one compiled flag set's bulk answer with the context-free part done: flags
  without targeting (static, disabled, uncompilable targeting) resolve the same for every
  context, so their items are encoded once and counted as one ``Batch``; flags that share a
  rule are decided by one call of it per request, and their items for each result are
  encoded and joined in advance; the distinct rules run as one program
  (``FlagSet.targeting_program``: what they have in common runs once). Its ``BodyTagger``
  computes the ETag with the digest of the set, version and window made once per window.
* ``AnswerCache``: finished bulk answers by (plan, raw request body), least recently used
  first out, within a byte budget. The body determines the context, and the plan the flag set
  version, so equal keys give equal answers; flag sets whose rules read ``$flagd.timestamp``
  are never cached by body (their answer can change with no new version). Clients that send one
  context again and again (a page load per visitor with the same attributes, a server
  revalidating without ``If-None-Match``) then cost a dictionary lookup instead of an
  evaluation of every flag. An answer is kept from the second time its body is evaluated, so
  contexts that never come back cost no cache insertion and eviction. A body spelled
  differently (key order, spaces) is a different key, and only a cache miss; the ETag is a
  hash of the same body (``stageless.api.ofrep``). Answers are also kept by the rules'
  results (a new user whose rules give the results of an earlier one gets that answer; the
  results already say what the rules read, the time included), in a budget of their own (a
  quarter of the first), all let go at once when it is full.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import mmh3

from stageless.api.metrics import UNKNOWN_FLAG, Batch, Countable, Metrics
from stageless.api.ofrep_cache import Entry
from stageless.flags import ErrorCode, Flag, FlagSet, FlagState, Resolution

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

MEMO_LIMIT = 100_000  # memoized items; old flag-set versions' ones are let go all at once
ANSWER_BUDGET_BYTES = 8 * 1024 * 1024  # bodies and keys kept by AnswerCache
MAX_CACHED_REQUEST_BYTES = 8 * 1024  # larger request bodies are evaluated every time
SEEN_BITS = 15  # AnswerCache's doorkeeper: 2**15 slots of one byte (32 KiB)


def etag_head(name: str, version: str, window: int | str) -> str:
    """The start of a bulk ETag: the quote and a digest of flag set, version and stream window.

    The rest is a digest of the request body (``stageless.api.ofrep.body_etag``): a tag changes
    when any of the four does. BLAKE2b over the head, once per window; see ``body_digest``.
    """
    head = f"{name}\n{version}\n{window}\n".encode()
    return '"' + hashlib.blake2b(head, digest_size=8).hexdigest()


#: The ETag's digest of a request body: MurmurHash3 x64 128-bit, seed 0, as 32 hex digits.
#: Not a cryptographic hash, and it need not be one: a tag only decides whether a client that
#: sends it back gets a 304, so a crafted collision could only make a client keep its own
#: earlier answer. Per request it costs a third of a copied BLAKE2b state fed the body (100
#: against 215 ns for a bench context, warm), and it is the same on every instance and after
#: a restart (a fixed seed), so revalidation works across instances on one database.
body_digest: Callable[[bytes], bytes] = mmh3.mmh3_x64_128_digest


class BodyTagger:
    """``body_etag`` for one flag-set version, its head made once per stream window."""

    __slots__ = ("_head", "_name", "_version", "_window")

    def __init__(self, name: str, version: str) -> None:
        self._name = name
        self._version = version
        self._window: int | None = None
        self._head = ""

    def tag(self, window: int, body: bytes) -> str:
        if window != self._window:
            self._head = etag_head(self._name, self._version, window)
            self._window = window
        return self._head + body_digest(body).hex() + '"'


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

    def encode_into(
        self,
        flag_set: str,
        resolutions: list[Resolution],
        indexes: list[int],
        parts: list[bytes],
        children: list[Countable],
    ) -> None:
        """``encode`` each resolution into ``parts`` at its index; append its counter child.

        The bulk loop: a memoized resolution costs a dictionary lookup, with no call.
        """
        memo_get = self._memo.get
        append = children.append
        for index, resolution in zip(indexes, resolutions, strict=True):
            memo = memo_get(id(resolution))
            if memo is not None and memo[0] is resolution:
                parts[index] = memo[1]
                append(memo[2])
            else:
                parts[index], child = self.encode(flag_set, resolution)
                append(child)


def context_free(flag: Flag) -> bool:
    """Whether ``flag`` resolves the same for every context (the engine runs no rule for it)."""
    return (
        flag.state is FlagState.DISABLED
        or flag.targeting is None
        or flag.targeting_error is not None
    )


class Answer(NamedTuple):
    """A bulk answer: the comma-separated items, what the ETag hashes, what it counts.

    ``tag`` is ``None`` when the ETag hashes the request body (the rules do not read the time)
    and the items themselves otherwise. ``batch`` holds the plan's batch of context-free flags
    and one counter child per targeted flag: a fresh answer adds those children to the tally
    one by one (a new ``Batch`` per request would be a new tally item each time, and folding
    thousands of them costs one ``Counter.inc`` per flag); a cached answer (``lasting``) adds
    its batch.
    A named tuple: built once per evaluated request, and a frozen dataclass costs a microsecond.
    """

    flags: bytes
    tag: str | None
    batch: Batch
    lasting: bool = False  # kept by AnswerCache: its batch is added to the tally as one item


EMPTY = Answer(b"", None, Batch(()))
"""The answer of a flag set that does not exist."""


class _RuleRun:
    """Consecutive targeted flags (in document order) decided by one shared rule.

    ``answers`` maps each rule result with a precomputed resolution for every flag of the run
    (a variant name, ``None``, ``True``/``False``) to the run's items, encoded and joined, and
    the ``Batch`` that counts them; any other result (a rule that failed, an unknown variant)
    goes through ``FlagSet.evaluate_many`` and the encoder, flag by flag.
    """

    __slots__ = ("answers", "decider", "keys", "part")

    def __init__(self, part: int, decider: int, keys: list[str]) -> None:
        self.part = part  # where the run's items go among the answer's parts
        self.decider = decider  # which entry of targeting_results decides the run
        self.keys = keys
        self.answers: dict[Any, tuple[bytes, Batch]] = {}


class BulkPlan:
    """The bulk answer of one compiled flag set, with everything context-free done once.

    The flags are cut, in document order, into runs: flags that need no rule (their items
    encoded and joined once) and flags that share one compiled rule
    (:mod:`stageless.flags.sharing`; a flag with a rule of its own is a run of one). A request
    runs each distinct rule once (``FlagSet.targeting_results``) and picks each run's items
    by the result, so a set where twenty flags carry the same rule costs one rule call and
    one dictionary lookup for them.
    """

    __slots__ = (
        "_deciders",
        "_encoder",
        "_parts",
        "_runs",
        "_static",
        "_targeting",
        "cacheable",
        "entry",
        "metadata",
        "name",
        "tagger",
    )

    def __init__(self, name: str, entry: Entry, encoder: ItemEncoder) -> None:
        flags = entry.compiled.flags
        self.name = name
        self.entry = entry
        self.cacheable = not entry.reads_time
        """Whether answers may be kept by request body (no rule reads the time)."""
        self.tagger = BodyTagger(name, entry.compiled.etag)
        self.metadata = _dumps(dict(flags.metadata)).encode()
        self._encoder = encoder
        self._parts: list[bytes] = []  # static runs' items; b"" where a rule run's go
        self._runs: list[_RuleRun] = []
        self._deciders: list[str] = []  # one flag per distinct rule
        deciders: dict[int, int] = {}  # id(rule token) -> index in _deciders
        static_children: list[Countable] = []
        static_items: list[bytes] = []
        run: _RuleRun | None = None
        run_rule: object | None = None
        for key in flags:
            if context_free(flags.flag(key)):
                encoded, child = encoder.encode(name, flags.evaluate(key))
                static_items.append(encoded)
                static_children.append(child)
                run = None
                continue
            if static_items:
                self._parts.append(b",".join(static_items))
                static_items = []
            rule = flags.rule_of(key)
            if run is not None and rule is run_rule:
                run.keys.append(key)
                continue
            decider = deciders.get(id(rule))
            if decider is None:
                decider = deciders[id(rule)] = len(self._deciders)
                self._deciders.append(key)
            run, run_rule = _RuleRun(len(self._parts), decider, [key]), rule
            self._parts.append(b"")
            self._runs.append(run)
        if static_items:
            self._parts.append(b",".join(static_items))
        for rule_run in self._runs:
            self._precompute(flags, rule_run)
        self._static = Batch(static_children)
        self._targeting = flags.targeting_program(self._deciders)

    def _precompute(self, flags: FlagSet, run: _RuleRun) -> None:
        variants = {name for key in run.keys for name in flags.flag(key).variants}
        for result in (*sorted(variants), None, True, False):
            resolutions = [flags.resolution_for(key, result) for key in run.keys]
            if any(resolution is None for resolution in resolutions):
                continue
            encoded = [self._encoder.encode(self.name, r) for r in resolutions if r is not None]
            items = b",".join(item for item, _ in encoded)
            run.answers[result] = (items, Batch(child for _, child in encoded))

    def evaluate(self, context: dict[str, Any], cache: AnswerCache | None = None) -> Answer:
        """Every flag for ``context``.

        With a ``cache``, the answer is also kept there by the rules' results: contexts that
        differ (a new user each time) but get the same result from every rule share it.
        """
        results = self._targeting(context)
        if results is not None and cache is not None:
            if type(results) is not tuple:
                results = tuple(results)
            try:  # AnswerCache.by_results read here: a method call per request saved
                found = cache.by_results.get((self, results))
            except TypeError:  # a rule returned an array or an object: never kept
                found = None
            if found is not None:
                return found
        parts = self._parts.copy()
        children: list[Countable] = [self._static]
        by_results = results is not None  # every run's items picked by its result alone
        for run in self._runs:
            answer = None
            if results is not None:
                result = results[run.decider]
                # Only these results have precomputed answers (and 1 must not find True's).
                if type(result) is str or result is None or result is True or result is False:
                    answer = run.answers.get(result)
            if answer is None:
                parts[run.part] = self._flag_by_flag(run.keys, context, children)
                by_results = False
            else:
                parts[run.part] = answer[0]
                children.append(answer[1])
        flags = b",".join(parts)
        fresh = Answer(flags, None if self.cacheable else flags.decode(), Batch(children))
        if by_results and results is not None and cache is not None:
            cache.put_by_results(self, results, fresh)
        return fresh

    def _flag_by_flag(
        self, keys: list[str], context: dict[str, Any], children: list[Countable]
    ) -> bytes:
        """The items of ``keys`` evaluated and encoded one by one (errors, odd results)."""
        resolutions = self.entry.compiled.flags.evaluate_many(keys, context)
        parts = [b""] * len(keys)
        self._encoder.encode_into(self.name, resolutions, list(range(len(keys))), parts, children)
        return b",".join(parts)


class AnswerCache:
    """Bulk answers by (plan, request body), least recently used out first. One event loop.

    An answer is kept from the second time its key is put (a doorkeeper, as in TinyLFU): a
    body seen once is remembered only by a one-byte fingerprint of its hash (1 to 255), in the
    slot the hash picks among ``2**SEEN_BITS``, so a stream of contexts that never come back
    does not pay for inserting and evicting an answer per request, while a context that
    repeats is answered from the cache from its third request on. A body is forgotten when
    another takes its slot: one that returns after k other new bodies is still remembered with
    probability about ``exp(-k / 2**SEEN_BITS)``. The table is 32 KiB and a lookup allocates
    nothing; the set of hashes it replaced (up to 32,768 of them, an int object each, then
    cleared) ran about as many instructions but took 0.3 to 0.5 µs more per new context
    in-process. A fingerprint that matches another body's by chance (1 in 255) only admits an
    answer early, never serves a wrong one (the cache is keyed by the body itself).

    Answers kept by rule results (``put_by_results``) are in ``by_results``, apart from the
    least-recently-used order: a set's rules give few combinations of results, each shared by
    many users, so they are neither moved on each use nor evicted one by one; when their own
    budget (a quarter of ``budget``) is full, they are all let go and kept afresh.
    """

    def __init__(self, budget: int = ANSWER_BUDGET_BYTES) -> None:
        self._budget = budget
        self._size = 0
        self._answers: OrderedDict[tuple[BulkPlan, bytes], Answer] = OrderedDict()
        self._seen = bytearray(1 << SEEN_BITS)  # fingerprints of bodies put once, by slot
        self._sizes: dict[tuple[BulkPlan, bytes], int] = {}
        self.by_results: dict[tuple[BulkPlan, tuple[Any, ...]], Answer] = {}
        """Answers by (plan, rule results): not in the LRU order (a lookup moves nothing)."""
        self._results_budget = budget // 4
        self._results_size = 0

    def get(self, plan: BulkPlan, body: bytes) -> Answer | None:
        key = (plan, body)
        answer = self._answers.get(key)
        if answer is not None:
            self._answers.move_to_end(key)
        return answer

    def get_by_results(self, plan: BulkPlan, results: Sequence[Any]) -> Answer | None:
        """The answer kept for these rule results (``put_by_results``), if any.

        ``BulkPlan.evaluate`` reads ``by_results`` itself, with a tuple of results.
        """
        try:
            return self.by_results.get((plan, tuple(results)))
        except TypeError:  # a rule returned an array or an object: never kept
            return None

    def put_by_results(self, plan: BulkPlan, results: Sequence[Any], answer: Answer) -> None:
        """Keep ``answer`` as the one for every context whose rules give ``results``.

        Only results that are all variant names or ``None``: a key equal to such a tuple is
        made of the same strings and ``None`` (``True == 1`` would let a rule returning 1 find
        the answer of one returning ``True``). No doorkeeper: a set's rules give few
        combinations of results, each shared by many users, and each was computed already.
        """
        for result in results:
            if type(result) is not str and result is not None:
                return
        key = (plan, tuple(results))
        if key in self.by_results:
            return
        cost = _cost(64 * len(results), answer)
        if self._results_size + cost > self._results_budget:
            self.by_results.clear()  # old versions' answers go with the rest
            self._results_size = 0
        self.by_results[key] = answer._replace(lasting=True)
        self._results_size += cost

    def lookup(self, plan: BulkPlan, body: bytes) -> tuple[Answer | None, bool]:
        """The answer kept for ``body``, or ``None`` and whether to ``keep`` the one evaluated.

        A miss passes the body by the doorkeeper: the first time it is remembered (``False``),
        the second it is admitted (``True``). One call per request instead of ``get`` and
        ``put``, the body's key hashed once.
        """
        key = (plan, body)
        answer = self._answers.get(key)
        if answer is not None:
            self._answers.move_to_end(key)
            return answer, False
        if not plan.cacheable or len(body) > MAX_CACHED_REQUEST_BYTES:
            return NOT_KEPT
        seen = hash(key)
        slot = seen & _SEEN_MASK
        mark = (seen >> SEEN_BITS) % 255 + 1  # never 0, an empty slot's byte
        if self._seen[slot] != mark:  # the usual case of a new context: checked first
            self._seen[slot] = mark
            return NOT_KEPT
        return _ADMITTED

    def keep(self, plan: BulkPlan, body: bytes, answer: Answer) -> None:
        """Keep ``answer`` for ``body``: after ``lookup`` admitted it."""
        self._keep((plan, body), answer, len(body))

    def put(self, plan: BulkPlan, body: bytes, answer: Answer) -> None:
        """``answer`` evaluated for ``body``: kept if the doorkeeper admits it (``lookup``)."""
        if self.lookup(plan, body)[1]:
            self.keep(plan, body, answer)

    def _keep(self, key: tuple[BulkPlan, bytes], answer: Answer, key_size: int) -> None:
        if key in self._answers:
            return
        self._answers[key] = answer._replace(lasting=True)
        self._sizes[key] = cost = _cost(key_size, answer)
        self._size += cost
        while self._size > self._budget and self._answers:
            old_key, _ = self._answers.popitem(last=False)
            self._size -= self._sizes.pop(old_key)

    def __len__(self) -> int:
        return len(self._answers) + len(self.by_results)


_SEEN_MASK = (1 << SEEN_BITS) - 1
NOT_KEPT: tuple[None, bool] = (None, False)
"""``lookup``'s answer when nothing is kept for a body and nothing is to be kept."""
_ADMITTED: tuple[None, bool] = (None, True)


def _cost(key_size: int, answer: Answer) -> int:
    return key_size + len(answer.flags) + len(answer.tag or "") + 200  # + the objects around
