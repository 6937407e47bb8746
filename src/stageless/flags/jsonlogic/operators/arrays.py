"""Arrays: ``map``, ``filter``, ``reduce``, ``all``, ``some``, ``none``, ``merge``.

The iterating operators take an array (any rule) and a rule that is applied to each item, with
the item as its data (``{"var": ""}`` is the item itself); ``reduce`` gives its rule the data
``{"current": item, "accumulator": value}`` and starts from its third argument (default
``null``). A first argument that is not an array gives ``[]`` for ``map`` and ``filter``, the
initial value for ``reduce``, ``false`` for ``all`` and ``some`` and ``true`` for ``none``;
``all`` of an empty array is ``false``.

``merge`` flattens its arguments one level: ``{"merge": [1, [2, [3]]]}`` is ``[1, 2, [3]]``.

Arrays longer than ``Limits.max_array_length`` (the input of an iterating operator or the
result of ``merge``) raise :class:`LimitError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from stageless.flags.jsonlogic import js
from stageless.flags.jsonlogic.compiler import (
    Compiler,
    Evaluator,
    LimitError,
    Limits,
    OperatorCompiler,
    constant,
)

truthy = js.truthy


def _scoped(compiler: Compiler, args: list[Any], path: str) -> tuple[Evaluator, Evaluator]:
    """The array's evaluator and the per-item rule's (``null`` when absent); extra arguments
    are compiled too (so that errors in them surface) but unused, as in json-logic-js."""
    parts = compiler.compile_all(args, path)
    items = parts[0] if parts else constant(None)
    rule = parts[1] if len(parts) > 1 else constant(None)
    return items, rule


def _array(value: Any, limits: Limits) -> Sequence[Any] | None:
    """``value`` if it is an array within the length limit, None if it is no array."""
    if not js.is_array(value):
        return None
    if len(value) > limits.max_array_length:
        raise LimitError(f"array has more than {limits.max_array_length} items")
    return value  # type: ignore[no-any-return]


def compile_map(compiler: Compiler, args: list[Any], path: str) -> Evaluator:
    """Compile ``map``."""
    items_of, rule = _scoped(compiler, args, path)
    limits = compiler.options.limits

    def map_items(data: Any) -> list[Any]:
        items = _array(items_of(data), limits)
        return [] if items is None else [rule(item) for item in items]

    return map_items


def compile_filter(compiler: Compiler, args: list[Any], path: str) -> Evaluator:
    """Compile ``filter``."""
    items_of, rule = _scoped(compiler, args, path)
    limits = compiler.options.limits

    def filter_items(data: Any) -> list[Any]:
        items = _array(items_of(data), limits)
        return [] if items is None else [item for item in items if truthy(rule(item))]

    return filter_items


def compile_reduce(compiler: Compiler, args: list[Any], path: str) -> Evaluator:
    """Compile ``reduce``."""
    parts = compiler.compile_all(args, path)
    items_of = parts[0] if parts else constant(None)
    rule = parts[1] if len(parts) > 1 else constant(None)
    initial = parts[2] if len(parts) > 2 else constant(None)
    limits = compiler.options.limits

    def reduce_items(data: Any) -> Any:
        accumulator = initial(data)
        items = _array(items_of(data), limits)
        if items is None:
            return accumulator
        for item in items:
            accumulator = rule({"current": item, "accumulator": accumulator})
        return accumulator

    return reduce_items


def compile_all(compiler: Compiler, args: list[Any], path: str) -> Evaluator:
    """Compile ``all``: true if the array is not empty and the rule is truthy for every item."""
    items_of, rule = _scoped(compiler, args, path)
    limits = compiler.options.limits

    def all_items(data: Any) -> bool:
        items = _array(items_of(data), limits)
        if not items:
            return False
        return all(truthy(rule(item)) for item in items)

    return all_items


def compile_some(compiler: Compiler, args: list[Any], path: str) -> Evaluator:
    """Compile ``some``: true if the rule is truthy for at least one item."""
    items_of, rule = _scoped(compiler, args, path)
    limits = compiler.options.limits

    def some_items(data: Any) -> bool:
        items = _array(items_of(data), limits)
        return bool(items) and any(truthy(rule(item)) for item in items)  # type: ignore[union-attr]

    return some_items


def compile_none(compiler: Compiler, args: list[Any], path: str) -> Evaluator:
    """Compile ``none``: true if the rule is truthy for no item (or there are none)."""
    items_of, rule = _scoped(compiler, args, path)
    limits = compiler.options.limits

    def no_items(data: Any) -> bool:
        items = _array(items_of(data), limits)
        return not items or not any(truthy(rule(item)) for item in items)

    return no_items


def compile_merge(compiler: Compiler, args: list[Any], path: str) -> Evaluator:
    """Compile ``merge``."""
    parts = compiler.compile_all(args, path)
    limits = compiler.options.limits

    def merge(data: Any) -> list[Any]:
        merged: list[Any] = []
        for part in parts:
            value = part(data)
            if js.is_array(value):
                merged.extend(value)
            else:
                merged.append(value)
            if len(merged) > limits.max_array_length:
                raise LimitError(f"merged array has more than {limits.max_array_length} items")
        return merged

    return merge


ARRAY_OPERATORS: dict[str, OperatorCompiler] = {
    "map": compile_map,
    "filter": compile_filter,
    "reduce": compile_reduce,
    "all": compile_all,
    "some": compile_some,
    "none": compile_none,
    "merge": compile_merge,
}
