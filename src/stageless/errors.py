"""Errors shared by every Stageless package.

Exception tree::

    StagelessError            code: ErrorCode
    ├── ValidationError       bad input; carries the issues, each naming a path
    ├── NotFoundError
    ├── ConflictError
    ├── StoreError
    └── UpstreamError

The pure core reports most failures as data (for example a flag resolution with reason ERROR);
these exceptions are for the boundaries, where a caller must stop.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class ErrorCode(StrEnum):
    """Machine-readable codes, stable across releases."""

    VALIDATION = "validation"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    STORE = "store"
    UPSTREAM = "upstream"
    INTERNAL = "internal"


class StagelessError(Exception):
    """The root of every error Stageless raises on purpose."""

    code: ErrorCode = ErrorCode.INTERNAL


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem with an input: where (a dotted path, empty for the whole input) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ValidationError(StagelessError):
    """Input that breaks its schema. ``issues`` names each offending path and what was expected."""

    code = ErrorCode.VALIDATION

    def __init__(self, issues: Iterable[Issue], *, source: str | None = None) -> None:
        self.issues: tuple[Issue, ...] = tuple(issues)
        self.source = source
        head = f"{source}: " if source else ""
        lines = "\n".join(f"  {issue}" for issue in self.issues)
        count = len(self.issues)
        noun = "problem" if count == 1 else "problems"
        super().__init__(f"{head}{count} {noun}\n{lines}")


class NotFoundError(StagelessError):
    code = ErrorCode.NOT_FOUND


class ConflictError(StagelessError):
    code = ErrorCode.CONFLICT


class StoreError(StagelessError):
    code = ErrorCode.STORE


class UpstreamError(StagelessError):
    code = ErrorCode.UPSTREAM
