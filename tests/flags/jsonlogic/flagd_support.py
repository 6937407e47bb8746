"""Minimal stand-ins for the standard operators the flagd operator tests need.

``var`` (dotted paths, a default, ``$flagd.flagKey`` from the compile options), ``cat`` (of
strings and numbers), ``if`` and ``==`` (on scalars), just enough to run flagd-testbed rules
against the flagd operators on their own; the full json-logic-js operators are tested in their
own modules.
"""

from __future__ import annotations

from typing import Any

from stageless.flags.jsonlogic.compiler import Compiler, Evaluator, OperatorCompiler, Options
from stageless.flags.jsonlogic.operators.flagd import FLAGD_OPERATORS


def _var(compiler: Compiler, args: list[Any], path: str) -> Evaluator:
    name = args[0]
    default = args[1] if len(args) > 1 else None
    if name == "$flagd.flagKey":
        key = compiler.options.flag_key
        return lambda _data: default if key is None else key
    parts = str(name).split(".")

    def var(data: Any) -> Any:
        for part in parts:
            if type(data) is not dict or part not in data:
                return default
            data = data[part]
        return data

    return var


def _cat(compiler: Compiler, args: list[Any], path: str) -> Evaluator:
    parts = compiler.compile_all(args, path)

    def text(value: Any) -> str:
        return "null" if value is None else str(value)

    return lambda data: "".join(text(part(data)) for part in parts)


def _if(compiler: Compiler, args: list[Any], path: str) -> Evaluator:
    condition, then, otherwise = compiler.compile_all(args, path)
    return lambda data: then(data) if condition(data) else otherwise(data)


def _equals(compiler: Compiler, args: list[Any], path: str) -> Evaluator:
    left, right = compiler.compile_all(args, path)
    return lambda data: left(data) == right(data)


OPERATORS: dict[str, OperatorCompiler] = {
    "var": _var,
    "cat": _cat,
    "if": _if,
    "==": _equals,
    **FLAGD_OPERATORS,
}


def compile_for(rule: Any, *, flag_key: str | None = "flag", version: int = 2) -> Evaluator:
    """Compile ``rule`` for a flag with the stand-ins and flagd's operators."""
    options = Options(flag_key=flag_key, fractional_version=2 if version == 2 else 3)
    return Compiler(OPERATORS, options).compile(rule)
