"""flagd's ``starts_with`` and ``ends_with`` operators.

``{"starts_with": [value, prefix]}`` and ``{"ends_with": [value, suffix]}`` take exactly two
strings and return a boolean. Any other arity or a non-string argument gives ``null`` (not
``false``), so a flag falls back to its default variant rather than a ``"false"`` variant
(flagd #1874).
"""

from __future__ import annotations

from typing import Any

from stageless.flags.jsonlogic.compiler import Compiler, Evaluator, constant, is_logic
from stageless.flags.jsonlogic.operators.data import simple_key


def compile_starts_with(compiler: Compiler, args: list[Any], path: str) -> Evaluator:
    """Compile ``starts_with``."""
    return _compile_affix(compiler, args, path, suffix=False)


def compile_ends_with(compiler: Compiler, args: list[Any], path: str) -> Evaluator:
    """Compile ``ends_with``."""
    return _compile_affix(compiler, args, path, suffix=True)


def _compile_affix(compiler: Compiler, args: list[Any], path: str, *, suffix: bool) -> Evaluator:
    evaluators = compiler.compile_all(args, path)
    if len(args) != 2:
        return constant(None)
    value, affix = evaluators
    raw_affix = args[1]
    if not is_logic(raw_affix):
        if type(raw_affix) is not str:
            return constant(None)
        return _against_constant(value, simple_key(args[0]), raw_affix, suffix=suffix)

    def affix_test(data: Any) -> bool | None:
        text = value(data)
        part = affix(data)
        if type(text) is not str or type(part) is not str:
            return None
        return text.endswith(part) if suffix else text.startswith(part)

    return affix_test


def _against_constant(value: Evaluator, key: str | None, affix: str, *, suffix: bool) -> Evaluator:
    """The test against a constant affix; a plain ``{"var": "k"}`` value is read inline."""
    if key is not None:
        if suffix:

            def ends_with_key(data: Any) -> bool | None:
                text = data.get(key) if type(data) is dict else value(data)
                return text.endswith(affix) if type(text) is str else None

            return ends_with_key

        def starts_with_key(data: Any) -> bool | None:
            text = data.get(key) if type(data) is dict else value(data)
            return text.startswith(affix) if type(text) is str else None

        return starts_with_key
    if suffix:

        def ends_with(data: Any) -> bool | None:
            text = value(data)
            return text.endswith(affix) if type(text) is str else None

        return ends_with

    def starts_with(data: Any) -> bool | None:
        text = value(data)
        return text.startswith(affix) if type(text) is str else None

    return starts_with
