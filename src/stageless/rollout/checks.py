"""Value checks behind the rollout plan's fields, and pydantic's errors turned into Issues.

The same approach as the proxy configuration (:mod:`stageless.proxy.checks`), kept inside the
pure core: each check raises ``ValueError`` with the message an :class:`~stageless.errors.Issue`
carries (``140 is not between 0 and 100``); the ``Annotated`` aliases attach them to fields, with
the matching JSON Schema keywords. :func:`issues_from` turns a pydantic ``ValidationError`` into
Issues with paths such as ``steps[2].weight``: a step's ``kind`` tag never shows in a path, a
several-issue :class:`IssuesError` raised by a model check is expanded, and an unknown key gets
a "did you mean".
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable
from typing import Annotated, Any, get_args

import pydantic
from pydantic import AfterValidator, BaseModel, Field

from stageless.errors import Issue, IssuesError, join_path, show, show_number

__all__ = [
    "Address",
    "Duration",
    "Name",
    "Percent",
    "Share",
    "Url",
    "Weight",
    "between",
    "issues_from",
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


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _tagged(annotation: Any) -> dict[str, type[BaseModel]]:
    """The models of a tagged union by tag (their ``kind`` field is a ``Literal``), if any."""
    models: dict[str, type[BaseModel]] = {}
    for arg in get_args(annotation):
        if isinstance(arg, type) and issubclass(arg, BaseModel) and "kind" in arg.model_fields:
            models.update({str(tag): arg for tag in get_args(arg.model_fields["kind"].annotation)})
        else:
            models.update(_tagged(arg))
    return models


def _walk(root: type[BaseModel], loc: tuple[int | str, ...]) -> tuple[str, list[str], list[str]]:
    """Follow ``loc`` under ``root``: the readable path (a tagged union's tag dropped), the
    fields of the model it ends in (for "did you mean") and the tags of the tagged union it ends
    in (for a missing or unknown ``kind``)."""
    path = ""
    model: type[BaseModel] | None = root
    annotation: Any = None
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
            continue
        if part == "[key]":  # pydantic's marker for a problem with a mapping's key
            continue
        union = _tagged(annotation)
        if part in union:  # the tag pydantic puts in the location of a tagged union's member
            model, annotation = union[part], None
            continue
        field = model.model_fields.get(part) if model is not None else None
        path = join_path(path, part if _IDENTIFIER.fullmatch(part) else f"[{part!r}]")
        annotation = field.annotation if field is not None else None
        model = None if _tagged(annotation) else _model_in(annotation)
    fields = list(model.model_fields) if model is not None else []
    return path, fields, list(_tagged(annotation))


_EXPECTED = {
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
    "string_type": "a string",
    "tuple_type": "a list",
    "list_type": "a list",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "dict_type": "a mapping",
    "finite_number": "a finite number",
}


def _message(error: Any, known: list[str], tags: list[str]) -> tuple[str, str]:
    """(path suffix, message) for one pydantic error."""
    kind = error["type"]
    if kind == "missing":
        return "", "is required"
    if kind == "extra_forbidden":
        key = str(error["loc"][-1])
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        if close:
            return "", f"unknown key; did you mean {close[0]!r}?"
        return "", f"unknown key; expected one of {', '.join(known)}"
    if kind == "union_tag_not_found":
        return "kind", f"is required; expected one of {', '.join(tags)}"
    if kind == "union_tag_invalid":
        tag = (error.get("ctx") or {}).get("tag")
        return "kind", f"{show(tag)} is not one of {', '.join(tags)}"
    if kind == "literal_error":
        expected = (error.get("ctx") or {}).get("expected", "")
        return "", f"{show(error.get('input'))} is not one of {expected.replace(' or ', ', ')}"
    if kind in _EXPECTED:
        return "", f"expected {_EXPECTED[kind]}, got {show(error.get('input'))}"
    return "", str(error["msg"])


def issues_from(exc: pydantic.ValidationError, root: type[BaseModel]) -> list[Issue]:
    """One Issue per problem in ``exc`` (raised validating ``root``), each naming its path."""
    issues: list[Issue] = []
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        path, _, tags = _walk(root, loc)
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, IssuesError):
            issues += [Issue(join_path(path, i.path), i.message) for i in cause.issues]
        elif isinstance(cause, ValueError):
            issues.append(Issue(path, str(cause)))
        else:
            known = _walk(root, loc[:-1])[1]
            suffix, message = _message(error, known, tags)
            issues.append(Issue(join_path(path, suffix), message))
    return issues
