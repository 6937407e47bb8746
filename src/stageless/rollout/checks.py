"""Value checks behind the rollout plan's fields.

The same approach as the proxy configuration (:mod:`stageless.proxy.checks`), kept inside the
pure core: each check raises ``ValueError`` with the message an :class:`~stageless.errors.Issue`
carries (``140 is not between 0 and 100``); the ``Annotated`` aliases attach them to fields, with
the matching JSON Schema keywords. Pydantic's errors become Issues with paths such as
``steps[2].weight`` in :func:`stageless.validation.issues_from` (a step's ``kind`` tag never
shows in a path).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Annotated

from pydantic import AfterValidator, Field

from stageless.errors import show, show_number

__all__ = [
    "Address",
    "Duration",
    "Name",
    "Percent",
    "Share",
    "Url",
    "Weight",
    "between",
]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HOST = re.compile(r"(?:[A-Za-z0-9_-]{1,63}\.)*[A-Za-z0-9_-]{1,63}|\[[0-9A-Fa-f:.]+\]")
_URL = re.compile(r"https?://(?:[A-Za-z0-9._~%!$&'()*+,;=:-]+@)?([^/?#@\s]+)[^\s]*")


def between(low: float, high: float, *, open_low: bool = False) -> Callable[[float], float]:
    """A check that a number lies in [low, high] (or (low, high] with ``open_low``)."""

    def check(value: float) -> float:
        if not low <= value <= high:
            raise ValueError(
                f"{show_number(value)} is not between {show_number(low)} and {show_number(high)}"
            )
        if open_low and value == low:
            raise ValueError(f"{show_number(value)} is not above {show_number(low)}")
        return value

    return check


def _duration(value: float) -> float:
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{show_number(value)} is not positive; expected a number of seconds > 0")
    return value


def _weight(value: float) -> float:
    between(0, 100, open_low=True)(value)
    units = value * 1000
    if abs(units - round(units)) > 1e-6:
        raise ValueError(f"{show_number(value)} is not a multiple of 0.001")
    return value


def _name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid name; expected 1-63 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return value


def _address(value: str) -> str:
    host, colon, port = value.rpartition(":")
    if not colon or not host:
        raise ValueError(f"{value!r} is not host:port, e.g. 10.0.0.11:8000")
    if not _HOST.fullmatch(host):
        raise ValueError(
            f"{value!r}: {host!r} is not a hostname or IP address (IPv6 goes in brackets)"
        )
    if not port.isascii() or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"{value!r} has port {port!r}; expected a number between 1 and 65535")
    return value


def _url(value: str) -> str:
    match = _URL.fullmatch(value)
    if match is None or not match.group(1):
        raise ValueError(f"{show(value)} is not an http:// or https:// URL with a host")
    return value


Percent = Annotated[
    float, AfterValidator(between(0, 100)), Field(json_schema_extra={"minimum": 0, "maximum": 100})
]
"""A percentage, 0 to 100."""
Share = Annotated[
    float,
    AfterValidator(between(0, 100, open_low=True)),
    Field(json_schema_extra={"exclusiveMinimum": 0, "maximum": 100}),
]
"""A share of traffic in percent, above 0 and at most 100."""
Weight = Annotated[
    float,
    AfterValidator(_weight),
    Field(json_schema_extra={"exclusiveMinimum": 0, "maximum": 100}),
]
"""A canary weight in percent: above 0, at most 100, in steps of 0.001 (as the proxy's split)."""
Duration = Annotated[
    float, AfterValidator(_duration), Field(json_schema_extra={"exclusiveMinimum": 0})
]
"""A number of seconds above 0."""
Name = Annotated[
    str, AfterValidator(_name), Field(json_schema_extra={"pattern": f"^{_NAME.pattern}$"})
]
"""A service or judge name: 1-63 letters, digits, '.', '_' or '-'."""
Address = Annotated[str, AfterValidator(_address)]
"""``host:port``."""
Url = Annotated[
    str,
    AfterValidator(_url),
    Field(json_schema_extra={"format": "uri", "pattern": "^https?://"}),
]
"""An http:// or https:// URL."""
