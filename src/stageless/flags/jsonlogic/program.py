"""The rules of many flags as one program: one function that returns every result.

For a caller that evaluates the same flags for each context (the OFREP bulk endpoint),
:func:`compile_program` writes the rules of many flags as one function that returns every
result. A sub-rule that several of the rules contain, and whose value cannot depend on the flag
(``stageless.flags.sharing``), is computed once per call, when first needed, into a local slot;
the top-level keys the rules read are looked up once. Arrays and objects are not kept in a slot
(JavaScript compares them by identity: two evaluations of ``map`` give arrays that are not
equal, one kept array would equal itself).

Each rule's code is written by :class:`~stageless.flags.jsonlogic.codegen.Generator`, as for
the rule alone, but for those memo slots and hoisted reads. The function called is a second
version of it (:func:`fast_program`) that reads a slot an earlier part of the call certainly
computed without testing it, computes the cheap common sub-rules before the rules, and runs
the first one if a rule raises.
"""

from __future__ import annotations

import ast
import copy
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
        tree = ast.parse(source, "<jsonlogic program>")
        tree.body.append(fast_program(tree.body[0]))
        code = compile(tree, "<jsonlogic program>", "exec")
        if len(_programs) >= MAKERS_SIZE:
            _programs.clear()
        _programs[source] = code
    namespace: dict[str, Any] = {"__builtins__": {}, **HELPERS, **values}
    namespace.update(_U=_SLOT_UNSET, _failed=failed, _Exception=Exception)
    exec(code, namespace)  # noqa: S102  # our own source: every value in it is a name
    program: Callable[[dict[str, Any]], tuple[Any, ...]] = namespace["_fast"]
    return program


def fast_program(program: ast.stmt) -> ast.FunctionDef:
    """``_fast``: ``_program`` for the usual call, in which no rule raises.

    Its rules run in one ``try``; if any raises, it returns ``_program(data)``, which gives
    that rule ``_failed`` and runs the others (rules have no side effects, so running them
    again changes nothing but the time). Without a rule that raised, a memo slot that an
    earlier part of the call has certainly computed (its rule reached it whatever the data:
    the first operand of an ``and``, the condition of an ``if``...) holds its value, so its
    later reads are the slot alone instead of a test of the slot and a jump: in twenty rules
    that each start with the same country test, nineteen tests of the slot fewer. Cheap
    common sub-rules are computed before the rules (``_cheap_slots``), so none tests them.
    """
    assert isinstance(program, ast.FunctionDef)  # noqa: S101  # generate_program's own shape
    program = copy.deepcopy(program)  # rewritten in place below; the caller keeps its own
    prelude: list[ast.stmt] = []
    rules: list[ast.stmt] = []
    for statement in program.body:
        if isinstance(statement, ast.Try):
            rules.extend(statement.body)  # the rule's assignment; its handler is _program's
        elif isinstance(statement, ast.Return):
            continue
        elif rules or _assigns_result(statement):
            rules.append(statement)
        else:
            prelude.append(statement)  # top-level reads and the slots set to _U
    hoisted = _cheap_slots(rules)
    known = frozenset(slot for slot, _ in hoisted)
    for statement in rules:
        assert isinstance(statement, ast.Assign)  # noqa: S101
        statement.value, known = _with_known_slots(statement.value, known)
    rules[:0] = [ast.Assign([ast.Name(slot, ast.Store())], value) for slot, value in hoisted]
    returned = program.body[-1]
    fallback = ast.Return(
        ast.Call(ast.Name("_program", ast.Load()), [ast.Name("data", ast.Load())], [])
    )
    handler = ast.ExceptHandler(ast.Name("_Exception", ast.Load()), None, [fallback])
    guarded: list[ast.stmt] = [ast.Try(rules, [handler], [], [])] if rules else []
    body: list[ast.stmt] = [*prelude, *guarded, returned]
    fast = ast.FunctionDef("_fast", program.args, body, [], None, None)
    return ast.fix_missing_locations(fast)


#: Calls a cheap sub-rule may make: type tests and string affix tests (no closure, no hashing).
_CHEAP_CALLS = frozenset({"type", "endswith", "startswith"})


def _cheap_slots(rules: list[ast.stmt]) -> list[tuple[str, ast.expr]]:
    """The memo slots ``_fast`` computes before the rules, with their computations, in order.

    A slot whose computation is cheap and calls nothing but a type test or a string affix
    test (the e-mail suffix test twenty rules share after each one's own age threshold) is
    computed once at the start, so no rule tests it: a rule that would not have reached it
    costs that computation at most once per call, and every rule that reaches it saves the
    test of the slot and a jump. Only slots whose value is kept (a bool or null) and whose
    computation reads no other slot. Harmless however the rules go: rules have no side
    effects, and if a hoisted computation raised, ``_fast`` would run ``_program``, which
    computes each slot where the rule alone would.
    """
    found: dict[str, ast.expr] = {}
    for statement in rules:
        for node in ast.walk(statement):
            slot = _slot_read(node) if isinstance(node, ast.expr) else None
            if slot is None or slot in found:
                continue
            assert isinstance(node, ast.IfExp)  # noqa: S101  # _slot_read's shape
            computed = node.orelse
            if (
                isinstance(computed, ast.NamedExpr)
                and computed.target.id == slot
                and _is_cheap(computed.value)
            ):
                found[slot] = copy.deepcopy(computed.value)
    return list(found.items())


