"""flagd's custom operators, ready to merge into an operator table.

``fractional`` (percentage splits), ``sem_ver`` (semantic versions) and ``starts_with`` /
``ends_with`` (string affixes); each lives in its own module.
"""

from __future__ import annotations

from stageless.flags.jsonlogic.compiler import OperatorCompiler
from stageless.flags.jsonlogic.operators.affixes import compile_ends_with, compile_starts_with
from stageless.flags.jsonlogic.operators.fractional import compile_fractional
from stageless.flags.jsonlogic.operators.semver import compile_sem_ver

__all__ = ["FLAGD_OPERATORS"]

FLAGD_OPERATORS: dict[str, OperatorCompiler] = {
    "fractional": compile_fractional,
    "sem_ver": compile_sem_ver,
    "starts_with": compile_starts_with,
    "ends_with": compile_ends_with,
}
"""flagd's operators by name: ``fractional``, ``sem_ver``, ``starts_with``, ``ends_with``."""
