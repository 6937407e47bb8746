"""What a comparison looks at: :class:`CompareRules` and its path patterns.

A path pattern is matched against a whole field path (``body.user.name``, ``headers.etag``,
``body.items[].id``): ``*`` stands for any run of characters inside one segment (no ``.``),
``**`` for any run of characters across segments, every other character is literal. Ignoring a
path ignores everything under it, so ``body.meta`` and ``body.meta.*`` both hide the whole of
``meta`` (the second still notices ``meta`` itself appearing, vanishing or changing type).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from stageless.errors import Issue, ValidationError

DEFAULT_HEADERS = ("content-type",)
DEFAULT_MAX_BODY_BYTES = 1_048_576
# Never compared unless named in ``headers`` explicitly: they change on every response or
# describe one hop of the connection, not the resource.
VOLATILE_HEADERS = frozenset(
    {
        "age",
        "connection",
        "date",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)

PathMatcher = Callable[[str], object]


def compile_patterns(patterns: Iterable[str]) -> PathMatcher | None:
    """One matcher for every pattern (truthy when a path matches), or None for no patterns."""
    parts = []
    for pattern in patterns:
        pieces = re.split(r"(\*\*|\*)", pattern)
        regex = "".join(
            ".*" if piece == "**" else "[^.]*" if piece == "*" else re.escape(piece)
            for piece in pieces
        )
        parts.append(f"(?:{regex})")
    if not parts:
        return None
    return re.compile("|".join(parts)).fullmatch


def _names(value: object, where: str, issues: list[Issue]) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        issues.append(Issue(where, f"expected a list of strings, got {value!r}"))
        return ()
    names: list[str] = []
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item:
            issues.append(Issue(f"{where}[{index}]", f"expected a non-empty string, got {item!r}"))
        else:
            names.append(item)
    return tuple(names)


@dataclass(frozen=True, slots=True)
class CompareRules:
    """How two responses are compared.

    ``headers``: the response headers compared (case-insensitive names; ``"*"`` for every header
    but the :data:`VOLATILE_HEADERS`). ``ignore_fields``: path patterns left out (see the module
    docstring). ``ignore_headers``: header names left out. ``unordered_arrays``: arrays compare
    as multisets. ``numeric_tolerance``: two numbers are equal when they differ by at most this
    share of the larger magnitude (0.01 = 1 %). ``max_body_bytes``: bodies (after gzip or deflate
    decoding) above this size are compared by length and hash only.
    """

    headers: tuple[str, ...] = DEFAULT_HEADERS
    ignore_fields: tuple[str, ...] = ()
    ignore_headers: tuple[str, ...] = ()
    unordered_arrays: bool = True
    numeric_tolerance: float = 0.0
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    ignored: PathMatcher | None = field(init=False, repr=False, compare=False, default=None)
    #: The lower-case names of the headers a lift reads (the compared ones, Content-Type and
    #: Content-Encoding), as ``str`` and as ``bytes``; None to read every header (``"*"``, or a
    #: name beyond ASCII, which only a decoded name may match).
    read_headers: frozenset[str | bytes] | None = field(
        init=False, repr=False, compare=False, default=None
    )

    def __post_init__(self) -> None:
        issues: list[Issue] = []
        headers = tuple(n.lower() for n in _names(self.headers, "headers", issues))
        ignore_headers = tuple(
            n.lower() for n in _names(self.ignore_headers, "ignore_headers", issues)
        )
        ignore_fields = _names(self.ignore_fields, "ignore_fields", issues)
        if not isinstance(self.unordered_arrays, bool):
            issues.append(
                Issue("unordered_arrays", f"expected true or false, got {self.unordered_arrays!r}")
            )
        tolerance = self.numeric_tolerance
        if (
            isinstance(tolerance, bool)
            or not isinstance(tolerance, int | float)
            or not math.isfinite(tolerance)
            or tolerance < 0
        ):
            issues.append(Issue("numeric_tolerance", f"expected a number >= 0, got {tolerance!r}"))
        limit = self.max_body_bytes
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            issues.append(Issue("max_body_bytes", f"expected an integer >= 0, got {limit!r}"))
        if issues:
            raise ValidationError(issues, source="compare rules")
        object.__setattr__(self, "headers", headers)
        object.__setattr__(self, "ignore_headers", ignore_headers)
        object.__setattr__(self, "ignore_fields", ignore_fields)
        object.__setattr__(self, "numeric_tolerance", float(tolerance))
        object.__setattr__(self, "ignored", compile_patterns(ignore_fields))
        read = {"content-type", "content-encoding", *headers}
        if "*" not in read and all(name.isascii() for name in read):
            forms: set[str | bytes] = {*read, *(name.encode() for name in read)}
            object.__setattr__(self, "read_headers", frozenset(forms))

    def compares_header(self, name: str) -> bool:
        """Whether the (lower-case) header ``name`` is compared."""
        if name in self.ignore_headers:
            return False
        if name in self.headers:
            return True
        return "*" in self.headers and name not in VOLATILE_HEADERS


__all__ = [
    "DEFAULT_HEADERS",
    "DEFAULT_MAX_BODY_BYTES",
    "VOLATILE_HEADERS",
    "CompareRules",
    "PathMatcher",
    "compile_patterns",
]
