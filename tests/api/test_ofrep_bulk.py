"""The bulk answer's precomputed parts and its answer cache (``stageless.api.ofrep_bulk``).

The property tests compare ``BulkPlan`` with the engine's own ``evaluate_all`` encoded item by
item, over generated contexts; the route-level behaviour (a cached answer never outlives its
version, every served answer is counted) is in test_ofrep.py.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from stageless.api.metrics import Batch, Countable, Metrics
from stageless.api.ofrep import body_etag
from stageless.api.ofrep_bulk import (
    Answer,
    AnswerCache,
    BulkPlan,
    ItemEncoder,
    context_free,
    item,
)
from stageless.api.ofrep_cache import Entry, reads_time
from stageless.flags import parse_flag_set
from stageless.service import Compiled
from tests.api.ofrep_server import DOCUMENT

MIXED: dict[str, Any] = {
    "metadata": {"flagSetId": "mixed"},
    "flags": {
        **DOCUMENT["flags"],
        "by-country": {
            "state": "ENABLED",
            "variants": {"a": 1, "b": 2, "c": 3},
            "defaultVariant": "c",
            "targeting": {
                "if": [
                    {"in": [{"var": "country"}, ["NL", "DE"]]},
                    "a",
                    {"fractional": [{"var": "targetingKey"}, ["b", 50], ["c", 50]]},
                ]
            },
        },
        "no-default": {"state": "ENABLED", "variants": {"x": True}},
        "bad-rule": {
            "state": "ENABLED",
            "variants": {"x": True},
            "defaultVariant": "x",
            "targeting": {"no-such-operator": [1]},
        },
        "disabled-targeted": {
            "state": "DISABLED",
            "variants": {"x": True},
            "defaultVariant": "x",
            "targeting": {"if": [True, "x", None]},
        },
    },
}

contexts = st.fixed_dictionaries(
    {},
    optional={
        "targetingKey": st.text(max_size=8),
        "email": st.sampled_from(["ann@example.com", "bob@elsewhere.org", "", 3]),
        "country": st.sampled_from(["NL", "DE", "US", None]),
        "age": st.integers(-5, 120),
    },
)


def entry_of(document: dict[str, Any]) -> Entry:
    flags = parse_flag_set(document)
    return Entry(Compiled(flags, 1, '"e1"'), reads_time(flags))


def plan_of(document: dict[str, Any]) -> tuple[BulkPlan, Metrics]:
    metrics = Metrics()
    return BulkPlan("mixed", entry_of(document), ItemEncoder(metrics)), metrics


@given(contexts)
def test_the_plan_answers_what_evaluating_every_flag_answers(context: dict[str, Any]) -> None:
    plan, _ = plan_of(MIXED)
    flags = plan.entry.compiled.flags

    answer = plan.evaluate(context)

    expected = [item(r) for r in flags.evaluate_all(context).values()]
    assert json.loads(b"[" + answer.flags + b"]") == expected
    assert answer.tag is None  # the ETag hashes the request body
    assert len(leaves(answer.batch)) == len(flags)


def leaves(countable: Countable) -> list[Countable]:
    """The counter children a batch counts into, nested batches flattened."""
    if isinstance(countable, Batch):
        return [leaf for child in countable.children for leaf in leaves(child)]
    return [countable]


def test_only_flags_whose_rule_never_runs_are_context_free() -> None:
    flags = entry_of(MIXED).compiled.flags
    free = {key for key in flags if context_free(flags.flag(key))}

    assert free == {
        "headline",
        "discount",
        "max-items",
        "theme",
        "retired",
        "no-default",
        "bad-rule",
        "disabled-targeted",
    }


def test_the_batch_counts_each_flag_by_its_reason() -> None:
    plan, metrics = plan_of(MIXED)
    answer = plan.evaluate({"country": "NL", "email": "ann@example.com"})
    answer.batch.inc(2)

    def count(flag: str, reason: str) -> float:
        value = metrics.registry.get_sample_value(
            "stageless_flag_evaluations_total",
            {"flag_set": "mixed", "flag": flag, "reason": reason},
        )
        return 0.0 if value is None else value

    assert count("by-country", "TARGETING_MATCH") == 2
    assert count("new-checkout", "TARGETING_MATCH") == 2
    assert count("broken", "ERROR") == 2
    assert count("retired", "DISABLED") == 2
    assert count("headline", "STATIC") == 2


PICK = {"var": "pick"}  # whatever the context says: a variant, another string, 1, True, a list
BY_EMAIL = {
    "if": [
        {"in": [{"var": "country"}, ["NL", "DE"]]},
        {"fractional": [{"var": "email"}, ["true", 50], ["false", 50]]},
        "false",
    ]
}


def shared_flag(rule: Any, variants: dict[str, Any]) -> dict[str, Any]:
    return {"state": "ENABLED", "variants": variants, "defaultVariant": "false", "targeting": rule}


BOOLEANS = {"true": True, "false": False}
BLOB = {"if": [{"cat": [{"var": "blob"}]}, "true", "false"]}  # raises on a blob nested too deep
SHARED: dict[str, Any] = {
    "flags": {
        "static-1": {"state": "ENABLED", "variants": {"x": 1}, "defaultVariant": "x"},
        "mail-1": shared_flag(BY_EMAIL, BOOLEANS),
        "mail-2": shared_flag(BY_EMAIL, BOOLEANS),
        "static-2": {"state": "DISABLED", "variants": {"x": 1}, "defaultVariant": "x"},
        "mail-3": shared_flag(BY_EMAIL, BOOLEANS),
        "pick-1": shared_flag(PICK, BOOLEANS),
        "pick-2": shared_flag(PICK, {"a": 1, "false": 2}),
        "pick-3": shared_flag(PICK, BOOLEANS),
        "own-1": shared_flag({"fractional": [["true", 50], ["false", 50]]}, BOOLEANS),
        "own-2": shared_flag({"fractional": [["true", 50], ["false", 50]]}, BOOLEANS),
        "blob-1": shared_flag(BLOB, BOOLEANS),
        "blob-2": shared_flag(BLOB, BOOLEANS),
    }
}
picks = st.sampled_from(["a", "true", "false", "zzz", 1, 1.0, 0, True, False, None, [1], {"k": 1}])


@given(contexts, picks)
def test_flags_sharing_a_rule_answer_and_count_as_evaluating_each_flag(
    context: dict[str, Any], pick: Any
) -> None:
    plan, metrics = plan_of(SHARED)
    flags = plan.entry.compiled.flags
    context = {**context, "pick": pick}

    answer = plan.evaluate(context)
    answer.batch.inc()

    resolutions = flags.evaluate_all(context)
    assert json.loads(b"[" + answer.flags + b"]") == [item(r) for r in resolutions.values()]
    for key, resolution in resolutions.items():
        counted = metrics.registry.get_sample_value(
            "stageless_flag_evaluations_total",
            {"flag_set": "mixed", "flag": key, "reason": str(resolution.reason)},
        )
        assert counted == 1, (key, resolution)
    assert len(leaves(answer.batch)) == len(flags)


@given(st.lists(st.tuples(contexts, picks), min_size=1, max_size=12))
def test_answers_kept_by_rule_results_are_the_answers_of_each_context(
    requests: list[tuple[dict[str, Any], Any]],
) -> None:
    """One plan and one cache for a run of contexts: an answer found by the rules' results is
    the context's own answer (``True`` and ``1`` are different results), and counts as one."""
    plan, metrics = plan_of(SHARED)
    flags = plan.entry.compiled.flags
    cache = AnswerCache()
    expected_counts: dict[tuple[str, str], int] = {}
    for context, pick in requests:
        context = {**context, "pick": pick}
        answer = plan.evaluate(context, cache)
        answer.batch.inc()

        resolutions = flags.evaluate_all(context)
        assert json.loads(b"[" + answer.flags + b"]") == [item(r) for r in resolutions.values()]
        for key, resolution in resolutions.items():
            label = (key, str(resolution.reason))
            expected_counts[label] = expected_counts.get(label, 0) + 1
    for (key, reason), count in expected_counts.items():
        counted = metrics.registry.get_sample_value(
            "stageless_flag_evaluations_total", {"flag_set": "mixed", "flag": key, "reason": reason}
        )
        assert counted == count, (key, reason)


