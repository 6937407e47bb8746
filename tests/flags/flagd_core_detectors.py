"""Detectors for the documented differences between openfeature-flagd-core and Stageless.

flagd-core evaluates JSON Logic with ``panzi-json-logic``, whose coercions are Python's where
json-logic-js's (which Stageless follows) are JavaScript's. ``known_differences`` evaluates a rule
through flagd-core's own operator table with each operator wrapped in a detector, and returns
the documented cases (``KNOWN_DIFFERENCES``, see docs/conformance.md) that the operands each
operator actually received fall into.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import re
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from json_logic import jsonLogic
from json_logic.builtins import to_number as panzi_to_number
from json_logic.builtins import to_string as panzi_to_string
from openfeature.contrib.tools.flagd.core.targeting.targeting import OPERATORS

FLAG_KEY = "diff-flag"


KNOWN_DIFFERENCES = {
    "loose-equality-null-number": (
        "== / != between null and a number or boolean: flagd-core converts null to 0 "
        "(null == 0 and null == false are true); json-logic-js, and Stageless, say false"
    ),
    "string-to-number": (
        "a string compared with a number is converted with Python float() in flagd-core and "
        "with JavaScript Number() in Stageless: they disagree on '' and blank strings (JS 0, "
        "flagd-core NaN), '1_000' (flagd-core 1000, JS NaN), hex/octal/binary literals"
    ),
    "strict-equality-bool-number": (
        "=== / !== between a boolean and a number: Python's True == 1 makes flagd-core say "
        "true === 1; json-logic-js, and Stageless, say false"
    ),
    "compare-null-string": (
        "<, <=, >, >= between null and a string: flagd-core compares the text 'null'; "
        "JavaScript converts null to 0 and the string to a number"
    ),
    "between-null-third": (
        "a three-argument <, <= whose third argument is null: flagd-core treats it as the "
        "two-argument form; json-logic-js compares against null (0)"
    ),
    "cat-null": "cat of null: flagd-core writes 'null', json-logic-js (and Stageless) ''",
    "bool-to-string": (
        "a boolean turned into text (cat, in on a string): flagd-core writes 'True'/'False' "
        "(Python's str of an int subclass), json-logic-js and Stageless 'true'/'false'"
    ),
    "number-to-string": (
        "a float turned into text (cat, in on a string): flagd-core formats with '%.15g' "
        "(0.1 + 0.2 -> '0.3', -0.0 -> '-0', 1e-7 -> '1e-07'), JavaScript and Stageless use "
        "the shortest round-trip form ('0.30000000000000004', '0', '1e-7')"
    ),
    "var-default-on-null": (
        "var with a default, on a key that is present with the value null: flagd-core returns "
        "the default; json-logic-js, and Stageless, return null (the default is only for "
        "missing keys)"
    ),
    "greater-than-three-args": (
        "> and >= with three arguments: flagd-core reads them as 'between' like < and <=; "
        "json-logic-js, and Stageless, compare the first two and ignore the third"
    ),
    "fractional-lenient-weight": (
        "a fractional weight that is null or an integral float (25.0): flagd-core rejects the "
        "whole fractional (null); Stageless reads null as the default weight 1 and 25.0 as 25 "
        "(discovered; see docs/conformance.md)"
    ),
    "fractional-extra-elements": (
        "a fractional entry with more than two elements (['on', 1, 2]): flagd-core rejects the "
        "whole fractional (null); Stageless uses the first two (discovered)"
    ),
    "in-list-bool-number": (
        "in on a list with a boolean needle and a numeric element (or the reverse): Python's "
        "True == 1 makes flagd-core find it; JavaScript's includes/indexOf does not"
    ),
    "in-empty-string": (
        "in on the empty string with a needle whose text is empty ('' in ''): flagd-core finds "
        "it (Python's '' in ''); json-logic-js, and Stageless, answer false for any empty "
        "haystack (its `if (!b) return false`) (discovered)"
    ),
}


def js_string_to_number(text: str) -> float:
    """ECMAScript StringToNumber for the strings the generators make."""
    s = text.strip()
    if not s:
        return 0.0
    if re.fullmatch(r"[+-]?(Infinity|(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?)", s):
        return float(s.replace("Infinity", "inf"))
    for prefix, base in (("0x", 16), ("0o", 8), ("0b", 2)):
        if s[:2].lower() == prefix and re.fullmatch(r"[0-9a-fA-F]+", s[2:]):
            try:
                return float(int(s[2:], base))
            except ValueError:
                return math.nan
    return math.nan


def js_number_to_string(x: float) -> str:
    """ECMAScript Number::toString for a finite double (shortest round-trip digits)."""
    if x == 0:
        return "0"
    if x < 0:
        return "-" + js_number_to_string(-x)
    _, digit_tuple, exponent = Decimal(repr(x)).normalize().as_tuple()
    assert isinstance(exponent, int)
    digits = "".join(map(str, digit_tuple))
    k, n = len(digits), exponent + len(digits)
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return "0." + "0" * -n + digits
    e = n - 1
    mantissa = digits if k == 1 else digits[0] + "." + digits[1:]
    return f"{mantissa}e{'+' if e >= 0 else '-'}{abs(e)}"


def _same_number(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def _is_number(x: Any) -> bool:
    return type(x) in (int, float)


def _string_to_number_differs(x: Any) -> bool:
    return isinstance(x, str) and not _same_number(panzi_to_number(x), js_string_to_number(x))


def _float_text_differs(x: Any) -> bool:
    return type(x) is float and f"{x:.15g}" != js_number_to_string(x)


def _detect_equality(tags: set[str], a: Any, b: Any) -> None:
    if (a is None) != (b is None) and (
        _is_number(a) or _is_number(b) or bool in (type(a), type(b))
    ):
        tags.add("loose-equality-null-number")
    one_string = (isinstance(a, str) and not isinstance(b, str) and b is not None) or (
        isinstance(b, str) and not isinstance(a, str) and a is not None
    )
    if one_string and (_string_to_number_differs(a) or _string_to_number_differs(b)):
        tags.add("string-to-number")


def _detect_strict(tags: set[str], a: Any, b: Any) -> None:
    if {type(a), type(b)} & {bool} and (_is_number(a) or _is_number(b)):
        tags.add("strict-equality-bool-number")


def _detect_order(tags: set[str], args: tuple[Any, ...], name: str) -> None:
    if len(args) == 3 and name in (">", ">="):
        tags.add("greater-than-three-args")
    if len(args) == 3 and args[2] is None:
        tags.add("between-null-third")
    for a, b in itertools.pairwise(args[:3]):
        if (a is None and isinstance(b, str)) or (b is None and isinstance(a, str)):
            tags.add("compare-null-string")
        if _string_to_number_differs(a) or _string_to_number_differs(b):
            other = b if isinstance(a, str) else a
            if not isinstance(other, str):
                tags.add("string-to-number")


def _detect_cat(tags: set[str], args: tuple[Any, ...]) -> None:
    if any(a is None for a in args):
        tags.add("cat-null")
    if any(type(a) is bool for a in args):
        tags.add("bool-to-string")
    if any(_float_text_differs(a) for a in args):
        tags.add("number-to-string")


def _detect_in(tags: set[str], needle: Any, haystack: Any) -> None:
    if haystack == "" and panzi_to_string(needle) == "":
        tags.add("in-empty-string")
    if isinstance(haystack, str) and _float_text_differs(needle):
        tags.add("number-to-string")
    if isinstance(haystack, str) and type(needle) is bool:
        tags.add("bool-to-string")
    if isinstance(haystack, list):
        if type(needle) is bool and any(_is_number(x) and x == needle for x in haystack):
            tags.add("in-list-bool-number")
        if _is_number(needle) and any(type(x) is bool and x == needle for x in haystack):
            tags.add("in-list-bool-number")


def _detect_var(tags: set[str], data: Any, args: tuple[Any, ...]) -> None:
    if len(args) < 2 or args[1] is None or not isinstance(args[0], str):
        return
    node = data
    for part in args[0].split("."):
        if not isinstance(node, dict) or part not in node:
            return
        node = node[part]
    if node is None:
        tags.add("var-default-on-null")


def _detect_fractional(tags: set[str], data: Any, args: tuple[Any, ...]) -> None:
    if not args:
        return
    if isinstance(args[0], list):  # shorthand: it buckets only with a non-empty targeting key
        key = data.get("targetingKey") if isinstance(data, dict) else None
        if not isinstance(key, str) or not key:
            return
        entries = args
    elif args[0] is None:  # no bucketing value: null on both sides before weights matter
        return
    else:
        entries = args[1:]
    for entry in entries:
        if not isinstance(entry, list):
            continue
        if len(entry) > 2:
            tags.add("fractional-extra-elements")
        if len(entry) == 2 and (
            entry[1] is None or (type(entry[1]) is float and entry[1].is_integer())
        ):
            tags.add("fractional-lenient-weight")


def _detecting_operators(tags: set[str]) -> dict[str, Any]:
    """flagd-core's own operator table, each operator wrapped in its difference detector."""

    def wrap(name: str, detect: Callable[[tuple[Any, ...]], None]) -> Callable[..., Any]:
        op = OPERATORS[name]

        def run(data: Any, *args: Any) -> Any:
            detect(args)
            return op(data, *args)

        return run

    def pair(fn: Callable[[set[str], Any, Any], None]) -> Callable[[tuple[Any, ...]], None]:
        return lambda args: fn(tags, *(*args, None, None)[:2])

    ops = dict(OPERATORS)
    for name in ("==", "!="):
        ops[name] = wrap(name, pair(_detect_equality))
    for name in ("===", "!=="):
        ops[name] = wrap(name, pair(_detect_strict))

    def order(name: str) -> Callable[[tuple[Any, ...]], None]:
        return lambda args: _detect_order(tags, args, name)

    for name in ("<", "<=", ">", ">="):
        ops[name] = wrap(name, order(name))
    ops["cat"] = wrap("cat", lambda args: _detect_cat(tags, args))
    var, fractional = OPERATORS["var"], OPERATORS["fractional"]

    def detecting_var(data: Any, *args: Any) -> Any:
        _detect_var(tags, data, args)
        return var(data, *args)

    def detecting_fractional(data: Any, *args: Any) -> Any:
        _detect_fractional(tags, data, args)
        return fractional(data, *args)

    ops["var"] = detecting_var
    ops["fractional"] = detecting_fractional
    ops["in"] = wrap("in", pair(_detect_in))
    return ops


def known_differences(rule: Any, context: dict[str, Any], flag_key: str = FLAG_KEY) -> set[str]:
    """The documented differences that evaluating ``rule`` on ``context`` runs into."""
    tags: set[str] = set()
    data = {k: v for k, v in context.items() if k != "targetingKey"}
    data["$flagd"] = {"flagKey": flag_key, "timestamp": int(time.time())}
    data["targetingKey"] = context.get("targetingKey")
    # flagd-core's own outcome is what is compared; this run only detects: its errors don't count.
    with contextlib.suppress(Exception):
        jsonLogic(rule, data, _detecting_operators(tags))
    return tags
