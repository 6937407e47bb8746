"""The rules of many flags as one program: one function that returns every result.

For a caller that evaluates the same flags for each context (the OFREP bulk endpoint),
:func:`compile_program` writes the rules of many flags as one function that returns every
result. A sub-rule that several of the rules contain, and whose value cannot depend on the flag
(``stageless.flags.sharing``), is computed once per call, when first needed, into a local slot;
the top-level keys the rules read are looked up once. Arrays and objects are not kept in a slot
(JavaScript compares them by identity: two evaluations of ``map`` give arrays that are not
equal, one kept array would equal itself).

Each rule's code is written by :class:`~stageless.flags.jsonlogic.codegen.Generator`, as for
the rule alone, but for those memo slots and hoisted reads.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from stageless.flags.jsonlogic.codegen import HELPERS, MAKERS_SIZE, Generator, memoizable
from stageless.flags.jsonlogic.compiler import Options, is_logic

__all__ = ["PROGRAM_RULES", "compile_program", "generate_program"]

_programs: dict[str, Any] = {}  # program code objects by source text

_SLOT_UNSET: Any = object()  # a memo slot not computed yet in this call

PROGRAM_RULES = 64
"""Rules per program function; a longer list is cut into several (each with its own memo)."""


def _operations(rule: Any) -> Iterator[Any]:
    """Every operation in ``rule``, outermost first."""
    stack = [rule]
    while stack:
        node = stack.pop()
        if type(node) is list:
            stack.extend(reversed(node))
        elif type(node) is dict:
            if is_logic(node):
                yield node
            stack.extend(reversed(list(node.values())))


def _plain_path(raw: Any) -> str | None:
    """The key of a ``var`` that reads one top-level key without a default (``"k"``,
    ``["k"]``, ``["k", null]``), else None."""
    if type(raw) is list and (len(raw) == 1 or (len(raw) == 2 and raw[1] is None)):
        raw = raw[0]
    if type(raw) is str and raw and "." not in raw:
        return raw
    return None


def generate_program(
    rules: Sequence[tuple[Any, Options] | None],
    key_of: Callable[[Any], str | None],
) -> tuple[str, dict[str, Any]]:
    """The source of a function of the data that returns every rule's result, in order.

    ``rules`` holds each rule with the options it is compiled with (its flag's key), or
    ``None`` for a slot that has no rule (its result is ``_failed``). ``key_of`` names the
    sub-rules whose value cannot depend on those options (``stageless.flags.sharing``: equal
    keys, equal values for the same data); the ones that occur more than once across the
    rules are computed once per call, when first needed (short-circuits are kept: a sub-rule
    that an ``and`` never reaches is not computed). A rule that raises gets ``_failed``
    and the others still run; a memo slot whose computation raised stays unset, so another
    occurrence raises the same error where the rule alone would have. A top-level key that
    more than one ``var`` reads is read once, at the start, and whether it holds a number is
    tested once where rules compare it with a number.

    The source defines ``_program``, which reads the bound values (and ``_U``, ``_failed``
    and ``_Exception``) as globals: a program has globals of its own, so that a call copies
    no closure cells (a program binds a few constants per rule). It expects a ``dict``.
    """
    counts: Counter[str] = Counter()
    reads: Counter[str] = Counter()
    for item in rules:
        if item is not None:
            for operation in _operations(item[0]):
                if memoizable(operation):
                    key = key_of(operation)
                    if key is not None:
                        counts[key] += 1
                else:
                    path = _plain_path(operation["var"])
                    if path is not None:
                        reads[path] += 1
    common = frozenset(key for key, count in counts.items() if count > 1)
    generator = Generator(Options(), common, key_of)
    generator.hoisted = frozenset(key for key, count in reads.items() if count > 1)
    body: list[str] = []
    for index, item in enumerate(rules):
        if item is None:
            body.append(f"    _r{index} = _failed")
            continue
        rule, options = item
        generator.options = options
        generator.temps = 0  # no temporary outlives its rule's statement
        code, _ = generator.expression(rule, 0)
        body.append(f"    try:\n        _r{index} = {code}")
        body.append(f"    except _Exception:\n        _r{index} = _failed")
    if generator.slots:
        body.insert(0, f"    {' = '.join(generator.slots.values())} = _U")
    for local, number in reversed(generator.numeric.items()):
        body.insert(0, f"    {number} = type({local}) in _NUMBER")
    for key, local in generator.reads.values():
        body.insert(0, f"    {local} = data.get({key})")
    results = "".join(f"_r{index}, " for index in range(len(rules)))
    source = "def _program(data):\n" + "\n".join(body) + f"\n    return ({results})\n"
    return source, generator.namespace


def compile_program(
    rules: Sequence[tuple[Any, Options] | None],
    key_of: Callable[[Any], str | None],
    failed: Any,
) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """One function that evaluates every rule of ``rules`` for a ``dict`` of data and returns
    their results in order, as a tuple, ``failed`` for a rule that raised or a ``None`` slot:
    what calling each rule's :func:`compile_generated` function would give, with the sub-rules
    the rules have in common computed once (see :func:`generate_program`).

    Raises :class:`RuleError` as :func:`compile_rule` does for a rule that does not compile.
    """
    source, values = generate_program(rules, key_of)
    code = _programs.get(source)
    if code is None:
        code = compile(source, "<jsonlogic program>", "exec")
        if len(_programs) >= MAKERS_SIZE:
            _programs.clear()
        _programs[source] = code
    namespace: dict[str, Any] = {"__builtins__": {}, **HELPERS, **values}
    namespace.update(_U=_SLOT_UNSET, _failed=failed, _Exception=Exception)
    exec(code, namespace)  # noqa: S102  # our own source: every value in it is a name
    program: Callable[[dict[str, Any]], tuple[Any, ...]] = namespace["_program"]
    return program