def test_contexts_with_the_same_rule_results_share_one_kept_answer() -> None:
    plan, _ = plan_of(SHARED)
    cache = AnswerCache()
    first = plan.evaluate({"country": "US", "pick": "false", "email": "1@x"}, cache)
    second = plan.evaluate({"country": "US", "pick": "false", "email": "2@x"}, cache)
    boolean = plan.evaluate({"country": "US", "pick": True}, cache)
    again = plan.evaluate({"country": "US", "pick": True}, cache)
    failed = plan.evaluate({"country": "US", "pick": [1]}, cache)
    unknown = plan.evaluate({"country": "US", "pick": "a"}, cache)  # no variant "a" for pick-1

    assert not first.lasting and second.lasting  # the second user got the first's answer
    assert second.flags == first.flags
    assert not boolean.lasting and not again.lasting  # True == 1: never a key
    assert not failed.lasting
    assert not plan.evaluate({"country": "US", "pick": "a"}, cache).lasting
    assert not unknown.lasting
    assert len(cache) == 1


def test_a_shared_rule_that_fails_gives_each_of_its_flags_the_error() -> None:
    plan, _ = plan_of(SHARED)
    blob: list[Any] = []
    for _ in range(100):  # deeper than the engine's data limit (64): ``cat`` raises
        blob = [blob]

    answer = json.loads(b"[" + plan.evaluate({"blob": blob, "pick": [1]}).flags + b"]")

    by_key = {entry["key"]: entry for entry in answer}
    assert by_key["blob-1"]["errorCode"] == by_key["blob-2"]["errorCode"] == "INVALID_CONTEXT"
    assert by_key["pick-1"]["errorCode"] == "GENERAL"  # a list is no variant
    assert by_key["mail-1"]["value"] is False  # the other runs are unaffected


