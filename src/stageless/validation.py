"""Pydantic's validation errors as Stageless :class:`~stageless.errors.Issue` s.

:func:`issues_from` turns a ``pydantic.ValidationError`` raised while validating a model into
one Issue per problem, each naming its path as a person would write it (``steps[2].weight``,
``services[0].split.weight``): a tagged union's tag (``kind``) never shows in a path, the
several-issue :class:`~stageless.errors.IssuesError` a model check raises is expanded, a
``ValueError`` from a field check gives its own message, an unknown key gets a "did you mean",
a missing or unknown ``kind`` lists the tags, and a wrong type says what was expected and what
came. A value under a key named ``secret`` is never shown. The rollout plan and the proxy
configuration both report through it.
"""

from __future__ import annotations

import difflib
import re
from typing import Any, get_args

import pydantic
from pydantic import BaseModel

from stageless.errors import Issue, IssuesError, join_path, show

__all__ = ["issues_from"]

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SECRET_KEYS = frozenset({"secret"})

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


def _message(error: Any, known: list[str], tags: list[str]) -> tuple[str, str]:
    """(path suffix, message) for one pydantic error."""
    kind, loc = error["type"], error["loc"]
    if kind == "missing":
        return "", "is required"
    if kind == "extra_forbidden":
        close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
        if close:
            return "", f"unknown key; did you mean {close[0]!r}?"
        return "", f"unknown key; expected one of {', '.join(known)}"
    if kind == "union_tag_not_found":
        return "kind", f"is required; expected one of {', '.join(tags)}"
    if kind == "union_tag_invalid":
        tag = (error.get("ctx") or {}).get("tag")
        return "kind", f"{show(tag)} is not one of {', '.join(tags)}"
    secret = bool(loc) and loc[-1] in _SECRET_KEYS
    got = "something else" if secret else show(error.get("input"))
    if kind == "literal_error":
        expected = (error.get("ctx") or {}).get("expected", "")
        return "", f"{got} is not one of {expected.replace(' or ', ', ')}"
    if kind in _EXPECTED:
        return "", f"expected {_EXPECTED[kind]}, got {got}"
    return "", str(error["msg"])
