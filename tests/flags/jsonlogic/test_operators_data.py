"""``var`` and the ``$flagd`` overlay beyond the table: time, options, computed paths."""

from __future__ import annotations

import time

from stageless.clock import FakeClock
from stageless.flags.jsonlogic import Options, apply, compile_rule


def test_timestamp_is_read_at_each_evaluation_in_whole_seconds() -> None:
    clock = FakeClock(1_000.9)
    evaluate = compile_rule({"var": "$flagd.timestamp"}, Options(clock=clock))
    assert evaluate({}) == 1_000
    clock.advance(5)
    assert evaluate({}) == 1_005
    assert type(evaluate({})) is int


def test_timestamp_ramps_work_as_in_flagds_testbed() -> None:
    # timestamp-flag: -1 if the context's time is in the past, 1 if in the future.
    rule = {
        "if": [
            {">": [{"var": "$flagd.timestamp"}, {"var": "time"}]},
            -1,
            {"<": [{"var": "$flagd.timestamp"}, {"var": "time"}]},
            1,
            0,
        ]
    }
    evaluate = compile_rule(rule, Options(clock=FakeClock(1_700_000_000)))
    assert evaluate({"time": 1}) == -1
    assert evaluate({"time": 4_133_980_802}) == 1


def test_default_clock_is_the_system_clock() -> None:
    now = apply({"var": "$flagd.timestamp"})
    assert abs(now - time.time()) < 5


def test_flag_key_without_a_flag_is_missing() -> None:
    assert apply({"var": "$flagd.flagKey"}, {"$flagd": {"flagKey": "x"}}) is None
    assert apply({"var": ["$flagd.flagKey", "none"]}) == "none"
    overlay = apply({"var": "$flagd"}, {}, Options(clock=FakeClock(7)))
    assert overlay == {"timestamp": 7}


def test_computed_flagd_paths_match_literal_ones() -> None:
    options = Options(flag_key="checkout", clock=FakeClock(42))
    for segment in ("flagKey", "timestamp", "nothing"):
        literal = apply({"var": [f"$flagd.{segment}", "d"]}, {}, options)
        computed = apply(
            {"var": [{"cat": ["$flagd.", {"var": "s"}]}, "d"]}, {"s": segment}, options
        )
        assert literal == computed
    assert apply({"var": {"var": "p"}}, {"p": "$flagd"}, options) == {
        "flagKey": "checkout",
        "timestamp": 42,
    }


def test_flagd_paths_inside_map_still_read_the_overlay() -> None:
    options = Options(flag_key="k", clock=FakeClock(1))
    rule = {"map": [[1, 2], {"var": "$flagd.flagKey"}]}
    assert apply(rule, {}, options) == ["k", "k"]


def test_simple_paths_work_on_every_kind_of_data() -> None:
    evaluate = compile_rule({"var": "length"})
    assert evaluate({"length": 3}) == 3
    assert evaluate([1, 2]) == 2
    assert evaluate("abc") == 3
    assert evaluate(5) is None
    assert evaluate(None) is None
    two = compile_rule({"var": "a.b"})
    assert two({"a": {"b": 1}}) == 1
    assert two({"a": [5]}) is None
    assert two({"a": "xyz"}) is None
    assert two([{"b": 2}]) is None


def test_dynamic_default_is_only_used_when_missing() -> None:
    evaluate = compile_rule({"var": ["a", {"var": "b"}]})
    assert evaluate({"a": None, "b": 2}) is None
    assert evaluate({"b": 2}) == 2
    nested = compile_rule({"var": ["a.b.c", {"cat": ["no ", {"var": "x"}]}]})
    assert nested({"a": {"b": {"c": 0}}}) == 0
    assert nested({"x": "c"}) == "no c"


def test_missing_works_on_non_dict_data_and_tuple_keys() -> None:
    assert apply({"missing": ["0", "1"]}, ["x", ""]) == ["1"]
    assert apply({"missing": ["a"]}, "text") == ["a"]
    assert apply({"missing": [["a", "fallback"]]}, {}) == ["a", "fallback"]  # one array of keys
    assert apply({"missing": [[["a", "fallback"]]]}, {}) == []  # a key read as var [path, default]