def _is_cheap(node: ast.expr) -> bool:
    """Whether ``node`` reads no memo slot and calls only what ``_CHEAP_CALLS`` names."""
    for inner in ast.walk(node):
        if isinstance(inner, ast.expr) and _slot_read(inner) is not None:
            return False
        if isinstance(inner, _OPAQUE):
            return False
        if isinstance(inner, ast.Call):
            func = inner.func
            name = func.id if isinstance(func, ast.Name) else None
            if isinstance(func, ast.Attribute):
                name = func.attr
            if name not in _CHEAP_CALLS:
                return False
    return True


def _assigns_result(statement: ast.stmt) -> bool:
    """``_rN = ...``: a rule's result (a slot without a rule: ``_rN = _failed``)."""
    return (
        isinstance(statement, ast.Assign)
        and isinstance(statement.targets[0], ast.Name)
        and statement.targets[0].id.startswith("_r")
    )


def _slot_read(node: ast.expr) -> str | None:
    """The slot of ``(_sN if _sN is not _U else ...)``, the generator's read of a memo slot."""
    if (
        isinstance(node, ast.IfExp)
        and isinstance(node.body, ast.Name)
        and isinstance(node.test, ast.Compare)
        and isinstance(node.test.left, ast.Name)
        and node.test.left.id == node.body.id
        and isinstance(node.test.ops[0], ast.IsNot)
        and isinstance(node.test.comparators[0], ast.Name)
        and node.test.comparators[0].id == "_U"
    ):
        return node.body.id
    return None


# Not generated, and left as they are: bodies that may run any number of times, and a dict
# display (it evaluates key, value, key, value..., not its fields' order, all keys first).
_OPAQUE = (ast.Lambda, ast.GeneratorExp, ast.ListComp, ast.SetComp, ast.DictComp, ast.Dict)


def _with_known_slots(node: ast.expr, known: frozenset[str]) -> tuple[ast.expr, frozenset[str]]:
    """``node`` with its reads of slots in ``known`` made plain, and the slots certainly
    assigned once it has been evaluated without raising.

    Definite assignment in Python's order of evaluation: a walrus assigns its target; an
    ``and``/``or`` certainly evaluates only its first operand, a conditional expression its
    test and then what both branches assign, a chained comparison its first two operands;
    other expressions evaluate every child, in order.
    """
    slot = _slot_read(node)
    if slot is not None and slot in known:
        return ast.Name(slot, ast.Load()), known
    if slot is not None:
        # Unset on entry, the slot is computed now; set, it was computed earlier in this call,
        # perhaps by other code (the same sub-rule deeper in a rule may be a closure call), so
        # what its computation assigns is not known to have been assigned, only the slot
        # itself, when its value is kept (``(_sN := ...)``: a bool or null, not an array or
        # an object).
        assert isinstance(node, ast.IfExp)  # noqa: S101  # _slot_read's shape
        node.orelse, _ = _with_known_slots(node.orelse, known)
        kept = isinstance(node.orelse, ast.NamedExpr) and node.orelse.target.id == slot
        return node, known | {slot} if kept else known
    if isinstance(node, _OPAQUE):
        return node, known
    if isinstance(node, ast.NamedExpr):
        node.value, known = _with_known_slots(node.value, known)
        return node, known | {node.target.id}
    if isinstance(node, ast.BoolOp):
        node.values[0], after = _with_known_slots(node.values[0], known)
        inner = after
        for index in range(1, len(node.values)):
            node.values[index], inner = _with_known_slots(node.values[index], inner)
        return node, after
    if isinstance(node, ast.IfExp):
        node.test, after = _with_known_slots(node.test, known)
        node.body, body = _with_known_slots(node.body, after)
        node.orelse, orelse = _with_known_slots(node.orelse, after)
        return node, body & orelse
    if isinstance(node, ast.Compare):
        node.left, after = _with_known_slots(node.left, known)
        node.comparators[0], after = _with_known_slots(node.comparators[0], after)
        inner = after
        for index in range(1, len(node.comparators)):
            node.comparators[index], inner = _with_known_slots(node.comparators[index], inner)
        return node, after
    for field, value in ast.iter_fields(node):
        if isinstance(value, ast.expr):
            new, known = _with_known_slots(value, known)
            setattr(node, field, new)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, ast.expr):
                    value[index], known = _with_known_slots(item, known)
                elif isinstance(item, ast.keyword):
                    item.value, known = _with_known_slots(item.value, known)
    return node, known
