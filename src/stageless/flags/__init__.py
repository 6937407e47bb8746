"""Feature flags: flagd-compatible documents, JSON Logic targeting, in-process evaluation.

This package is pure: it does no I/O. Loading files, watching them and talking to the control
plane happen at the edges (``stageless.sdk``, ``stageless.cli``).
"""

from stageless.flags.document import parse_flag_set
from stageless.flags.evaluate import NO_RESULT, FlagSet
from stageless.flags.model import Flag, FlagState
from stageless.flags.resolution import (
    ErrorCode,
    EvaluationError,
    FlagType,
    Reason,
    Resolution,
)

__all__ = [
    "NO_RESULT",
    "ErrorCode",
    "EvaluationError",
    "Flag",
    "FlagSet",
    "FlagState",
    "FlagType",
    "Reason",
    "Resolution",
    "parse_flag_set",
]
