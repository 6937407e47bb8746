"""Compile JSON Logic rules into plain Python callables, once, so that evaluation walks no JSON.

A rule is compiled into an :data:`Evaluator`: a function of the data (the evaluation context)
that returns the rule's value. Each operator is compiled by an :data:`OperatorCompiler`, which
receives the compiler (to compile its sub-rules), the operator's raw arguments (always a list:
``{"var": "x"}`` arrives as ``["x"]``) and the JSON path of the operator for error messages.

Operators may look at raw arguments with :func:`is_logic` to specialise for constants, for
example ``{"in": [{"var": "country"}, ["NL", "DE"]]}`` compiles to a membership test against a
constant list with no per-call work for the list.

Limits: a rule deeper than ``Limits.max_rule_depth`` or with more than ``Limits.max_rule_nodes``
nodes is refused with a :class:`RuleError` when it is compiled, never a ``RecursionError``.
Operators that walk data (string conversion of arrays, equality of nested values, iteration)
enforce ``max_data_depth`` and ``max_array_length`` at evaluation time by raising
:class:`LimitError`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from stageless.clock import SYSTEM_CLOCK, Clock

Evaluator = Callable[[Any], Any]
"""A compiled rule: takes the data, returns the rule's value."""

OperatorCompiler = Callable[["Compiler", list[Any], str], Evaluator]
"""Compiles one operator: ``(compiler, raw_args, path) -> Evaluator``."""

FractionalVersion = Literal[2, 3]

DEFAULT_MAX_RULE_DEPTH = 64
DEFAULT_MAX_RULE_NODES = 10_000
DEFAULT_MAX_DATA_DEPTH = 64
DEFAULT_MAX_ARRAY_LENGTH = 100_000


class RuleError(ValueError):
    """A rule that cannot be compiled: an unknown operator, a malformed argument, a limit."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)


class LimitError(ValueError):
    """Evaluation stopped at an explicit limit (data too deep or an array too long)."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Explicit bounds that keep compilation and evaluation finite and free of RecursionError."""

    max_rule_depth: int = DEFAULT_MAX_RULE_DEPTH
    max_rule_nodes: int = DEFAULT_MAX_RULE_NODES
    max_data_depth: int = DEFAULT_MAX_DATA_DEPTH
    max_array_length: int = DEFAULT_MAX_ARRAY_LENGTH


@dataclass(frozen=True, slots=True)
class Options:
    """What a rule is compiled for.

    ``flag_key`` feeds ``$flagd.flagKey`` and the ``fractional`` shorthand; ``clock`` feeds
    ``$flagd.timestamp`` (Unix seconds, an integer); ``fractional_version`` picks flagd's
    bucketing: 2 (murmur3 over the string, flagd Go's current one) or 3 (murmur3 over
    deterministic CBOR).
    """

    flag_key: str | None = None
    fractional_version: FractionalVersion = 2
    clock: Clock = field(default=SYSTEM_CLOCK)
    limits: Limits = field(default_factory=Limits)


def is_logic(rule: Any) -> bool:
    """True if ``rule`` is an operation (an object with exactly one key), as in json-logic-js."""
    return type(rule) is dict and len(rule) == 1


def contains_logic(rule: Any) -> bool:
    """True if ``rule`` or anything inside a literal array of it is an operation.

    Iterative, so a literal array nested thousands of levels deep cannot overflow the stack.
    """
    stack = [rule]
    while stack:
        item = stack.pop()
        if type(item) is list:
            stack.extend(item)
        elif is_logic(item):
            return True
    return False


def child_path(path: str, op: str, index: int | None = None) -> str:
    """The JSON path of an operator's argument, e.g. ``if[1]`` under ``and[0]``."""
    here = f"{path}.{op}" if path else op
    return here if index is None else f"{here}[{index}]"


class Compiler:
    """Compiles rules with a given operator table and options."""

    __slots__ = ("_depth", "_nodes", "operators", "options")

    def __init__(self, operators: Mapping[str, OperatorCompiler], options: Options) -> None:
        self.operators = operators
        self.options = options
        self._depth = 0
        self._nodes = 0

    def compile(self, rule: Any, path: str = "") -> Evaluator:
        """Compile ``rule`` (any JSON value) into an evaluator."""
        limits = self.options.limits
        self._nodes += 1
        if self._nodes > limits.max_rule_nodes:
            raise RuleError(path, f"rule has more than {limits.max_rule_nodes} nodes")
        if self._depth >= limits.max_rule_depth:
            raise RuleError(path, f"rule is nested deeper than {limits.max_rule_depth} levels")
        self._depth += 1
        try:
            return self._compile(rule, path)
        finally:
            self._depth -= 1

    def _compile(self, rule: Any, path: str) -> Evaluator:
        if is_logic(rule):
            ((op, raw),) = rule.items()
            compile_op = self.operators.get(op)
            if compile_op is None:
                raise RuleError(path, f"unknown operator {op!r}")
            args = raw if type(raw) is list else [raw]
            return compile_op(self, args, child_path(path, op))
        if type(rule) is list:
            limit = self.options.limits.max_array_length
            if len(rule) > limit:
                raise RuleError(path, f"literal array has more than {limit} items")
            if not contains_logic(rule):
                return constant(rule)
            parts = [self.compile(item, f"{path}[{i}]") for i, item in enumerate(rule)]
            return lambda data: [part(data) for part in parts]
        if type(rule) is dict:
            # An object that is not an operation (zero or several keys) is a literal value, as in
            # json-logic-js; its inner values are not evaluated.
            return constant(rule)
        return constant(rule)

    def compile_all(self, args: list[Any], path: str) -> list[Evaluator]:
        """Compile each argument of an operator."""
        return [self.compile(arg, f"{path}[{i}]") for i, arg in enumerate(args)]


def constant(value: Any) -> Evaluator:
    """An evaluator that always returns ``value``."""
    return lambda _data: value


def compile_rule(
    rule: Any,
    options: Options | None = None,
    operators: Mapping[str, OperatorCompiler] | None = None,
) -> Evaluator:
    """Compile ``rule`` for ``options`` with an operator table (default: every operator).

    Raises :class:`RuleError` (naming the JSON path) for an unknown operator, a malformed
    argument or a rule beyond ``Limits.max_rule_depth`` / ``Limits.max_rule_nodes``.
    """
    if operators is None:
        # Imported here: the operator modules import this one.
        from stageless.flags.jsonlogic.operators import ALL_OPERATORS

        operators = ALL_OPERATORS
    return Compiler(operators, options or Options()).compile(rule)
