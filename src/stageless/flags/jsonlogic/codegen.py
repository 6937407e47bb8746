"""Rules compiled to Python source: one generated function per rule, for the common shapes.

:func:`compile_generated` first compiles the rule to closures (:func:`compile_rule`: the same
errors, the same limits), then writes one Python function whose body is a single expression
for the operators flag targeting uses most: ``var`` with a literal path, ``if``/``?:``,
``and``, ``or``, ``!``, ``!!``, ``==``, ``===``, ``!=``, ``!==``, ``<``, ``<=``, ``>``, ``>=``,
``in``, ``starts_with``, ``ends_with`` and ``fractional`` over constant buckets. Every other
sub-rule (``cat``, arithmetic, ``sem_ver``, ``map``, a ``$flagd`` path, a computed path, ...)
stays a closure that the generated code calls; data that is not a ``dict`` goes to the closure
of the whole rule. A closure evaluation costs a Python call per operator; the generated one,
one call per rule.

The generated code does what the closures do, step by step (the same fast paths, the same
order of evaluation, the same short-circuits, the same helper functions for the JavaScript
coercions off the fast path), so its results and exceptions are the closures' for every input;
the property tests compare the two on random rules and contexts.

Security: a rule is input. No string or number from it is ever written into the source; every
constant (and every prepared set or closure) is passed to the generated code as a parameter
named from a counter (``_c0``, ``_c1``, ...) and referenced by that name, and operator symbols
are taken from this module's own tables. The code's globals are :data:`HELPERS`, with no
builtins but ``type``, ``dict``, ``list`` and ``str``. Compiled code is cached by its source
text, which depends only on the rule's shape, so flags with rules of one shape share one code
object (and one set of globals, which keeps CPython's specialised global lookups from
thrashing).

The rules of many flags as one program: :mod:`stageless.flags.jsonlogic.program`.

Nesting is bounded: a sub-rule deeper than :data:`MAX_NESTING` levels of generated code, or an
operator with more than :data:`MAX_ARGUMENTS` arguments, is called as a closure, so the source
stays far below Python's parser limits whatever the rule's depth (which
``Limits.max_rule_depth`` bounds as before).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable
from typing import Any

import mmh3

from stageless.flags.bucketing import hash_thresholds, v2_hash
from stageless.flags.jsonlogic import js
from stageless.flags.jsonlogic.compiler import (
    Compiler,
    Evaluator,
    Options,
    compile_rule,
    contains_logic,
    is_logic,
)
from stageless.flags.jsonlogic.operators import ALL_OPERATORS
from stageless.flags.jsonlogic.operators.data import FLAGD, split_path, walk
from stageless.flags.jsonlogic.operators.fractional import parse_split
from stageless.flags.jsonlogic.operators.fractional_unit import string_source
from stageless.flags.jsonlogic.operators.strings import Members, index_of

__all__ = [
    "HELPERS",
    "MAKERS_SIZE",
    "MAX_ARGUMENTS",
    "MAX_NESTING",
    "Generator",
    "compile_generated",
    "generate",
    "memoizable",
]

MAX_NESTING = 24
"""Levels of generated code (an ``if`` chain or ``and`` counts one per argument); deeper
sub-rules are called as closures."""

MAX_ARGUMENTS = 16
"""An operator with more arguments is called as a closure."""

MAKERS_SIZE = 512
_makers: dict[str, Callable[..., Evaluator]] = {}

# What an expression evaluates to, when the generator knows: a bool, a bool or None (Python's
# truthiness is then JSON Logic's, so Python's ``and``/``or``/``if`` can test it), or anything.
_BOOL = 0
_MAYBE = 1
_ANY = 2

_COMPARE = {"<": "<", "<=": "<=", ">": ">", ">=": ">="}
_MIRROR = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}
_SLOW = {"<": "_lt", "<=": "_le", ">": "_gt", ">=": "_ge"}

HELPERS: dict[str, Any] = {
    "type": type,
    "dict": dict,
    "list": list,
    "str": str,
    "_truthy": js.truthy,
    "_loose": js.loose_equals,
    "_strict": js.strict_equals,
    "_to_string": js.to_string,
    "_lt": js.less_than,
    "_le": js.less_equal,
    "_gt": js.greater_than,
    "_ge": js.greater_equal,
    "_index_of": index_of,
    "_walk": walk,
    "_bisect": bisect_right,
    "_hash_ascii": mmh3.hash,  # behind str.isascii(), as in fractional_fast
    "_v2_hash": v2_hash,
    "_NUMBER": frozenset({int, float}),
}
"""The generated code's globals: the JavaScript coercions off the fast paths, and ``type``."""

