"""Logic and equality: ``if`` (alias ``?:``), ``and``, ``or``, ``!``, ``!!``, ``==``, ``===``,
``!=``, ``!==``, and ``log`` (which returns its argument and prints nothing).

* ``if`` takes any number of arguments: condition/branch pairs, then an optional else; with no
  else and no true condition it gives ``null``. Constant conditions are decided at compile time.
* ``and`` / ``or`` short-circuit and return the deciding value itself (``{"or": [0, "x"]}``
  is ``"x"``), not a boolean; ``and`` of nothing is ``null``.
* ``==`` is JavaScript's loose equality, ``===`` its strict equality; an array or object only
  equals itself. A missing second argument is JavaScript's ``undefined``, which ``==`` only
  ``null`` (``{"==": [null]}`` is true).

Truthiness is JSON Logic's (:func:`stageless.flags.jsonlogic.js.truthy`); the closures test
``x is True`` first because most conditions are comparisons that return a bool.
"""

from __future__ import annotations

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

truthy = js.truthy


def compile_if(compiler: Compiler, args: list[Any], path: str) -> Evaluator:
    """Compile ``if`` / ``?:``."""
    parts = compiler.compile_all(args, path)  # every branch, so that errors anywhere surface
    pairs: list[tuple[Evaluator, Evaluator]] = []
    otherwise: Evaluator = constant(None)
    otherwise_raw: Any = None
    for i in range(0, len(args) - 1, 2):
        if contains_logic(args[i]):
            pairs.append((parts[i], parts[i + 1]))
        elif truthy(args[i]):  # a constant true condition: nothing after it matters
            otherwise, otherwise_raw = parts[i + 1], args[i + 1]
            break
    else:
        if len(args) % 2 == 1:
            otherwise, otherwise_raw = parts[-1], args[-1]
    if not pairs:
        return otherwise
    if len(pairs) == 1:
        if not contains_logic(otherwise_raw):
            return _if_one_else_constant(pairs[0][0], pairs[0][1], otherwise_raw)
        return _if_one(pairs[0][0], pairs[0][1], otherwise)

    def if_chain(data: Any) -> Any:
        for condition, then in pairs:
            x = condition(data)
            if x is True or (x is not False and truthy(x)):
                return then(data)
        return otherwise(data)

    return if_chain


def _if_one(condition: Evaluator, then: Evaluator, otherwise: Evaluator) -> Evaluator:
    def if_else(data: Any) -> Any:
        x = condition(data)
        if x is True or (x is not False and truthy(x)):
            return then(data)
        return otherwise(data)

    return if_else


def _if_one_else_constant(condition: Evaluator, then: Evaluator, otherwise: Any) -> Evaluator:
    def if_else_constant(data: Any) -> Any:
        x = condition(data)
        if x is True or (x is not False and truthy(x)):
            return then(data)
        return otherwise

    return if_else_constant


def compile_and(compiler: Compiler, args: list[Any], path: str) -> Evaluator:
    """Compile ``and``: the first falsy value, or the last value."""
    parts = compiler.compile_all(args, path)
    if not parts:
        return constant(None)
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        first, second = parts

        def and2(data: Any) -> Any:
            x = first(data)
            if x is True or (x is not False and truthy(x)):
                return second(data)
            return x

        return and2
    if len(parts) == 3:
        first, second, third = parts

        def and3(data: Any) -> Any:
            x = first(data)
            if x is True or (x is not False and truthy(x)):
                x = second(data)
                if x is True or (x is not False and truthy(x)):
                    return third(data)
            return x

        return and3

    def and_all(data: Any) -> Any:
        x = None
        for part in parts:
            x = part(data)
            if not (x is True or (x is not False and truthy(x))):
                return x
        return x

    return and_all


