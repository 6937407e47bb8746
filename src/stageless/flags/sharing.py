"""Which flags of one document may share one compiled targeting rule.

Flags often carry the same rule: a ``$ref`` to a shared evaluator ("beta users"), a copied
condition, a ``fractional`` split bucketed on an attribute of the user rather than on the flag.
Such flags resolve through one evaluator: it is compiled once, and ``FlagSet.evaluate_many``
(the OFREP bulk endpoint, every targeted flag for one context) runs it once per context and
reuses its result for the others.

Two rules may share an evaluator when their JSON is the same and the result cannot depend on
which flag is evaluated. The flag key reaches a rule in two ways only: ``$flagd.flagKey`` (read
by ``var``, ``missing`` and ``missing_some`` through the ``$flagd`` object) and the
``fractional`` shorthand, which buckets on ``flagKey + targetingKey``. The test is
conservative: a rule is not shared when it has the shorthand, any string naming ``$flagd``
other than ``$flagd.timestamp`` (the time is the same for every flag of a call), or a
``var``/``missing``/``missing_some`` whose path is computed (it could spell ``$flagd.flagKey``).
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["sharing_key"]

TIMESTAMP = "$flagd.timestamp"
_FLAGD = "$flagd"
_PATH_OPERATORS = frozenset({"missing", "missing_some"})
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=True).encode


def sharing_key(rule: Any) -> str | None:
    """The text under which ``rule`` may share an evaluator; ``None`` if it reads the flag key.

    ``rule`` is a flag's targeting with ``$ref`` already substituted. Equal keys mean equal
    JSON (``1`` and ``1.0`` and ``true`` stay apart), so equal rules compile to evaluators that
    behave alike for every flag that carries them.
    """
    if not _flag_independent(rule):
        return None
    try:
        return _dumps(rule)
    except (TypeError, ValueError):  # a value JSON cannot spell (a YAML date): not shared
        return None


def _flag_independent(rule: Any) -> bool:
    stack = [rule]
    while stack:
        node = stack.pop()
        kind = type(node)
        if kind is str:
            if _FLAGD in node and node != TIMESTAMP:
                return False
        elif kind is list:
            stack.extend(node)
        elif kind is dict:
            if len(node) == 1:
                ((op, raw),) = node.items()
                args = raw if type(raw) is list else [raw]
                if not _operator_independent(op, args):
                    return False
            stack.extend(node.keys())
            stack.extend(node.values())
    return True


def _operator_independent(op: Any, args: list[Any]) -> bool:
    if op == "fractional":
        return not (args and type(args[0]) is list)  # the shorthand hashes the flag key
    if op == "var":
        return not (args and _computed(args[0]))
    if op in _PATH_OPERATORS:
        return not any(_computed(arg) for arg in args)
    return True


def _computed(value: Any) -> bool:
    """Whether ``value`` holds an operation anywhere (so its value is only known per call)."""
    stack = [value]
    while stack:
        node = stack.pop()
        if type(node) is list:
            stack.extend(node)
        elif type(node) is dict:
            if len(node) == 1:
                return True
            stack.extend(node.values())
    return False