def sale(rule: dict[str, Any]) -> dict[str, Any]:
    """A set of one boolean flag, ``sale``, targeted by ``rule``."""
    flag = {"variants": {"on": True, "off": False}, "defaultVariant": "off", "targeting": rule}
    return {"flags": {"sale": {"state": "ENABLED", **flag}}}


def test_time_reading_sets_tag_their_items_and_are_never_cached() -> None:
    plan, _ = plan_of(sale({"if": [{">=": [{"var": "$flagd.timestamp"}, 0]}, "on", "off"]}))
    cache = AnswerCache()
    answer = plan.evaluate({})
    put_twice(cache, plan, b"{}", answer)

    assert not plan.cacheable
    assert answer.tag == answer.flags.decode()
    assert cache.get(plan, b"{}") is None


def test_time_reading_sets_share_answers_by_rule_results_with_their_tags() -> None:
    # What the rule made of the time is in its result, so an answer kept by results is right
    # for any context and moment that give the same result; its tag is its items.
    rule = {"if": [{">=": [{"var": "$flagd.timestamp"}, {"var": "from"}]}, "on", "off"]}
    plan, _ = plan_of(sale(rule))
    cache = AnswerCache()
    started = plan.evaluate({"from": 0}, cache)
    again = plan.evaluate({"from": 1}, cache)
    later = plan.evaluate({"from": 10**12}, cache)

    assert not plan.cacheable
    assert not started.lasting and again == kept(started)  # the second from the cache
    assert b'"value":true' in again.flags and again.tag == again.flags.decode()
    assert b'"value":false' in later.flags and later.tag == later.flags.decode()
    assert later.flags != started.flags


def test_the_cache_keys_by_plan_and_body_and_keeps_within_its_budget() -> None:
    plan, _ = plan_of(MIXED)
    other, _ = plan_of(MIXED)  # another compiled version of the same document
    answer = Answer(b"x" * 100, "tag", Batch(()))
    cache = AnswerCache(budget=1_000)
    put_twice(cache, plan, b"{}", answer)

    assert cache.get(plan, b"{}") == kept(answer)
    assert cache.get(other, b"{}") is None
    assert cache.get(plan, b"{ }") is None

    for n in range(10):
        put_twice(cache, plan, f'{{"n":{n}}}'.encode(), answer)
    assert len(cache) == 3  # each costs 100 + 3 + 6-7 + 200 bytes
    assert cache.get(plan, b'{"n":9}') == kept(answer)
    assert cache.get(plan, b"{}") is None  # the least recently used went first


def test_a_recently_used_answer_outlives_older_ones() -> None:
    plan, _ = plan_of(MIXED)
    answer = Answer(b"x" * 100, "tag", Batch(()))
    cache = AnswerCache(budget=1_000)
    put_twice(cache, plan, b"1", answer)
    put_twice(cache, plan, b"2", answer)
    put_twice(cache, plan, b"3", answer)
    cache.get(plan, b"1")
    put_twice(cache, plan, b"4", answer)

    assert cache.get(plan, b"1") == kept(answer)
    assert cache.get(plan, b"2") is None


