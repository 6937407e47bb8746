"""flagd's ``sem_ver`` operator: compare semantic versions (SemVer 2.0.0).

``{"sem_ver": [version, op, version]}`` with ``op`` one of ``= != < <= > >=``, ``^`` (same
major) or ``~`` (same major and minor). A version may carry a ``v``/``V`` prefix, may be partial
(``1`` and ``1.2`` mean ``1.0.0`` and ``1.2.0``) and may be a number (``1.2`` compares as
``"1.2"``). Build metadata is ignored; pre-releases sort before their release, identifier by
identifier (numeric ones numerically and before alphanumeric ones).

Wrong arity, an unknown operator or an invalid version gives ``null``, never an exception, so
an ``if`` falls through to its default (flagd #1874).

The grammar is SemVer's own; it is a few lines of regular expression and comparison, so it is
written here rather than pulling in a version library for the hot path.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from stageless.flags.jsonlogic.compiler import Compiler, Evaluator, constant, is_logic

_NUMBER = r"0|[1-9][0-9]*"
_PRERELEASE_ID = rf"(?:{_NUMBER}|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"  # no leading zeros if numeric
_BUILD_ID = r"[0-9A-Za-z-]+"
# One pass over the text: an optional v/V, then major with optional minor and patch (a missing
# one is 0), an optional pre-release and optional build metadata (which is then ignored).
_VERSION = re.compile(
    rf"[vV]?({_NUMBER})(?:\.({_NUMBER})(?:\.({_NUMBER}))?)?"
    rf"(?:-({_PRERELEASE_ID}(?:\.{_PRERELEASE_ID})*))?"
    rf"(?:\+{_BUILD_ID}(?:\.{_BUILD_ID})*)?"
)

# A version key that sorts like SemVer precedence: (major, minor, patch, release?, prerelease).
# A release (no pre-release) sorts after every pre-release of the same core; pre-release
# identifiers compare as (0, number) for numeric ones and (1, text) for the others.
VersionKey = tuple[int, int, int, bool, tuple[tuple[int, int | str], ...]]


def parse_version(value: Any) -> VersionKey | None:
    """The precedence key of a version string or number, or None if it is not a version."""
    if type(value) is str:
        text = value
    elif type(value) is int or type(value) is float:
        text = str(value)
    else:
        return None
    match = _VERSION.fullmatch(text)
    if match is None:
        return None
    major, minor, patch, prerelease = match.groups()
    core = int(major), int(minor or 0), int(patch or 0)
    if prerelease is None:
        return *core, True, ()
    identifiers = tuple(
        (0, int(part)) if part.isdigit() else (1, part) for part in prerelease.split(".")
    )
    return *core, False, identifiers


_CACHE_SIZE = 1024
_UNPARSED: Any = object()

_OPERATORS: dict[str, Callable[[VersionKey, VersionKey], bool]] = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "^": lambda a, b: a[0] == b[0],
    "~": lambda a, b: a[:2] == b[:2],
}


def compile_sem_ver(compiler: Compiler, args: list[Any], path: str) -> Evaluator:
    """Compile ``sem_ver`` (see the module docstring)."""
    evaluators = compiler.compile_all(args, path)
    if len(args) != 3:
        return constant(None)
    left, op, right = evaluators
    raw_op, raw_right = args[1], args[2]
    if not is_logic(raw_op) and not is_logic(raw_right) and type(raw_right) is not list:
        compare = _OPERATORS.get(raw_op) if type(raw_op) is str else None
        target = parse_version(raw_right)
        if compare is None or target is None:
            return constant(None)
        return _against_constant(left, compare, target)

    def sem_ver(data: Any) -> bool | None:
        operator = op(data)
        compare = _OPERATORS.get(operator) if type(operator) is str else None
        a = parse_version(left(data))
        b = parse_version(right(data))
        if compare is None or a is None or b is None:
            return None
        return compare(a, b)

    return sem_ver


def _against_constant(
    left: Evaluator, compare: Callable[[VersionKey, VersionKey], bool], target: VersionKey
) -> Evaluator:
    # Versions seen in traffic are few (one per app release), and parsing one costs a regular
    # expression match; each compiled sem_ver keeps the keys of the strings it has parsed.
    # Bounded: when full it starts over, so hostile input cannot grow it.
    parsed: dict[str, VersionKey | None] = {}

    def sem_ver(data: Any) -> bool | None:
        value = left(data)
        if type(value) is str:
            version = parsed.get(value, _UNPARSED)
            if version is _UNPARSED:
                if len(parsed) >= _CACHE_SIZE:
                    parsed.clear()
                version = parsed[value] = parse_version(value)
        else:
            version = parse_version(value)
        return None if version is None else compare(version, target)

    return sem_ver
