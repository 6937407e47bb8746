"""Data access: ``var``, ``missing``, ``missing_some``, and flagd's ``$flagd`` overlay.

``{"var": "user.address.city"}`` walks dotted paths through objects; a numeric segment indexes
an array (``"items.0"``) and ``length`` reads an array's or a string's length, as JavaScript
property access does. A second argument is the default for a missing value (a value that is
present but ``null`` is returned as ``null``). ``""``, ``null`` or no path at all return the
whole data. The path may itself be computed by a rule.

Paths whose first segment is ``$flagd`` never read the caller's data (flagd overwrites a
caller-supplied ``$flagd``): ``$flagd.flagKey`` is ``Options.flag_key``, fixed at compile time,
and ``$flagd.timestamp`` is the options' clock in whole Unix seconds, read at each evaluation.

Single-segment literal paths, the common case, compile to one ``dict.get``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from stageless.flags.jsonlogic import js
from stageless.flags.jsonlogic.compiler import (
    Compiler,
    Evaluator,
    LimitError,
    OperatorCompiler,
    Options,
    constant,
    contains_logic,
    is_logic,
)

FLAGD = "$flagd"
_MISSING: Any = object()


def property_of(value: Any, key: str) -> Any:
    """``value[key]`` as JavaScript reads it from JSON data, or ``_MISSING`` (undefined)."""
    if type(value) is dict:
        return value.get(key, _MISSING)
    if isinstance(value, str):
        return _string_property(str.__str__(value), key)
    if js.is_array(value):
        if key == "length":
            return len(value)
        index = _index(key)
        return value[index] if index is not None and index < len(value) else _MISSING
    if isinstance(value, Mapping):
        return value.get(key, _MISSING)
    return _MISSING


def _index(key: str) -> int | None:
    """The array index a property key names (canonical decimal digits only), or None."""
    if key.isascii() and key.isdigit() and (key == "0" or key[0] != "0"):
        return int(key)
    return None


def _string_property(text: str, key: str) -> Any:
    if key == "length":
        return js.utf16_length(text)
    index = _index(key)
    if index is None or index >= js.utf16_length(text):
        return _MISSING
    return js.utf16_slice(text, index, index + 1)


def walk(value: Any, segments: Sequence[str], not_found: Any) -> Any:
    """Follow ``segments`` from ``value``; ``not_found`` when a step is missing or crosses null."""
    for segment in segments:
        if value is None:
            return not_found
        value = property_of(value, segment)
        if value is _MISSING:
            return not_found
    return value


def flagd_overlay(options: Options) -> dict[str, Any]:
    """The ``$flagd`` object for this evaluation: ``flagKey`` (if known) and ``timestamp``."""
    overlay: dict[str, Any] = {"timestamp": int(options.clock.now())}
    if options.flag_key is not None:
        overlay["flagKey"] = options.flag_key
    return overlay


def split_path(path: Any, options: Options) -> list[str] | None:
    """The segments of a ``var`` path value, or None when it means the whole data."""
    if path is None or (path == "" and isinstance(path, str)):
        return None
    return js.to_string(path, options.limits).split(".")


def lookup(data: Any, path: Any, not_found: Any, options: Options) -> Any:
    """What ``{"var": [path, not_found]}`` gives for ``data`` (``$flagd`` paths included)."""
    segments = split_path(path, options)
    if segments is None:
        return data
    if segments[0] == FLAGD:
        return walk(flagd_overlay(options), segments[1:], not_found)
    return walk(data, segments, not_found)


def simple_key(raw: Any) -> str | None:
    """``"k"`` if ``raw`` is ``{"var": "k"}`` (or ``["k"]``, ``["k", null]``) with a literal
    one-segment path outside ``$flagd``, else None. Operators use it to read ``data.get(k)``
    inline instead of calling the ``var`` evaluator."""
    if not is_logic(raw) or "var" not in raw:
        return None
    args = raw["var"]
    if type(args) is list:
        if not args or len(args) > 2 or (len(args) == 2 and args[1] is not None):
            return None
        args = args[0]
    if type(args) is not str or not args or "." in args or args == FLAGD:
        return None
    return args


def compile_var(compiler: Compiler, args: list[Any], path: str) -> Evaluator:
    """Compile ``var`` (see the module docstring)."""
    options = compiler.options
    raw_path = args[0] if args else None
    raw_default = args[1] if len(args) > 1 else None
    default_is_constant = not contains_logic(raw_default)
    default = compiler.compile(raw_default, f"{path}[1]")
    if contains_logic(raw_path):
        return _dynamic_var(compiler.compile(raw_path, f"{path}[0]"), default, options)
    segments = split_path(raw_path, options)
    if segments is None:
        return _whole_data
    if segments[0] == FLAGD:
        return _flagd_var(segments[1:], default, default_is_constant, options)
    if default_is_constant:
        return _static_var(segments, default(None))

    def var_with_dynamic_default(data: Any) -> Any:
        value = walk(data, segments, _MISSING)
        return default(data) if value is _MISSING else value

    return var_with_dynamic_default


def _whole_data(data: Any) -> Any:
    return data


def _static_var(segments: list[str], not_found: Any) -> Evaluator:
    if len(segments) == 1:
        (key,) = segments

        def var_key(data: Any) -> Any:
            if type(data) is dict:
                return data.get(key, not_found)
            return walk(data, segments, not_found)

        return var_key
    if len(segments) == 2:
        first, second = segments

        def var_pair(data: Any) -> Any:
            if type(data) is dict:
                inner = data.get(first)
                if type(inner) is dict:
                    return inner.get(second, not_found)
            return walk(data, segments, not_found)

        return var_pair

    def var_path(data: Any) -> Any:
        return walk(data, segments, not_found)

    return var_path


def _flagd_var(
    rest: list[str], default: Evaluator, default_is_constant: bool, options: Options
) -> Evaluator:
    clock = options.clock
    if rest == ["timestamp"]:
        return lambda _data: int(clock.now())
    if not rest or rest[0] == "timestamp":
        return lambda data: _default_if_missing(
            walk(flagd_overlay(options), rest, _MISSING), default, data
        )
    value = walk(flagd_overlay(options), rest, _MISSING)  # no timestamp involved: a constant
    if value is not _MISSING:
        return constant(value)
    if default_is_constant:
        return constant(default(None))
    return default


def _default_if_missing(value: Any, default: Evaluator, data: Any) -> Any:
    return default(data) if value is _MISSING else value


def _dynamic_var(path_of: Evaluator, default: Evaluator, options: Options) -> Evaluator:
    def var_dynamic(data: Any) -> Any:
        value = lookup(data, path_of(data), _MISSING, options)
        return default(data) if value is _MISSING else value

    return var_dynamic


def missing_keys(data: Any, values: list[Any], options: Options) -> list[Any]:
    """``missing``: the keys among ``values`` (or in ``values[0]`` if it is an array) whose
    value is absent, ``null`` or ``""``."""
    keys = values[0] if values and js.is_array(values[0]) else values
    _check_length(keys, options)
    absent = []
    for key in keys:
        if js.is_array(key):  # {"var": [path, default]}
            path = key[0] if key else None
            value = lookup(data, path, key[1] if len(key) > 1 else None, options)
        else:
            value = lookup(data, key, None, options)
        if _blank(value):
            absent.append(key)
    return absent


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value == "")


def _check_length(items: Sequence[Any], options: Options) -> None:
    limit = options.limits.max_array_length
    if len(items) > limit:
        raise LimitError(f"array has more than {limit} items")


def compile_missing(compiler: Compiler, args: list[Any], path: str) -> Evaluator:
    """Compile ``missing``."""
    options = compiler.options
    if all(type(arg) is str and arg and "." not in arg and arg != FLAGD for arg in args):
        keys: list[str] = list(args)

        def missing_static(data: Any) -> list[Any]:
            if type(data) is dict:
                return [key for key in keys if _blank(data.get(key))]
            return missing_keys(data, list(keys), options)

        return missing_static
    parts = compiler.compile_all(args, path)
    return lambda data: missing_keys(data, [part(data) for part in parts], options)


def compile_missing_some(compiler: Compiler, args: list[Any], path: str) -> Evaluator:
    """Compile ``missing_some``: ``[]`` if at least ``need`` of the keys are present, else the
    missing ones."""
    options = compiler.options
    need_of = compiler.compile(args[0] if args else None, f"{path}[0]")
    keys_of = compiler.compile(args[1] if len(args) > 1 else None, f"{path}[1]")

    def missing_some(data: Any) -> list[Any]:
        need = need_of(data)
        keys = keys_of(data)
        absent = missing_keys(data, keys if js.is_array(keys) else [keys], options)
        if js.is_array(keys):
            count: int | float = len(keys)
        elif isinstance(keys, str):
            count = js.utf16_length(keys)
        else:
            return absent  # undefined length: the comparison is false
        return [] if js.greater_equal(count - len(absent), need, options.limits) else absent

    return missing_some


DATA_OPERATORS: dict[str, OperatorCompiler] = {
    "var": compile_var,
    "missing": compile_missing,
    "missing_some": compile_missing_some,
}