def test_answers_by_results_are_let_go_together_when_their_budget_is_full() -> None:
    plan, _ = plan_of(MIXED)
    answer = Answer(b"x" * 100, None, Batch(()))
    cache = AnswerCache(budget=4_400)  # a quarter for answers by results: 1,100 bytes
    for n in range(3):  # each costs 64 + 100 + 200 bytes
        cache.put_by_results(plan, (f"v{n}",), answer)
    kept_before = [cache.get_by_results(plan, (f"v{n}",)) for n in range(3)]
    cache.put_by_results(plan, ("v3",), answer)  # over the budget: the three go first

    assert kept_before == [kept(answer)] * 3
    assert [cache.get_by_results(plan, (f"v{n}",)) for n in range(3)] == [None] * 3
    assert cache.get_by_results(plan, ("v3",)) == kept(answer)
    assert len(cache) == 1


def test_answers_by_results_do_not_take_the_place_of_answers_by_body() -> None:
    plan, _ = plan_of(MIXED)
    answer = Answer(b"x" * 100, None, Batch(()))
    cache = AnswerCache(budget=1_000)
    put_twice(cache, plan, b"{}", answer)
    cache.put_by_results(plan, ("on",), answer)

    assert cache.get(plan, b"{}") == kept(answer)
    assert cache.get_by_results(plan, ("on",)) == kept(answer)
    assert cache.get_by_results(plan, [[1]]) is None  # unhashable results: never kept


def test_large_request_bodies_are_not_cached() -> None:
    plan, _ = plan_of(MIXED)
    cache = AnswerCache()
    body = json.dumps({"context": {"blob": "x" * 9_000}}).encode()
    put_twice(cache, plan, body, Answer(b"", "tag", Batch(())))

    assert cache.get(plan, body) is None


def test_an_answer_is_kept_from_the_second_time_its_body_is_put() -> None:
    plan, _ = plan_of(MIXED)
    first, second = Answer(b"1", None, Batch(())), Answer(b"2", None, Batch(()))
    cache = AnswerCache()

    cache.put(plan, b"{}", first)
    once = cache.get(plan, b"{}")
    cache.put(plan, b"{}", second)

    assert once is None  # a body seen once is only remembered by its hash
    assert cache.get(plan, b"{}") == kept(second)
    assert len(cache) == 1


def test_lookup_admits_a_body_the_second_time_it_misses() -> None:
    plan, _ = plan_of(MIXED)
    answer = Answer(b"1", None, Batch(()))
    cache = AnswerCache()
    first, second = cache.lookup(plan, b"{}"), cache.lookup(plan, b"{}")
    cache.keep(plan, b"{}", answer)

    assert (first, second) == ((None, False), (None, True))
    assert cache.lookup(plan, b"{}") == (kept(answer), False)
    assert cache.lookup(plan, b"x" * 9_000) == cache.lookup(plan, b"x" * 9_000) == (None, False)


def kept(answer: Answer) -> Answer:
    """``answer`` as the cache gives it back: its batch is counted as one item from then on."""
    return answer._replace(lasting=True)


def put_twice(cache: AnswerCache, plan: BulkPlan, body: bytes, answer: Answer) -> None:
    """Put an answer past the cache's doorkeeper (a body is admitted on its second put)."""
    cache.put(plan, body, answer)
    cache.put(plan, body, answer)


@given(st.lists(st.tuples(st.integers(0, 3), st.binary(max_size=40)), min_size=1, max_size=8))
def test_the_plans_tagger_gives_the_body_etag(requests: list[tuple[int, bytes]]) -> None:
    """The head is hashed once per window and copied: the same tag as hashing it all again."""
    plan, _ = plan_of(MIXED)
    for window, body in requests:
        expected = body_etag("mixed", plan.entry.compiled.etag, str(window), body)
        assert plan.tagger.tag(window, body) == expected


def test_a_set_without_targeting_is_answered_by_its_static_items() -> None:
    static = {"flags": {"a": {"state": "ENABLED", "variants": {"x": 1}, "defaultVariant": "x"}}}
    plan, _ = plan_of(static)
    cache = AnswerCache()

    for context in ({}, {"country": "NL"}):
        answer = plan.evaluate(context, cache)
        assert json.loads(b"[" + answer.flags + b"]") == [
            {"key": "a", "reason": "STATIC", "variant": "x", "metadata": {}, "value": 1}
        ]
