"""Strings: ``cat``, ``substr``, and ``in`` (substring or array membership).

* ``cat`` joins its arguments as JavaScript's ``Array.prototype.join("")`` does: numbers as
  JavaScript prints them (``1.0`` is ``"1"``), ``null`` as nothing, arrays joined with ``","``.
* ``substr`` takes ``String(source)`` (so ``null`` is ``"null"``), a start (negative counts from
  the end) and an optional length (negative drops that many characters from the end).
  Positions count UTF-16 code units, as in JavaScript.
* ``in`` is ``b.indexOf(a) !== -1``: a substring test when ``b`` is a string (``a`` converted
  with ``String()``), a strict-equality membership test when ``b`` is an array, ``false`` for
  anything else. A constant array compiles to set lookups.
"""

from __future__ import annotations

import math
from typing import Any

from stageless.flags.jsonlogic import js
from stageless.flags.jsonlogic.compiler import (
    Compiler,
    Evaluator,
    LimitError,
    Limits,
    OperatorCompiler,
    constant,
    contains_logic,
)
from stageless.flags.jsonlogic.operators.data import simple_key


def compile_cat(compiler: Compiler, args: list[Any], path: str) -> Evaluator:
    """Compile ``cat``."""
    parts = compiler.compile_all(args, path)
    limits = compiler.options.limits
    join_item = js.join_item
    if not parts:
        return constant("")
    if len(parts) == 2:
        left, right = parts

        def cat2(data: Any) -> str:
            x = left(data)
            y = right(data)
            if type(x) is str and type(y) is str:
                return x + y
            return join_item(x, limits) + join_item(y, limits)

        return cat2

    def cat(data: Any) -> str:
        pieces = []
        for part in parts:
            x = part(data)
            pieces.append(x if type(x) is str else join_item(x, limits))
        return "".join(pieces)

    return cat


def _integer(value: Any, limits: Limits) -> float:
    """ECMAScript ToIntegerOrInfinity: truncate towards zero; NaN is 0."""
    number = js.to_number(value, limits)
    if number != number:
        return 0
    if math.isinf(number):
        return number
    return math.trunc(number)


def js_substr(text: str, start: Any, length: Any = None, *, limits: Limits) -> str:
    """JavaScript ``text.substr(start, length)``; ``length=None`` means undefined (to the end)."""
    size = js.utf16_length(text)
    begin = _integer(start, limits)
    if begin < 0:
        begin = max(size + begin, 0)
    begin = min(begin, size)
    count = size if length is None else min(max(_integer(length, limits), 0), size)
    end = min(begin + count, size)
    if begin >= end:
        return ""
    return js.utf16_slice(text, int(begin), int(end))


def substr(source: Any, start: Any, *rest: Any, limits: Limits = js.DEFAULT_LIMITS) -> str:
    """json-logic-js ``substr(source, start[, end])`` (``rest`` holds ``end`` if given)."""
    text = js.to_string(source, limits)
    if not rest:
        return js_substr(text, start, limits=limits)
    end = rest[0]
    if end is None:  # substr(start, null): the length is 0
        return ""
    if js.less_than(end, 0, limits):
        # Negative length, PHP-style: drop -end characters from the end of the tail. JavaScript
        # adds with "+", so a string end concatenates (and then reads as NaN, hence 0).
        tail = js_substr(text, start, limits=limits)
        size = js.utf16_length(tail)
        bound = js.to_primitive(end, limits)
        if type(bound) is str:
            return js_substr(tail, 0, js.number_to_string(size) + bound, limits=limits)
        return js_substr(tail, 0, size + js.to_number(bound, limits), limits=limits)
    return js_substr(text, start, end, limits=limits)


