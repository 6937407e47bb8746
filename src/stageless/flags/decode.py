"""Turn the text of a flag document (JSON or YAML) into plain Python values.

Decisions, each one stricter than a bare ``json.loads``/``yaml.safe_load``:

- **Duplicate keys are rejected** in both formats. JSON and YAML parsers keep the last value
  silently (flagd's Go decoder does too), which turns a copy-paste slip into a flag that
  quietly serves something else.
- **JSON's non-standard ``NaN``/``Infinity`` are rejected**: they are not JSON and no other
  OpenFeature SDK would read the same document.
- **YAML booleans are YAML 1.2's**: only ``true``/``false`` (any case). PyYAML implements YAML
  1.1, where ``on``, ``off``, ``yes``, ``no`` are booleans, so the common ``variants: {on: true,
  off: false}`` would otherwise get boolean variant *names*.
- A document nested deeper than the interpreter can parse is an error, never a RecursionError.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Literal

import yaml

from stageless.errors import Issue, ValidationError

DocumentFormat = Literal["json", "yaml"]

__all__ = ["DocumentFormat", "decode_document"]


class _DuplicateKeyError(ValueError):
    def __init__(self, key: str, where: str = "") -> None:
        self.key = key
        super().__init__(f"{where}duplicate key {key!r}")


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKeyError(key)
        result[key] = value
    return result


def _json_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 booleans and duplicate keys refused."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _value_node in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key; construct_mapping reports it
                continue
            if duplicate:
                line = key_node.start_mark.line + 1
                raise _DuplicateKeyError(key, f"line {line}: ")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def _guess_format(text: str) -> DocumentFormat:
    return "json" if text.lstrip()[:1] in ("{", "[") else "yaml"


def _decode_json(text: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_json_object, parse_constant=_json_constant)
    except json.JSONDecodeError as exc:
        raise ValidationError(
            [Issue("", f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}")]
        ) from exc
    except _DuplicateKeyError as exc:
        raise ValidationError(
            [Issue("", f"invalid JSON: {exc} (each key may appear once per object)")]
        ) from exc
    except ValueError as exc:
        raise ValidationError([Issue("", f"invalid JSON: {exc}")]) from exc


def _decode_yaml(text: str) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506  # _Loader is a SafeLoader
    except _DuplicateKeyError as exc:
        raise ValidationError(
            [Issue("", f"invalid YAML: {exc} (each key may appear once per mapping)")]
        ) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ValidationError([Issue("", f"invalid YAML{where}: {problem}")]) from exc


def decode_document(
    source: str | bytes | Mapping[str, Any], document_format: DocumentFormat | None = None
) -> Any:
    """The parsed value of ``source`` (a mapping is returned as is, to be validated).

    ``document_format`` ``None`` means: JSON if the text starts with ``{`` or ``[``, else YAML.
    Raises :class:`~stageless.errors.ValidationError` for text that does not parse.
    """
    if isinstance(source, Mapping):
        return source
    if isinstance(source, bytes):
        try:
            source = source.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ValidationError(
                [Issue("", f"not UTF-8 text: byte {exc.start} is invalid")]
            ) from exc
    if not isinstance(source, str):
        raise ValidationError(
            [Issue("", f"expected text, bytes or a mapping, got {type(source).__name__}")]
        )
    chosen = document_format or _guess_format(source)
    try:
        return _decode_json(source) if chosen == "json" else _decode_yaml(source)
    except RecursionError as exc:
        raise ValidationError([Issue("", "document is nested too deeply to parse")]) from exc
