"""Check a decoded flag document against flagd's schema and the semantic rules on top of it.

Hand-written rather than pydantic: the schema is small (a dozen fields) and most of the work is
semantic (all variants of one type, ``defaultVariant`` names a variant, flat metadata), which
pydantic would do in custom validators anyway; its messages for unions of JSON types ("Input
should be a valid boolean; Input should be a valid string; ...") would need rewriting to say
what a flag author must fix; and one walk here collects *every* issue with its JSON path.

What is accepted follows flagd's JSON schema (``https://flagd.dev/schema/v0/flags.json``):
unknown keys are allowed there, so they load here too but are reported as warnings (a typo such
as ``defaultVarient`` would otherwise go unnoticed). Object variants may be JSON objects or, as
an extension that OpenFeature's object type allows, arrays.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from stageless.errors import Issue
from stageless.flags.frozen import freeze
from stageless.flags.model import Flag, FlagState
from stageless.flags.resolution import FlagType, Metadata

MAX_DOCUMENT_DEPTH = 128
"""Values (variants, rules, metadata) nested deeper than this reject the document."""

_SIMPLE_KEY = re.compile(r"^[A-Za-z0-9_$-]+$")
_TOP_LEVEL_KEYS = frozenset({"$schema", "flags", "$evaluators", "metadata"})
_FLAG_KEYS = frozenset({"state", "variants", "defaultVariant", "targeting", "metadata"})
_STATES = {state.value: state for state in FlagState}

__all__ = ["MAX_DOCUMENT_DEPTH", "ValidatedDocument", "child", "validate_document"]


@dataclass(frozen=True, slots=True)
class ValidatedDocument:
    """A document that passed validation; ``flags`` still carry their raw targeting."""

    flags: tuple[tuple[str, Flag], ...]  # (JSON path of the flag, flag)
    evaluators: Mapping[str, Any]
    metadata: Metadata


def child(path: str, key: str | int) -> str:
    """The JSON path of ``key`` under ``path``: ``flags.new-checkout``, ``flags[2]``,
    ``flags["a.b"]``."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    if _SIMPLE_KEY.match(key):
        return f"{path}.{key}" if path else key
    quoted = '"' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{path}[{quoted}]"