def compile_substr(compiler: Compiler, args: list[Any], path: str) -> Evaluator:
    """Compile ``substr``."""
    parts = compiler.compile_all(args, path)[:3]
    limits = compiler.options.limits
    source = parts[0] if parts else constant(None)
    if len(parts) < 2:  # start undefined is 0
        return lambda data: js.to_string(source(data), limits)
    if len(parts) == 3:
        get_source, get_start, get_length = parts

        def substr3(data: Any) -> str:
            text = get_source(data)
            start = get_start(data)
            length = get_length(data)
            if (
                type(text) is str
                and text.isascii()
                and type(start) is int
                and type(length) is int
                and start >= 0
                and length >= 0
            ):
                return text[start : start + length]
            return substr(text, start, length, limits=limits)

        return substr3
    return lambda data: substr(*[part(data) for part in parts], limits=limits)


def index_of(needle: Any, haystack: Any, limits: Limits) -> bool:
    """json-logic-js ``in``: ``haystack.indexOf(needle) !== -1`` for a string or an array."""
    if isinstance(haystack, str):
        return bool(haystack) and js.to_string(needle, limits) in haystack
    if js.is_array(haystack):
        if len(haystack) > limits.max_array_length:
            raise LimitError(f"array has more than {limits.max_array_length} items")
        return any(js.strict_equals(item, needle) for item in haystack)
    return False


class Members:
    """A constant array prepared for strict-equality lookups of scalars."""

    def __init__(self, items: list[Any]) -> None:
        self.strings = {item for item in items if type(item) is str}
        self.numbers = {item for item in items if type(item) is int or type(item) is float}
        self.null = any(item is None for item in items)
        self.true = any(item is True for item in items)
        self.false = any(item is False for item in items)

    def contains(self, needle: Any) -> bool:
        t = type(needle)
        if t is str:
            return needle in self.strings
        if t is int or t is float:
            return js.to_number(needle) in self.numbers
        if needle is None:
            return self.null
        if needle is True:
            return self.true
        if needle is False:
            return self.false
        if js.is_array(needle) or isinstance(needle, dict):
            return False  # a constant's items are never the same object as the data's
        return index_of(needle, list(self.strings | self.numbers), js.DEFAULT_LIMITS)


def compile_in(compiler: Compiler, args: list[Any], path: str) -> Evaluator:
    """Compile ``in``."""
    parts = compiler.compile_all(args, path)
    limits = compiler.options.limits
    if len(parts) < 2:  # undefined.indexOf throws; nothing is in nothing
        return constant(False)
    needle, haystack = parts[0], parts[1]
    key = simple_key(args[0])
    raw = args[1]
    if type(raw) is list and not contains_logic(raw):
        return _in_constant_array(needle, key, Members(raw))
    if type(raw) is str:
        return _in_constant_string(needle, key, raw, limits)
    return lambda data: index_of(needle(data), haystack(data), limits)


def _in_constant_array(needle: Evaluator, key: str | None, members: Members) -> Evaluator:
    strings = members.strings
    contains = members.contains
    if key is not None:

        def in_array_key(data: Any) -> bool:
            x = data.get(key) if type(data) is dict else needle(data)
            if type(x) is str:
                return x in strings
            return contains(x)

        return in_array_key

    def in_array(data: Any) -> bool:
        x = needle(data)
        if type(x) is str:
            return x in strings
        return contains(x)

    return in_array


def _in_constant_string(needle: Evaluator, key: str | None, text: str, limits: Limits) -> Evaluator:
    if not text:
        return constant(False)  # !"" is true: json-logic-js gives false before searching
    if key is not None:

        def in_string_key(data: Any) -> bool:
            x = data.get(key) if type(data) is dict else needle(data)
            if type(x) is str:
                return x in text
            return js.to_string(x, limits) in text

        return in_string_key

    def in_string(data: Any) -> bool:
        x = needle(data)
        if type(x) is str:
            return x in text
        return js.to_string(x, limits) in text

    return in_string


STRING_OPERATORS: dict[str, OperatorCompiler] = {
    "cat": compile_cat,
    "substr": compile_substr,
    "in": compile_in,
}
