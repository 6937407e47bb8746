"""Feature flags: flagd-compatible documents, JSON Logic targeting, in-process evaluation.

This package is pure: it does no I/O. Loading files, watching them and talking to the control
plane happen at the edges (``stageless.sdk``, ``stageless.cli``).
"""

from stageless.flags.resolution import (
    ErrorCode,
    EvaluationError,
    FlagType,
    Reason,
    Resolution,
)

__all__ = [
    "ErrorCode",
    "EvaluationError",
    "FlagType",
    "Reason",
    "Resolution",
]
