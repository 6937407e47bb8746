"""What an evaluation returns: value, variant, reason and error code, with OpenFeature semantics."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

Metadata = Mapping[str, str | int | float | bool]

EMPTY_METADATA: Metadata = MappingProxyType({})


class Reason(StrEnum):
    """Why a flag resolved as it did (OpenFeature's words)."""

    STATIC = "STATIC"
    TARGETING_MATCH = "TARGETING_MATCH"
    DEFAULT = "DEFAULT"
    DISABLED = "DISABLED"
    SPLIT = "SPLIT"
    UNKNOWN = "UNKNOWN"
    ERROR = "ERROR"


class ErrorCode(StrEnum):
    """Why an evaluation failed (OpenFeature's words)."""

    FLAG_NOT_FOUND = "FLAG_NOT_FOUND"
    TYPE_MISMATCH = "TYPE_MISMATCH"
    PARSE_ERROR = "PARSE_ERROR"
    INVALID_CONTEXT = "INVALID_CONTEXT"
    TARGETING_KEY_MISSING = "TARGETING_KEY_MISSING"
    GENERAL = "GENERAL"


class FlagType(StrEnum):
    """The type a caller asks for; a flag's variants all have one type."""

    BOOLEAN = "boolean"
    STRING = "string"
    INTEGER = "integer"
    FLOAT = "float"
    OBJECT = "object"


@dataclass(frozen=True, slots=True)
class Resolution:
    """The result of evaluating one flag for one context.

    ``value`` and ``variant`` are ``None`` when the flag resolved to no variant (disabled, no
    default variant, or an error): the caller then uses its own code default. Instances are
    immutable and may be shared between evaluations.
    """

    key: str
    value: Any = None
    variant: str | None = None
    reason: Reason = Reason.UNKNOWN
    error_code: ErrorCode | None = None
    error_message: str | None = None
    metadata: Metadata = field(default_factory=lambda: EMPTY_METADATA)

    @property
    def is_error(self) -> bool:
        return self.error_code is not None

    def raise_for_error(self) -> None:
        """Raise :class:`EvaluationError` if this resolution is an error."""
        if self.error_code is not None:
            raise EvaluationError(self.key, self.error_code, self.error_message or "")


class EvaluationError(Exception):
    """Raised only on request, by :meth:`Resolution.raise_for_error`."""

    def __init__(self, key: str, error_code: ErrorCode, message: str) -> None:
        self.key = key
        self.error_code = error_code
        super().__init__(f"flag {key!r}: {error_code}: {message}")
