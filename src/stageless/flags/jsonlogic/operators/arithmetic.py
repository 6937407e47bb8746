"""Arithmetic: ``+``, ``-``, ``*``, ``/``, ``%``, ``min``, ``max``, as json-logic-js computes them.

* ``+`` and ``*`` read each argument with JavaScript's ``parseFloat`` (``"3px"`` is 3, ``null``
  and ``true`` are NaN); ``{"+": ["1"]}`` is 1 (unary ``+`` converts to a number) and ``+`` of
  nothing is 0. ``*`` of a single argument returns that argument unchanged, as json-logic-js's
  ``reduce`` does; ``*`` of nothing is a :class:`RuleError`.
* ``-``, ``/``, ``%``, ``min`` and ``max`` use ``Number()`` (``null`` is 0, ``"0x10"`` is 16).
  ``-`` with one argument negates it; ``%`` keeps the dividend's sign.
* Numbers are JavaScript doubles: integers stay Python ints while they are exact (below
  2**53) and become floats beyond. A result that is NaN or infinite (``1 / 0``, ``{"+":
  [null]}``, ``min`` of nothing) is ``None``, JSON having neither.
"""

from __future__ import annotations

import math
from typing import Any

from stageless.flags.jsonlogic import js
from stageless.flags.jsonlogic.compiler import (
    Compiler,
    Evaluator,
    OperatorCompiler,
    RuleError,
    constant,
)

_SAFE = js.MAX_SAFE_INTEGER
finite = js.finite_or_none


def _exact(value: int | float) -> int | float:
    """A step's result as a double: an int past 2**53 is rounded to a float, as JS would."""
    if type(value) is int and not -_SAFE <= value <= _SAFE:
        return float(value)
    return value


def compile_add(compiler: Compiler, args: list[Any], path: str) -> Evaluator:
    """Compile ``+``: the sum of ``parseFloat`` of each argument."""
    parts = compiler.compile_all(args, path)
    limits = compiler.options.limits
    parse = js.parse_float
    if len(parts) == 2:
        left, right = parts

        def add2(data: Any) -> int | float | None:
            x = left(data)
            y = right(data)
            if type(x) is int and type(y) is int and -_SAFE <= x <= _SAFE and -_SAFE <= y <= _SAFE:
                total = x + y
                if -_SAFE <= total <= _SAFE:
                    return total
            return finite(_exact(parse(x, limits)) + _exact(parse(y, limits)))

        return add2

    def add(data: Any) -> int | float | None:
        total: int | float = 0
        for part in parts:
            total = _exact(total + _exact(parse(part(data), limits)))
        return finite(total)

    return add


def compile_multiply(compiler: Compiler, args: list[Any], path: str) -> Evaluator:
    """Compile ``*``: the product of ``parseFloat`` of each argument."""
    parts = compiler.compile_all(args, path)
    limits = compiler.options.limits
    parse = js.parse_float
    if not parts:
        raise RuleError(path, "'*' needs at least one argument")
    if len(parts) == 1:
        return parts[0]  # reduce() without an initial value returns a lone item untouched
    first, rest = parts[0], parts[1:]

    def multiply(data: Any) -> int | float | None:
        product = _exact(parse(first(data), limits))
        for part in rest:
            product = _exact(product * _exact(parse(part(data), limits)))
        return finite(product)

    return multiply


def compile_subtract(compiler: Compiler, args: list[Any], path: str) -> Evaluator:
    """Compile ``-``: ``a - b``, or ``-a`` with one argument."""
    parts = compiler.compile_all(args, path)
    limits = compiler.options.limits
    number = js.to_number
    if not parts:
        return constant(None)  # -undefined is NaN
    if len(parts) == 1:
        (only,) = parts
        return lambda data: finite(-number(only(data), limits))
    left, right = parts[0], parts[1]

    def subtract(data: Any) -> int | float | None:
        return finite(number(left(data), limits) - number(right(data), limits))

    return subtract


def compile_divide(compiler: Compiler, args: list[Any], path: str) -> Evaluator:
    """Compile ``/``: ``a / b``; dividing by zero gives ``None``."""
    parts = compiler.compile_all(args, path)
    limits = compiler.options.limits
    if len(parts) < 2:  # x / undefined is NaN
        return constant(None)
    left, right = parts[0], parts[1]

    def divide(data: Any) -> int | float | None:
        x = js.to_number(left(data), limits)
        y = js.to_number(right(data), limits)
        if y == 0 or y != y or x != x:
            return None
        return js.finite_or_none(x / y)

    return divide


def remainder(x: int | float, y: int | float) -> float | int | None:
    """JavaScript ``x % y``: the sign follows the dividend; NaN (``None``) for ``y == 0``."""
    if y == 0 or x != x or y != y or math.isinf(x):
        return None
    if math.isinf(y):
        return x
    if type(x) is int and type(y) is int:
        magnitude = abs(x) % abs(y)
        return -magnitude if x < 0 else magnitude
    return math.fmod(x, y)


def compile_remainder(compiler: Compiler, args: list[Any], path: str) -> Evaluator:
    """Compile ``%``."""
    parts = compiler.compile_all(args, path)
    limits = compiler.options.limits
    if len(parts) < 2:
        return constant(None)
    left, right = parts[0], parts[1]
    number = js.to_number
    return lambda data: remainder(number(left(data), limits), number(right(data), limits))


def _extreme(pick: Any) -> OperatorCompiler:
    def compile_extreme(compiler: Compiler, args: list[Any], path: str) -> Evaluator:
        parts = compiler.compile_all(args, path)
        limits = compiler.options.limits
        if not parts:
            return constant(None)  # Math.min() is Infinity, Math.max() -Infinity

        def extreme(data: Any) -> int | float | None:
            numbers = [js.to_number(part(data), limits) for part in parts]
            if any(n != n for n in numbers):
                return None
            return finite(pick(numbers))

        return extreme

    return compile_extreme


ARITHMETIC_OPERATORS: dict[str, OperatorCompiler] = {
    "+": compile_add,
    "-": compile_subtract,
    "*": compile_multiply,
    "/": compile_divide,
    "%": compile_remainder,
    "min": _extreme(min),
    "max": _extreme(max),
}