Generated = tuple[str, int]
"""A Python expression and what it evaluates to (``_BOOL``, ``_MAYBE`` or ``_ANY``)."""


class Generator:
    """Writes one rule's expression; binds its constants in ``namespace``."""

    def __init__(
        self,
        options: Options,
        common: frozenset[str] = frozenset(),
        key_of: Callable[[Any], str | None] | None = None,
    ) -> None:
        self.options = options
        self.namespace: dict[str, Any] = {}
        self._count = 0
        self.temps = 0
        self.generated = 0  # operators written as code (0: the rule is one closure call)
        # A program's sub-rules that occur more than once (by key_of), and their memo slots.
        self.common = common
        self._key_of = key_of
        self.slots: dict[str, str] = {}
        # In a program: top-level keys of the data that several rules read, read once at the
        # start of a call.
        self.hoisted: frozenset[str] = frozenset()
        self.reads: dict[str, tuple[str, str]] = {}  # key -> its bound name and its local
        self.numeric: dict[str, str] = {}  # a read's local -> the local of "is it a number"
        self._operators: dict[str, Callable[[list[Any], int], Generated | None]] = {
            "var": self._var,
            "if": self._if,
            "?:": self._if,
            "and": self._and,
            "or": self._or,
            "!": self._not,
            "!!": self._truthy,
            "==": self._equality(strict=False, negate=False),
            "===": self._equality(strict=True, negate=False),
            "!=": self._equality(strict=False, negate=True),
            "!==": self._equality(strict=True, negate=True),
            "<": self._comparison("<", between=True),
            "<=": self._comparison("<=", between=True),
            ">": self._comparison(">", between=False),
            ">=": self._comparison(">=", between=False),
            "in": self._in,
            "starts_with": self._affix("startswith"),
            "ends_with": self._affix("endswith"),
            "fractional": self._fractional,
        }

    # --- names ----------------------------------------------------------------------------

    def bind(self, value: Any) -> str:
        """A fresh name for ``value`` in the namespace (the only way data enters the code)."""
        name = f"_c{self._count}"
        self._count += 1
        self.namespace[name] = value
        return name

    def temp(self) -> str:
        """A fresh local variable (fresh within the rule: a program's rules reuse the names,
        which keeps its frame small; a frame's locals are cleared at every call)."""
        name = f"_t{self.temps}"
        self.temps += 1
        return name

    # --- rules ----------------------------------------------------------------------------

    def expression(self, rule: Any, depth: int) -> Generated:
        """The expression for ``rule`` at nesting ``depth``.

        In a program, a sub-rule that occurs more than once is computed at most once per
        call: its expression stores its value in a local slot and later occurrences read it
        (unless the value is an array or an object: see below).
        """
        if self.common and memoizable(rule) and self._key_of is not None:
            key = self._key_of(rule)
            if key is not None and key in self.common:
                slot = self.slots.get(key)
                if slot is None:
                    slot = self.slots[key] = f"_s{len(self.slots)}"
                code, kind = self._written(rule, depth + 1)
                if kind != _ANY:  # a bool or None
                    return f"({slot} if {slot} is not _U else ({slot} := {code}))", kind
                # An array or object is not kept: JavaScript compares them by identity, and
                # two evaluations of ``{"map": ...}`` give two arrays that are not equal.
                t = self.temp()
                return (
                    f"({slot} if {slot} is not _U else ({t} if type({t} := {code}) is list "
                    f"or type({t}) is dict else ({slot} := {t})))",
                    kind,
                )
        return self._written(rule, depth)

    def _written(self, rule: Any, depth: int) -> Generated:
        if is_logic(rule):
            if depth < MAX_NESTING:
                ((op, raw),) = rule.items()
                write = self._operators.get(op)
                if write is not None:
                    args = raw if type(raw) is list else [raw]
                    if len(args) <= MAX_ARGUMENTS:
                        generated = write(args, depth + 1)
                        if generated is not None:
                            self.generated += 1
                            return generated
            return self.closure(rule)
        if type(rule) is list and contains_logic(rule):
            return self.closure(rule)
        return self.constant(rule)

    def closure(self, rule: Any) -> Generated:
        """A call of the closure compiled from ``rule`` (the fallback for anything else)."""
        evaluate = Compiler(ALL_OPERATORS, self.options).compile(rule)
        return f"{self.bind(evaluate)}(data)", _ANY

    def constant(self, value: Any) -> Generated:
        """A constant: the rule's own object, as the closures return it."""
        kind = _BOOL if value is True or value is False else _MAYBE if value is None else _ANY
        return self.bind(value), kind

    def test(self, generated: Generated) -> tuple[str, str | None]:
        """A truthiness test of ``generated`` and the local holding its value (None when the
        value is the test's own, a bool or None)."""
        code, kind = generated
        if kind != _ANY:
            return code, None
        t = self.temp()
        return f"(({t} := {code}) is True or ({t} is not False and _truthy({t})))", t

    # --- operators (each mirrors its closure compiler in .operators) -----------------------

    def _var(self, args: list[Any], depth: int) -> Generated | None:
        raw_path = args[0] if args else None
        raw_default = args[1] if len(args) > 1 else None
        if contains_logic(raw_path) or contains_logic(raw_default):
            return None
        segments = split_path(raw_path, self.options)
        if segments is None:
            return "data", _ANY
        if segments[0] == FLAGD:
            return None
        if len(segments) == 1:
            if raw_default is None and segments[0] in self.hoisted:
                return self._read(segments[0]), _ANY
            key = self.bind(segments[0])
            if raw_default is None:
                return f"data.get({key})", _ANY
            return f"data.get({key}, {self.bind(raw_default)})", _ANY
        default = self.bind(raw_default)
        if len(segments) == 2:
            t = self.temp()
            first, second = self.bind(segments[0]), self.bind(segments[1])
            walk_all = f"_walk(data, {self.bind(segments)}, {default})"
            return (
                f"({t}.get({second}, {default}) if type({t} := data.get({first})) is dict "
                f"else {walk_all})",
                _ANY,
            )
        return f"_walk(data, {self.bind(segments)}, {default})", _ANY

    def _read(self, segment: str) -> str:
        """The local holding ``data.get(segment)``, read at the start of a program's call
        (a lookup in a ``dict`` with a ``str`` key: no side effect, cannot raise)."""
        read = self.reads.get(segment)
        if read is None:
            read = self.reads[segment] = (self.bind(segment), f"_v{len(self.reads)}")
        return read[1]

    def _if(self, args: list[Any], depth: int) -> Generated | None:
        pairs: list[tuple[Any, Any]] = []
        otherwise: Any = None
        for i in range(0, len(args) - 1, 2):
            if contains_logic(args[i]):
                pairs.append((args[i], args[i + 1]))
            elif js.truthy(args[i]):  # a constant true condition: nothing after it matters
                otherwise = args[i + 1]
                break
        else:
            if len(args) % 2 == 1:
                otherwise = args[-1]
        code, kind = self.expression(otherwise, depth + len(pairs))
        for level in range(len(pairs) - 1, -1, -1):
            condition, then = pairs[level]
            test, _ = self.test(self.expression(condition, depth + level))
            then_code, then_kind = self.expression(then, depth + level)
            code = f"({then_code} if {test} else {code})"
            kind = max(kind, then_kind)
        return code, kind

    def _and(self, args: list[Any], depth: int) -> Generated | None:
        return self._chain(args, depth, conjunction=True)

    def _or(self, args: list[Any], depth: int) -> Generated | None:
        return self._chain(args, depth, conjunction=False)

    def _chain(self, args: list[Any], depth: int, *, conjunction: bool) -> Generated:
        """``and`` (the first falsy value or the last) or ``or`` (the first truthy or the last)."""
        if not args:
            return self.constant(None)
        code, kind = self.expression(args[-1], depth + len(args) - 1)
        for level in range(len(args) - 2, -1, -1):
            generated = self.expression(args[level], depth + level)
            test, value = self.test(generated)
            kind = max(kind, generated[1])
            if value is None:  # a bool or None: Python's and/or mean the same
                code = f"({test} {'and' if conjunction else 'or'} {code})"
            elif conjunction:
                code = f"({code} if {test} else {value})"
            else:
                code = f"({value} if {test} else {code})"
        return code, kind

    def _not(self, args: list[Any], depth: int) -> Generated | None:
        if not args:
            return self.constant(True)
        code, kind = self.expression(args[0], depth)
        return (f"(not {code})" if kind != _ANY else f"(not _truthy({code}))"), _BOOL

    def _truthy(self, args: list[Any], depth: int) -> Generated | None:
        if not args:
            return self.constant(False)
        code, kind = self.expression(args[0], depth)
        if kind == _BOOL:
            return code, _BOOL
        return (f"({code} is True)" if kind == _MAYBE else f"_truthy({code})"), _BOOL

    def _equality(
        self, *, strict: bool, negate: bool
    ) -> Callable[[list[Any], int], Generated | None]:
        slow = "_strict" if strict else "_loose"
        limits = "" if strict else ", _limits"
        negation = "not " if negate else ""

        def equality(args: list[Any], depth: int) -> Generated | None:
            self.namespace["_limits"] = self.options.limits
            if len(args) < 2:  # the second operand is undefined
                if not args or strict:
                    return self.constant((not args) is not negate)
                code, _ = self.expression(args[0], depth)
                return f"({code} is {'not ' if negate else ''}None)", _BOOL
            if not contains_logic(args[1]) and _is_fast_constant(args[1]):
                value, other = args[1], args[0]
            elif not contains_logic(args[0]) and _is_fast_constant(args[0]):
                value, other = args[0], args[1]
            else:
                left, _ = self.expression(args[0], depth)
                right, _ = self.expression(args[1], depth)
                return f"({negation}{slow}({left}, {right}{limits}))", _BOOL
            code, _ = self.expression(other, depth)
            c = self.bind(value)
            t = self.temp()
            same_type = "is str" if type(value) is str else "in _NUMBER"
            fast = f"({t} {'!=' if negate else '=='} {c})"
            return (
                f"({fast} if type({t} := {code}) {same_type} "
                f"else ({negation}{slow}({t}, {c}{limits})))",
                _BOOL,
            )

        return equality

    def _comparison(
        self, symbol: str, *, between: bool
    ) -> Callable[[list[Any], int], Generated | None]:
        def comparison(args: list[Any], depth: int) -> Generated | None:
            self.namespace["_limits"] = self.options.limits
            if len(args) < 2:  # comparing with undefined is false
                return self.constant(False)
            fast, slow = _COMPARE[symbol], _SLOW[symbol]
            if between and len(args) > 2:
                if not (_constant_number(args[0]) and _constant_number(args[2])):
                    return None  # the closure evaluates the middle first: left to it
                low, high = self.bind(args[0]), self.bind(args[2])
                code, _ = self.expression(args[1], depth)
                t = self.temp()
                return (
                    f"(({low} {fast} {t} and {t} {fast} {high}) if type({t} := {code}) in _NUMBER"
                    f" else ({slow}({low}, {t}, _limits) and {slow}({t}, {high}, _limits)))",
                    _BOOL,
                )
            if _constant_number(args[1]):
                return self._against(symbol, args[0], args[1], depth)
            if _constant_number(args[0]):
                return self._against(_MIRROR[symbol], args[1], args[0], depth)
            left, _ = self.expression(args[0], depth)
            right, _ = self.expression(args[1], depth)
            return f"{slow}({left}, {right}, _limits)", _BOOL

        return comparison

    def _against(self, symbol: str, rule: Any, bound: Any, depth: int) -> Generated:
        code, _ = self.expression(rule, depth)
        c = self.bind(bound)
        fast, slow = _COMPARE[symbol], _SLOW[symbol]
        if code in self.numeric or any(code == local for _, local in self.reads.values()):
            # A key read once per program call: whether it is a number is tested once too.
            number = self.numeric.setdefault(code, f"_n{len(self.numeric)}")
            return f"(({code} {fast} {c}) if {number} else {slow}({code}, {c}, _limits))", _BOOL
        t = self.temp()
        return (
            f"(({t} {fast} {c}) if type({t} := {code}) in _NUMBER else {slow}({t}, {c}, _limits))",
            _BOOL,
        )

    def _in(self, args: list[Any], depth: int) -> Generated | None:
        if len(args) < 2:  # nothing is in undefined
            return self.constant(False)
        raw = args[1]
        if type(raw) is list and not contains_logic(raw):
            members = Members(raw)
            strings, contains = self.bind(members.strings), self.bind(members.contains)
            code, _ = self.expression(args[0], depth)
            t = self.temp()
            return f"(({t} in {strings}) if type({t} := {code}) is str else {contains}({t}))", _BOOL
        if type(raw) is str:
            if not raw:
                return self.constant(False)
            self.namespace["_limits"] = self.options.limits
            text = self.bind(raw)
            code, _ = self.expression(args[0], depth)
            t = self.temp()
            return (
                f"(({t} in {text}) if type({t} := {code}) is str "
                f"else (_to_string({t}, _limits) in {text}))",
                _BOOL,
            )
        self.namespace["_limits"] = self.options.limits
        needle, _ = self.expression(args[0], depth)
        haystack, _ = self.expression(raw, depth)
        return f"_index_of({needle}, {haystack}, _limits)", _BOOL

    def _affix(self, method: str) -> Callable[[list[Any], int], Generated | None]:
        def affix(args: list[Any], depth: int) -> Generated | None:
            if len(args) != 2:
                return self.constant(None)
            if is_logic(args[1]):
                return None  # a computed affix: left to the closure
            if type(args[1]) is not str:
                return self.constant(None)
            part = self.bind(args[1])
            code, _ = self.expression(args[0], depth)
            t = self.temp()
            return f"({t}.{method}({part}) if type({t} := {code}) is str else None)", _MAYBE

        return affix

    def _fractional(self, args: list[Any], depth: int) -> Generated | None:
        """flagd v2 over constant buckets with the unit read from one key of the data, as
        ``fractional_fast`` does it; everything else (and any unit that is not a ``str``) is
        the closure's."""
        if self.options.fractional_version != 2 or not args or type(args[0]) is list:
            return None
        buckets = args[1:]
        if not all(type(raw) is list and not contains_logic(raw) for raw in buckets):
            return None
        split = parse_split(buckets)
        source = string_source(Compiler(ALL_OPERATORS, self.options), args[0])
        if split is None or source is None or len(source.path) != 1:
            return None
        closure = self.bind(Compiler(ALL_OPERATORS, self.options).compile({"fractional": args}))
        variants, thresholds = self.bind(split[0]), self.bind(hash_thresholds(split[1]))
        prefix, key = self.bind(source.prefix), self.bind(source.path[0])
        t, unit = self.temp(), self.temp()
        hashed = f"(_hash_ascii({unit}, 0, False) if {unit}.isascii() else _v2_hash({unit}))"
        return (
            f"({variants}[_bisect({thresholds}, {hashed})] "
            f"if type({t} := data.get({key})) is str and ({unit} := {prefix} + {t}) is not None "
            f"else {closure}(data))",
            _ANY,
        )


