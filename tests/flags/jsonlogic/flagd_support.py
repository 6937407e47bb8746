"""Compile rules the way a flag does, for the flagd operator tests."""

from __future__ import annotations

from typing import Any

from stageless.flags.jsonlogic.compiler import Compiler, Evaluator, Options
from stageless.flags.jsonlogic.operators import ALL_OPERATORS

OPERATORS = ALL_OPERATORS


def compile_for(rule: Any, *, flag_key: str | None = "flag", version: int = 2) -> Evaluator:
    """Compile ``rule`` with every operator, for flag ``flag_key`` and fractional ``version``."""
    options = Options(flag_key=flag_key, fractional_version=2 if version == 2 else 3)
    return Compiler(OPERATORS, options).compile(rule)
