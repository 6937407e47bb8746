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

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


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


# -- helpers for validation messages (shared by the proxy config and the rollout plan) --------


class IssuesError(ValueError):
    """Several problems found by one model check, each with a path relative to that model."""

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = issues
        super().__init__("; ".join(str(issue) for issue in issues))


def join_path(base: str, relative: str) -> str:
    """``steps[0]`` + ``weight`` -> ``steps[0].weight``; + ``[2]`` -> ``steps[0][2]``."""
    if not relative:
        return base
    if not base or relative.startswith("["):
        return base + relative
    return f"{base}.{relative}"


def show_number(value: float) -> str:
    """``140`` for 140.0, ``12.5`` for 12.5: numbers as their author wrote them."""
    value = float(value)
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def show(value: Any) -> str:
    """A short, YAML-flavoured rendering of an input for a message (strings quoted)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return show_number(value)
    if isinstance(value, int):
        return repr(value)
    if isinstance(value, str):
        return repr(value) if len(value) <= 60 else repr(value[:57] + "...")
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return f"a {type(value).__name__}"
