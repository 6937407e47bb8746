"""``$evaluators`` and ``$ref``: shared targeting rules, substituted when a document loads.

flagd replaces ``{"$ref": "name"}`` by the rule ``$evaluators.name`` textually before it
evaluates anything; Stageless does the same on the parsed rule, once, at load time, so the
whitespace around the colon cannot matter. A reference to an unknown evaluator, a ``$ref``
whose value is not a name, and a ``$ref`` inside an evaluator (flagd does not support nested
references) make the referring flag's targeting uncompilable: it loads with a warning and
evaluates to ERROR/PARSE_ERROR.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stageless.flags.jsonlogic import RuleError

__all__ = ["substitute_refs"]

REF = "$ref"


def _is_ref(value: Any) -> bool:
    return isinstance(value, Mapping) and len(value) == 1 and REF in value


def _contains_ref(value: Any) -> bool:
    if _is_ref(value):
        return True
    if isinstance(value, Mapping):
        return any(_contains_ref(item) for item in value.values())
    if isinstance(value, list):
        return any(_contains_ref(item) for item in value)
    return False


def substitute_refs(rule: Any, evaluators: Mapping[str, Any], path: str = "") -> Any:
    """``rule`` with every ``{"$ref": name}`` replaced by ``evaluators[name]``.

    Raises :class:`~stageless.flags.jsonlogic.RuleError` naming the path of a bad reference.
    The input is validated JSON of bounded depth, so the recursion here is bounded.
    """
    if _is_ref(rule):
        name = rule[REF]
        if not isinstance(name, str):
            raise RuleError(path, f"$ref must name an evaluator (a string), got {name!r}")
        if name not in evaluators:
            known = sorted(evaluators)
            raise RuleError(path, f"$ref to unknown evaluator {name!r} (defined: {known})")
        body = evaluators[name]
        if _contains_ref(body):
            raise RuleError(
                path, f"evaluator {name!r} contains a $ref; nested references are not supported"
            )
        return body
    if isinstance(rule, Mapping):
        return {
            key: substitute_refs(item, evaluators, f"{path}.{key}" if path else key)
            for key, item in rule.items()
        }
    if isinstance(rule, list):
        return [substitute_refs(item, evaluators, f"{path}[{i}]") for i, item in enumerate(rule)]
    return rule