def memoizable(rule: Any) -> bool:
    """An operation worth a memo slot: any but ``var`` (a dictionary lookup costs no more)."""
    return is_logic(rule) and next(iter(rule)) != "var"


def _is_fast_constant(value: Any) -> bool:
    return type(value) is str or js.is_safe_number(value)


def _constant_number(raw: Any) -> bool:
    return not contains_logic(raw) and js.is_safe_number(raw)


def generate(rule: Any, options: Options) -> tuple[str, dict[str, Any]] | None:
    """The source of ``rule``'s generated code and the values it binds, or None when nothing
    in the rule would be written as code (it is then just its closure).

    The source defines ``_make``, which takes the bound values (and ``_fallback``, the closure
    of the whole rule, for data that is not a ``dict``) and returns the rule's function. The
    values reach the function as closure variables, and its globals are :data:`HELPERS`
    only, shared by every rule of the same shape, so that Python's attribute caches stay warm.
    """
    generator = Generator(options)
    code, _ = generator.expression(rule, 0)
    if not generator.generated:
        return None
    parameters = ", ".join([*generator.namespace, "_fallback"])
    source = (
        f"def _make({parameters}):\n"
        "    def _rule(data):\n"
        "        if type(data) is not dict:\n"
        "            return _fallback(data)\n"
        f"        return {code}\n"
        "    return _rule\n"
    )
    return source, generator.namespace


def compile_generated(rule: Any, options: Options | None = None) -> Evaluator:
    """Compile ``rule`` (with every operator) to one generated Python function where it can,
    else to closures; the same results and errors as :func:`compile_rule` either way.

    Raises :class:`RuleError` as :func:`compile_rule` does.
    """
    options = options or Options()
    closure = compile_rule(rule, options)
    written = generate(rule, options)
    if written is None:
        return closure
    source, values = written
    try:
        make = _make_from(source)
    except (RecursionError, MemoryError):  # pragma: no cover - the nesting is bounded
        return closure
    rule_function: Evaluator = make(**values, _fallback=closure)
    return rule_function


def _make_from(source: str) -> Callable[..., Any]:
    """The ``_make`` that ``source`` defines, compiled once per source text."""
    make = _makers.get(source)
    if make is None:
        namespace: dict[str, Any] = {"__builtins__": {}, **HELPERS}
        code = compile(source, "<jsonlogic rule>", "exec")
        exec(code, namespace)  # noqa: S102  # our own source: every value in it is a parameter
        make = namespace["_make"]
        if len(_makers) >= MAKERS_SIZE:
            _makers.clear()
        _makers[source] = make
    return make