def compile_or(compiler: Compiler, args: list[Any], path: str) -> Evaluator:
    """Compile ``or``: the first truthy value, or the last value."""
    parts = compiler.compile_all(args, path)
    if not parts:
        return constant(None)
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        first, second = parts

        def or2(data: Any) -> Any:
            x = first(data)
            if x is True or (x is not False and truthy(x)):
                return x
            return second(data)

        return or2
    if len(parts) == 3:
        first, second, third = parts

        def or3(data: Any) -> Any:
            x = first(data)
            if x is True or (x is not False and truthy(x)):
                return x
            x = second(data)
            if x is True or (x is not False and truthy(x)):
                return x
            return third(data)

        return or3

    def or_all(data: Any) -> Any:
        x = None
        for part in parts:
            x = part(data)
            if x is True or (x is not False and truthy(x)):
                return x
        return x

    return or_all


def compile_not(compiler: Compiler, args: list[Any], path: str) -> Evaluator:
    """Compile ``!``: the negated truthiness of the first argument."""
    if not args:
        return constant(True)  # !undefined
    operand = compiler.compile_all(args, path)[0]

    def negation(data: Any) -> bool:
        x = operand(data)
        return x is False or (x is not True and not truthy(x))

    return negation


def compile_truthy(compiler: Compiler, args: list[Any], path: str) -> Evaluator:
    """Compile ``!!``: the truthiness of the first argument."""
    if not args:
        return constant(False)
    operand = compiler.compile_all(args, path)[0]

    def to_bool(data: Any) -> bool:
        x = operand(data)
        return x is True or (x is not False and truthy(x))

    return to_bool


def _is_fast_constant(value: Any) -> bool:
    """A constant whose equality with a str or a (safe) number is plain Python equality."""
    return type(value) is str or js.is_safe_number(value)


def _equality(strict: bool, negate: bool) -> OperatorCompiler:
    def compile_equality(compiler: Compiler, args: list[Any], path: str) -> Evaluator:
        limits = compiler.options.limits
        parts = compiler.compile_all(args, path)
        if len(args) < 2:  # the second operand is undefined
            if not args or strict:
                return constant((not args) is not negate)  # undefined === undefined only
            only = parts[0]
            return lambda data: (only(data) is None) is not negate
        left, right = parts[0], parts[1]
        if not contains_logic(args[1]) and _is_fast_constant(args[1]):
            return _equals_constant(left, simple_key(args[0]), args[1], strict, negate, limits)
        if not contains_logic(args[0]) and _is_fast_constant(args[0]):
            return _equals_constant(right, simple_key(args[1]), args[0], strict, negate, limits)
        if strict:
            return lambda data: js.strict_equals(left(data), right(data)) is not negate
        return lambda data: js.loose_equals(left(data), right(data), limits) is not negate

    return compile_equality


def _equals_constant(
    get: Evaluator, key: str | None, value: Any, strict: bool, negate: bool, limits: Limits
) -> Evaluator:
    """``x == value`` (or ``===``, negated or not) with a fast path for the same type."""
    expected = type(value)
    numeric = expected is not str

    def slow(x: Any) -> bool:
        if strict:
            return js.strict_equals(x, value) is not negate
        return js.loose_equals(x, value, limits) is not negate

    if key is not None:

        def equals_key(data: Any) -> bool:
            x = data.get(key) if type(data) is dict else get(data)
            t = type(x)
            if t is expected or (numeric and (t is int or t is float)):
                return (x == value) is not negate
            return slow(x)

        return equals_key

    def equals_value(data: Any) -> bool:
        x = get(data)
        t = type(x)
        if t is expected or (numeric and (t is int or t is float)):
            return (x == value) is not negate
        return slow(x)

    return equals_value


def compile_log(compiler: Compiler, args: list[Any], path: str) -> Evaluator:
    """Compile ``log``: returns its first argument (json-logic-js also prints it; we do not)."""
    parts = compiler.compile_all(args, path)
    return parts[0] if parts else constant(None)


LOGIC_OPERATORS: dict[str, OperatorCompiler] = {
    "if": compile_if,
    "?:": compile_if,
    "and": compile_and,
    "or": compile_or,
    "!": compile_not,
    "!!": compile_truthy,
    "==": _equality(strict=False, negate=False),
    "===": _equality(strict=True, negate=False),
    "!=": _equality(strict=False, negate=True),
    "!==": _equality(strict=True, negate=True),
    "log": compile_log,
}
