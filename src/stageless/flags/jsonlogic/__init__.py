"""JSON Logic with json-logic-js semantics plus flagd's operators, compiled to Python callables.

``apply(rule, data)`` compiles and runs a rule in one call; ``compile_rule`` compiles once for
many evaluations.
"""

from stageless.flags.jsonlogic.compiler import (
    Compiler,
    Evaluator,
    LimitError,
    Limits,
    OperatorCompiler,
    Options,
    RuleError,
    is_logic,
)

__all__ = [
    "Compiler",
    "Evaluator",
    "LimitError",
    "Limits",
    "OperatorCompiler",
    "Options",
    "RuleError",
    "is_logic",
]
