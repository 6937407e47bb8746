"""The operator tables: JSON Logic's standard operators and flagd's, one module per group.

``STANDARD_OPERATORS`` holds every json-logic-js operator; ``ALL_OPERATORS`` adds flagd's
(``fractional``, ``sem_ver``, ``starts_with``, ``ends_with``) and is what
:func:`stageless.flags.jsonlogic.compile_rule` uses by default.
"""

from __future__ import annotations

from stageless.flags.jsonlogic.compiler import OperatorCompiler
from stageless.flags.jsonlogic.operators.arithmetic import ARITHMETIC_OPERATORS
from stageless.flags.jsonlogic.operators.arrays import ARRAY_OPERATORS
from stageless.flags.jsonlogic.operators.comparison import COMPARISON_OPERATORS
from stageless.flags.jsonlogic.operators.data import DATA_OPERATORS
from stageless.flags.jsonlogic.operators.flagd import FLAGD_OPERATORS
from stageless.flags.jsonlogic.operators.logic import LOGIC_OPERATORS
from stageless.flags.jsonlogic.operators.strings import STRING_OPERATORS

__all__ = ["ALL_OPERATORS", "FLAGD_OPERATORS", "STANDARD_OPERATORS"]

STANDARD_OPERATORS: dict[str, OperatorCompiler] = {
    **DATA_OPERATORS,
    **LOGIC_OPERATORS,
    **COMPARISON_OPERATORS,
    **ARITHMETIC_OPERATORS,
    **STRING_OPERATORS,
    **ARRAY_OPERATORS,
}
"""Every json-logic-js operator, by name."""

ALL_OPERATORS: dict[str, OperatorCompiler] = {**STANDARD_OPERATORS, **FLAGD_OPERATORS}
"""The standard operators plus flagd's."""
