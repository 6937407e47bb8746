"""Which flags differ between two versions of a flag document.

Works on the raw, already validated documents (plain JSON values): a flag counts as changed when
its own definition changed, when the flag-set metadata it inherits changed, or when an
``$evaluators`` entry its targeting refers to with ``$ref`` changed. Added and removed flags
count as changed too. This is what ``PROVIDER_CONFIGURATION_CHANGED`` reports in
``flags_changed``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any


def changed_flags(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """The sorted keys of the flags whose effective definition differs between two documents."""
    before = _effective_definitions(old)
    after = _effective_definitions(new)
    return sorted(key for key in before.keys() | after.keys() if before.get(key) != after.get(key))


def _effective_definitions(document: Mapping[str, Any]) -> dict[str, Any]:
    flags = document.get("flags") or {}
    if isinstance(flags, list):  # flagd's daemon also accepts an array of flags with a "key"
        flags = {
            flag.get("key"): {name: value for name, value in flag.items() if name != "key"}
            for flag in flags
            if isinstance(flag, Mapping)
        }
    evaluators = document.get("$evaluators") or {}
    set_metadata = document.get("metadata") or {}
    effective: dict[str, Any] = {}
    for key, definition in flags.items():
        refs = sorted(
            set(_refs(definition.get("targeting") if isinstance(definition, Mapping) else None))
        )
        effective[str(key)] = (
            definition,
            set_metadata,
            [(name, evaluators.get(name)) for name in refs],
        )
    return effective


def _refs(rule: Any) -> Iterator[str]:
    """Every ``$ref`` name inside a JSON Logic rule."""
    stack = [rule]
    while stack:
        node = stack.pop()
        if isinstance(node, Mapping):
            ref = node.get("$ref")
            if isinstance(ref, str):
                yield ref
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