def _kind(value: Any) -> str:
    """A JSON-ish name for the type of ``value``, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return f"a {type(value).__name__} (not a JSON value)"


class _Checker:
    """Collects issues and warnings during one validation walk."""

    def __init__(self) -> None:
        self.issues: list[Issue] = []
        self.warnings: list[Issue] = []

    def fail(self, path: str, message: str) -> None:
        self.issues.append(Issue(path, message))

    def json_value(self, value: Any, path: str, depth: int = 0) -> bool:
        """Check that ``value`` is JSON (finite numbers, string keys) of bounded depth."""
        if depth > MAX_DOCUMENT_DEPTH:
            self.fail(path, f"nested deeper than {MAX_DOCUMENT_DEPTH} levels")
            return False
        if value is None or isinstance(value, bool | str):
            return True
        if isinstance(value, int | float):
            if isinstance(value, float) and not math.isfinite(value):
                self.fail(path, f"expected a finite number, got {value!r}")
                return False
            return True
        if isinstance(value, list):
            results = [  # every item, not just up to the first bad one: report all issues
                self.json_value(item, child(path, i), depth + 1) for i, item in enumerate(value)
            ]
            return all(results)
        if isinstance(value, Mapping):
            ok = True
            for key, item in value.items():
                if not isinstance(key, str):
                    self.fail(path, f"object key {key!r} is not a string")
                    ok = False
                elif not self.json_value(item, child(path, key), depth + 1):
                    ok = False
            return ok
        self.fail(path, f"expected a JSON value, got {_kind(value)}")
        return False

    def metadata(self, value: Any, path: str) -> dict[str, str | int | float | bool]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.fail(
                path, f"expected an object of string, number or boolean values, got {_kind(value)}"
            )
            return {}
        result: dict[str, str | int | float | bool] = {}
        for key, item in value.items():
            item_path = child(path, str(key))
            if not isinstance(key, str):
                self.fail(path, f"metadata key {key!r} is not a string")
            elif isinstance(item, bool | str) or (
                isinstance(item, int | float) and math.isfinite(item)
            ):
                result[key] = item
            else:
                self.fail(item_path, f"expected a string, number or boolean, got {_kind(item)}")
        return result

    def variants(self, value: Any, path: str) -> tuple[dict[str, Any], FlagType | None]:
        if not isinstance(value, Mapping):
            found = "nothing" if value is None else _kind(value)
            self.fail(path, f"expected an object of variant names to values, got {found}")
            return {}, None
        if not value:
            self.fail(path, "expected at least one variant, got none")
            return {}, None
        result: dict[str, Any] = {}
        kinds: dict[str, list[str]] = {}
        for name, item in value.items():
            item_path = child(path, str(name))
            if not isinstance(name, str) or not name:
                self.fail(path, f"variant name {name!r} is not a non-empty string")
                continue
            kind = _variant_kind(item)
            if kind is None:
                self.fail(
                    item_path,
                    f"expected a boolean, string, number or object, got {_kind(item)}",
                )
                continue
            if not self.json_value(item, item_path):
                continue
            kinds.setdefault(kind, []).append(name)
            result[name] = item
        if len(kinds) > 1:
            listing = "; ".join(f"{kind}: {names}" for kind, names in kinds.items())
            self.fail(path, f"variants must all have one type, got {listing}")
            return result, None
        if not kinds:
            return result, None
        (kind,) = kinds
        if kind == "number":
            all_ints = all(isinstance(item, int) for item in result.values())
            return result, FlagType.INTEGER if all_ints else FlagType.FLOAT
        return result, FlagType(kind)

    def flag(self, key: str, raw: Any, path: str, set_metadata: Metadata) -> Flag | None:
        if not isinstance(raw, Mapping):
            self.fail(path, f"expected a flag object, got {_kind(raw)}")
            return None
        before = len(self.issues)
        state = raw.get("state")
        if "state" not in raw:
            self.fail(child(path, "state"), "is required ('ENABLED' or 'DISABLED')")
        elif state not in _STATES:
            self.fail(child(path, "state"), f"expected 'ENABLED' or 'DISABLED', got {state!r}")
        variants, flag_type = self.variants(raw.get("variants"), child(path, "variants"))
        default = raw.get("defaultVariant")
        if default is not None:
            if not isinstance(default, str):
                self.fail(
                    child(path, "defaultVariant"),
                    f"expected a variant name or null, got {_kind(default)}",
                )
            elif variants and default not in variants:
                self.fail(
                    child(path, "defaultVariant"),
                    f"{default!r} is not one of the variants {list(variants)}",
                )
        targeting = raw.get("targeting")
        if targeting is not None:
            if not isinstance(targeting, Mapping):
                self.fail(
                    child(path, "targeting"),
                    f"expected a JSON Logic rule (an object), got {_kind(targeting)}",
                )
            else:
                self.json_value(targeting, child(path, "targeting"))
        metadata = self.metadata(raw.get("metadata"), child(path, "metadata"))
        for extra in raw:
            if extra not in _FLAG_KEYS and extra != "key":
                self.warnings.append(Issue(child(path, str(extra)), "unknown key, ignored"))
        if len(self.issues) > before or flag_type is None:
            return None
        return Flag(
            key=key,
            state=_STATES[str(state)],
            variants=MappingProxyType({name: freeze(item) for name, item in variants.items()}),
            default_variant=default,
            flag_type=flag_type,
            metadata=MappingProxyType({**set_metadata, **metadata}),
            targeting=targeting or None,  # {} means no targeting
        )

    def flags(self, value: Any, set_metadata: Metadata) -> list[tuple[str, Flag]]:
        entries: list[tuple[str, str, Any]] = []  # (key, path, raw flag)
        if isinstance(value, Mapping):
            for key, raw in value.items():
                if not isinstance(key, str) or not key:
                    self.fail("flags", f"flag key {key!r} is not a non-empty string")
                else:
                    entries.append((key, child("flags", key), raw))
        elif isinstance(value, list):
            seen: dict[str, str] = {}
            for index, raw in enumerate(value):
                path = child("flags", index)
                key = raw.get("key") if isinstance(raw, Mapping) else None
                if not isinstance(key, str) or not key:
                    self.fail(child(path, "key"), "expected the flag's key, a non-empty string")
                elif key in seen:
                    self.fail(child(path, "key"), f"duplicate flag key {key!r} (also {seen[key]})")
                else:
                    seen[key] = path
                    entries.append((key, path, raw))
        else:
            found = "nothing" if value is None else _kind(value)
            self.fail("flags", f"expected an object of flags (or an array of flags), got {found}")
        result = []
        for key, path, raw in entries:
            flag = self.flag(key, raw, path, set_metadata)
            if flag is not None:
                result.append((path, flag))
        return result


def _variant_kind(value: Any) -> str | None:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "string"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, Mapping | list):
        return "object"
    return None


def validate_document(document: Any) -> tuple[ValidatedDocument | None, list[Issue], list[Issue]]:
    """Validate a decoded document: ``(document or None, issues, warnings)``.

    The document is ``None`` exactly when there are issues; every issue names its JSON path.
    """
    check = _Checker()
    if not isinstance(document, Mapping):
        check.fail("", f"expected an object with a 'flags' key, got {_kind(document)}")
        return None, check.issues, check.warnings
    schema = document.get("$schema")
    if schema is not None and not isinstance(schema, str):
        check.fail("$schema", f"expected a string (a schema URL), got {_kind(schema)}")
    metadata = MappingProxyType(check.metadata(document.get("metadata"), "metadata"))
    evaluators: dict[str, Any] = {}
    raw_evaluators = document.get("$evaluators")
    if isinstance(raw_evaluators, Mapping):
        for name, rule in raw_evaluators.items():
            path = child("$evaluators", str(name))
            if not isinstance(name, str) or not name:
                check.fail("$evaluators", f"evaluator name {name!r} is not a non-empty string")
            elif check.json_value(rule, path):
                evaluators[name] = rule
    elif raw_evaluators is not None:
        check.fail("$evaluators", f"expected an object of named rules, got {_kind(raw_evaluators)}")
    if "flags" not in document:
        check.fail("flags", "is required (an object of flags)")
        flags: list[tuple[str, Flag]] = []
    else:
        flags = check.flags(document["flags"], metadata)
    for extra in document:
        if extra not in _TOP_LEVEL_KEYS:
            check.warnings.append(Issue(child("", str(extra)), "unknown key, ignored"))
    if check.issues:
        return None, check.issues, check.warnings
    validated = ValidatedDocument(tuple(flags), MappingProxyType(evaluators), metadata)
    return validated, check.issues, check.warnings
