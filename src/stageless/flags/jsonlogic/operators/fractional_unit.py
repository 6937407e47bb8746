"""Where ``fractional`` reads its unit from, recognised at compile time for a fast path.

flagd's docs recommend ``{"cat": [{"var": "$flagd.flagKey"}, {"var": "email"}]}`` as the
bucketing expression, so that flags bucket independently. When an expression has that shape
(constant strings, ``$flagd.flagKey`` and one plain ``var`` path last), the unit is
``prefix + data[path]`` and can be read with a dictionary walk instead of two operator calls.
The fast path applies only when that walk yields a string; anything else goes through the
general compiled expression, so results never differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stageless.flags.jsonlogic.compiler import Compiler, is_logic

FLAG_KEY_VAR = "$flagd.flagKey"
_FLAGD = "$flagd"


@dataclass(frozen=True, slots=True)
class StringSource:
    """The unit is ``prefix`` followed by the string found at ``path`` in the data."""

    prefix: str
    path: tuple[str, ...]


def var_path(rule: Any) -> str | None:
    """The path of a plain ``{"var": "a.b"}`` (or ``{"var": ["a.b"]}``), else None."""
    if not is_logic(rule) or "var" not in rule:
        return None
    arg = rule["var"]
    if type(arg) is list:
        if len(arg) != 1:
            return None
        (arg,) = arg
    if type(arg) is not str or not arg:
        return None
    return arg


def string_source(compiler: Compiler, expression: Any) -> StringSource | None:
    """Recognise ``var`` or ``cat`` of constants, ``$flagd.flagKey`` and a final ``var``."""
    path = _data_path(var_path(expression))
    if path is not None:
        return StringSource("", path)
    if not is_logic(expression) or "cat" not in expression:
        return None
    parts = expression["cat"]
    if type(parts) is not list or not parts:
        return None
    prefix = ""
    for part in parts[:-1]:
        if type(part) is str:
            prefix += part
        elif var_path(part) == FLAG_KEY_VAR and compiler.options.flag_key is not None:
            # The compiler resolves $flagd.flagKey to the key of the flag being compiled.
            prefix += compiler.options.flag_key
        else:
            return None
    last = _data_path(var_path(parts[-1]))
    return None if last is None else StringSource(prefix, last)


def _data_path(path: str | None) -> tuple[str, ...] | None:
    # ``$flagd.*`` is the engine's, not the caller's: it is never read from the data directly.
    if path is None:
        return None
    parts = tuple(path.split("."))
    return None if parts[0] == _FLAGD else parts
