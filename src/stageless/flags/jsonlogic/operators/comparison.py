"""Comparisons: ``<``, ``<=``, ``>``, ``>=``, with JavaScript's coercions.

Two strings compare as strings (by UTF-16 code units); anything else compares as numbers
(``null`` is 0, ``"10"`` is 10, ``[5]`` is 5), and NaN makes every comparison false. ``<`` and
``<=`` with three arguments test "between": ``{"<": [0, {"var": "x"}, 10]}`` is ``0 < x < 10``.
``>`` and ``>=`` use two arguments; fewer than two give ``false``.

A constant number on one side compiles to a fast path that compares ints and floats directly
and falls back to the full coercion only for other types.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from stageless.flags.jsonlogic import js
from stageless.flags.jsonlogic.compiler import (
    Compiler,
    Evaluator,
    Limits,
    OperatorCompiler,
    constant,
    contains_logic,
)
from stageless.flags.jsonlogic.operators.data import simple_key

Fast = Callable[[Any, Any], bool]
Slow = Callable[[Any, Any, Limits], bool]

_FAST: dict[str, Fast] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_SLOW: dict[str, Slow] = {
    "<": js.less_than,
    "<=": js.less_equal,
    ">": js.greater_than,
    ">=": js.greater_equal,
}
_MIRROR = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}


def _comparison(symbol: str, *, between: bool) -> OperatorCompiler:
    def compile_comparison(compiler: Compiler, args: list[Any], path: str) -> Evaluator:
        parts = compiler.compile_all(args, path)
        limits = compiler.options.limits
        if len(args) < 2:  # comparing with undefined is false
            return constant(False)
        if between and len(args) > 2:
            return _between(symbol, args, parts, limits)
        if _constant_number(args[1]):
            return _against(symbol, parts[0], simple_key(args[0]), args[1], limits)
        if _constant_number(args[0]):
            return _against(_MIRROR[symbol], parts[1], simple_key(args[1]), args[0], limits)
        slow = _SLOW[symbol]
        left, right = parts[0], parts[1]
        return lambda data: slow(left(data), right(data), limits)

    return compile_comparison


def _constant_number(raw: Any) -> bool:
    return not contains_logic(raw) and js.is_safe_number(raw)


def _against(
    symbol: str, get: Evaluator, key: str | None, bound: int | float, limits: Limits
) -> Evaluator:
    """``x <symbol> bound`` for a constant number ``bound``."""
    fast = _FAST[symbol]
    slow = _SLOW[symbol]
    if key is not None:

        def compare_key(data: Any) -> bool:
            x = data.get(key) if type(data) is dict else get(data)
            t = type(x)
            if t is int or t is float:
                return fast(x, bound)
            return slow(x, bound, limits)

        return compare_key

    def compare(data: Any) -> bool:
        x = get(data)
        t = type(x)
        if t is int or t is float:
            return fast(x, bound)
        return slow(x, bound, limits)

    return compare


def _between(symbol: str, args: list[Any], parts: list[Evaluator], limits: Limits) -> Evaluator:
    fast = _FAST[symbol]
    slow = _SLOW[symbol]
    low, get, high = parts[0], parts[1], parts[2]
    if _constant_number(args[0]) and _constant_number(args[2]):
        lo, hi = args[0], args[2]

        def between_constants(data: Any) -> bool:
            x = get(data)
            t = type(x)
            if t is int or t is float:
                return fast(lo, x) and fast(x, hi)
            return slow(lo, x, limits) and slow(x, hi, limits)

        return between_constants

    def between_values(data: Any) -> bool:
        x = get(data)
        return slow(low(data), x, limits) and slow(x, high(data), limits)

    return between_values


COMPARISON_OPERATORS: dict[str, OperatorCompiler] = {
    "<": _comparison("<", between=True),
    "<=": _comparison("<=", between=True),
    ">": _comparison(">", between=False),
    ">=": _comparison(">=", between=False),
}
