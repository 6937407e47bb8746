"""JSON Logic with json-logic-js semantics plus flagd's operators, compiled to Python callables.

``apply(rule, data)`` compiles and runs a rule in one call; ``compile_rule`` compiles once for
many evaluations (``compile_generated`` writes the common shapes as one Python function,
with the same results)::

    >>> from stageless.flags.jsonlogic import apply, compile_rule
    >>> apply({"cat": ["Hello, ", {"var": "name"}]}, {"name": "Ada"})
    'Hello, Ada'
    >>> adult = compile_rule({">=": [{"var": "age"}, 18]})
    >>> adult({"age": 30}), adult({"age": "17"})
    (True, False)
"""

from __future__ import annotations

from typing import Any

from stageless.flags.jsonlogic.codegen import compile_generated
from stageless.flags.jsonlogic.compiler import (
    Compiler,
    Evaluator,
    LimitError,
    Limits,
    OperatorCompiler,
    Options,
    RuleError,
    compile_rule,
    constant,
    contains_logic,
    is_logic,
)
from stageless.flags.jsonlogic.operators import (
    ALL_OPERATORS,
    FLAGD_OPERATORS,
    STANDARD_OPERATORS,
)
from stageless.flags.jsonlogic.program import PROGRAM_RULES, compile_program


def apply(rule: Any, data: Any = None, options: Options | None = None) -> Any:
    """Compile ``rule`` and evaluate it once against ``data``.

    Raises :class:`RuleError` (naming the JSON path) for an unknown operator or a malformed
    rule, and :class:`LimitError` when the rule or the data hits one of ``Options.limits``.
    """
    return compile_rule(rule, options)(data)


__all__ = [
    "ALL_OPERATORS",
    "FLAGD_OPERATORS",
    "PROGRAM_RULES",
    "STANDARD_OPERATORS",
    "Compiler",
    "Evaluator",
    "LimitError",
    "Limits",
    "OperatorCompiler",
    "Options",
    "RuleError",
    "apply",
    "compile_generated",
    "compile_program",
    "compile_rule",
    "constant",
    "contains_logic",
    "is_logic",
]
