"""JavaScript coercions (stageless.flags.jsonlogic.js) against answers JavaScript gives."""

from __future__ import annotations

import math
from typing import Any

import pytest

from stageless.flags.jsonlogic import LimitError, Limits, js


@pytest.mark.parametrize(
    ("number", "text"),
    [
        (0, "0"),
        (-0.0, "0"),
        (1.0, "1"),
        (-1.5, "-1.5"),
        (100, "100"),
        (0.1 + 0.2, "0.30000000000000004"),
        (1e21, "1e+21"),
        (1e20, "100000000000000000000"),
        (123456789012345680000.0, "123456789012345680000"),
        (1e-7, "1e-7"),
        (1.5e-7, "1.5e-7"),
        (0.000001, "0.000001"),
        (0.0000015, "0.0000015"),
        (1.5e300, "1.5e+300"),
        (5e-324, "5e-324"),
        (2**53, "9007199254740992"),
        (2**53 + 1, "9007199254740992"),
        (2**60, "1152921504606847000"),
        (10**400, "Infinity"),
        (-(10**400), "-Infinity"),
        (math.nan, "NaN"),
        (math.inf, "Infinity"),
    ],
)
def test_numbers_print_as_javascript_prints_them(number: float, text: str) -> None:
    assert js.number_to_string(number) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "null"),
        (True, "true"),
        (False, "false"),
        ("", ""),
        ([], ""),
        ([None], ""),
        ([1, [2, [3, None]], "x"], "1,2,3,,x"),
        ({"a": 1}, "[object Object]"),
        ([{}], "[object Object]"),
        ((1, 2), "1,2"),
    ],
)
def test_to_string_is_javascript_string(value: Any, text: str) -> None:
    assert js.to_string(value) == text


@pytest.mark.parametrize(
    ("value", "number"),
    [
        (None, 0),
        (True, 1),
        (False, 0),
        ("", 0),
        ("  \n\t ", 0),
        (" 12 ", 12),
        ("\u00a012\ufeff", 12),
        ("1e3", 1000),
        (".5", 0.5),
        ("5.", 5),
        ("+5", 5),
        ("-5", -5),
        ("0x1A", 26),
        ("0b101", 5),
        ("0o17", 15),
        ("-0x1A", math.nan),
        ("Infinity", math.inf),
        ("-Infinity", -math.inf),
        ("inf", math.nan),
        ("nan", math.nan),
        ("1_000", math.nan),
        ("1e", math.nan),
        ("12px", math.nan),
        ("\u0661", math.nan),  # an Arabic-Indic digit is no digit to JavaScript
        ([], 0),
        (["7"], 7),
        ([[8]], 8),
        ([1, 2], math.nan),
        ({}, math.nan),
        (2**60, float(2**60)),
    ],
)
def test_to_number_is_javascript_number(value: Any, number: float) -> None:
    result = js.to_number(value)
    if math.isnan(number):
        assert math.isnan(result)
    else:
        assert result == number


@pytest.mark.parametrize(
    ("value", "number"),
    [
        ("12px", 12),
        ("  -1.5e2x", -150),
        ("0x10", 0),
        (".5.5", 0.5),
        ("Infinityx", math.inf),
        ("", math.nan),
        ("abc", math.nan),
        (None, math.nan),
        (True, math.nan),
        ([3, 4], 3),
        (7, 7),
    ],
)
def test_parse_float_reads_the_longest_decimal_prefix(value: Any, number: float) -> None:
    result = js.parse_float(value)
    if math.isnan(number):
        assert math.isnan(result)
    else:
        assert result == number


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, False),
        (False, False),
        (True, True),
        (0, False),
        (0.0, False),
        (math.nan, False),
        (-1, True),
        ("", False),
        ("0", True),
        (" ", True),
        ([], False),
        ([0], True),
        ([[]], True),
        ({}, True),
        ((), False),
    ],
)
def test_truthiness_is_json_logic_s(value: Any, expected: bool) -> None:
    assert js.truthy(value) is expected


# The rows and columns of the well-known JavaScript equality table, restricted to JSON values.
VALUES: list[Any] = [True, False, 1, 0, -1, "true", "false", "1", "0", "-1", "", None, [], [0], [1]]
LOOSE_TRUE_PAIRS = [
    (True, 1), (True, "1"), (True, [1]),
    (False, 0), (False, "0"), (False, ""), (False, []), (False, [0]),
    (1, "1"), (1, [1]),
    (0, "0"), (0, ""), (0, []), (0, [0]),
    (-1, "-1"),
    ("1", [1]), ("0", [0]), ("", []),
]  # fmt: skip
LOOSE_TRUE = {(repr(a), repr(b)) for a, b in LOOSE_TRUE_PAIRS}


@pytest.mark.parametrize("a", VALUES, ids=repr)
@pytest.mark.parametrize("b", VALUES, ids=repr)
def test_loose_equality_matches_the_javascript_table(a: Any, b: Any) -> None:
    identical = a is b or (type(a) is type(b) and not isinstance(a, list) and a == b)
    pair = (repr(a), repr(b))
    expected = identical or pair in LOOSE_TRUE or pair[::-1] in LOOSE_TRUE
    assert js.loose_equals(a, b) is expected


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (1, 1.0, True),
        (True, 1, False),
        (1, True, False),
        (False, 0, False),
        ("a", "a", True),
        (None, None, True),
        (math.nan, math.nan, False),
        (2**53 + 1, float(2**53), True),
        ([1], [1], False),
        ({}, {}, False),
    ],
)
def test_strict_equality(a: Any, b: Any, expected: bool) -> None:
    assert js.strict_equals(a, b) is expected
    assert js.strict_equals(b, a) is expected


def test_same_array_is_equal_to_itself() -> None:
    items = [1, 2]
    assert js.strict_equals(items, items)
    assert js.loose_equals(items, items)


@pytest.mark.parametrize(
    ("a", "b", "less"),
    [
        (1, 2, True),
        ("10", 9, False),
        ("10", "9", True),
        ("a", "B", False),
        (None, 1, True),
        ("x", 1, False),
        (1, "x", False),
        ([2], 3, True),
        ("\uffff", "\U0001f600", False),  # UTF-16 code units: 0xFFFF > 0xD83D
        ("\U0001f600", "\uffff", True),
    ],
)
def test_less_than_follows_javascript(a: Any, b: Any, less: bool) -> None:
    assert js.less_than(a, b) is less


def test_nan_compares_false_every_way() -> None:
    for compare in (js.less_than, js.less_equal, js.greater_than, js.greater_equal):
        assert compare("x", 1) is False
        assert compare(1, "x") is False


def test_deeply_nested_array_to_string_is_a_limit_error() -> None:
    value: Any = "bottom"
    for _ in range(10_000):
        value = [value]
    with pytest.raises(LimitError, match="nested too deeply"):
        js.to_string(value)
    assert js.to_string(value[0][0], Limits(max_data_depth=20_000)).endswith("bottom")


def test_shared_subarrays_cannot_blow_up_to_string() -> None:
    row = [1] * 1000
    table = [row] * 1000  # a million items through sharing, from two small lists
    with pytest.raises(LimitError, match="too large"):
        js.to_string(table)


def test_utf16_helpers_count_code_units() -> None:
    text = "a\U0001f600b"
    assert js.utf16_length(text) == 4
    assert js.utf16_slice(text, 1, 3) == "\U0001f600"
    assert js.utf16_slice(text, 3, 4) == "b"
    assert js.utf16_length("plain") == 5
