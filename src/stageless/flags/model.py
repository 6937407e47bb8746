"""The data of one flag, as a validated flag document defines it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from stageless.flags.resolution import FlagType, Metadata


class FlagState(StrEnum):
    """Whether a flag is served (flagd's words)."""

    ENABLED = "ENABLED"
    DISABLED = "DISABLED"


@dataclass(frozen=True, slots=True)
class Flag:
    """One flag of a :class:`~stageless.flags.FlagSet`, immutable.

    ``variants`` maps variant names to values (object values are read-only
    :class:`~stageless.flags.frozen.FrozenDict`/``FrozenList``). ``targeting`` is the JSON
    Logic rule with every ``$ref`` substituted, or ``None`` when the flag has none (absent,
    ``null`` or ``{}``). ``metadata`` is the flag's metadata merged over the flag set's (the
    flag wins). ``flag_type`` is the type of the variant values: ``INTEGER`` when every value
    is an integer, ``FLOAT`` when some number is not (``0.5``, ``1.0``). ``targeting_error``
    says why the targeting could not be compiled; such a flag evaluates to ERROR/PARSE_ERROR.
    """

    key: str
    state: FlagState
    variants: Mapping[str, Any]
    default_variant: str | None
    flag_type: FlagType
    metadata: Metadata
    targeting: Any = None
    targeting_error: str | None = None

    @property
    def enabled(self) -> bool:
        return self.state is FlagState.ENABLED


def accepts(flag_type: FlagType, variants: Mapping[str, Any], requested: FlagType) -> bool:
    """Whether a typed call for ``requested`` may read a flag whose values are ``flag_type``.

    Exact matches always do. A FLOAT call reads an INTEGER flag (the value comes back as a
    float). An INTEGER call reads a FLOAT flag only if every variant value is a whole number
    (``1.0``), so that whether a call succeeds depends on the flag, never on who is asking.
    """
    if requested is flag_type:
        return True
    if requested is FlagType.FLOAT:
        return flag_type is FlagType.INTEGER
    if requested is FlagType.INTEGER and flag_type is FlagType.FLOAT:
        return all(float(value).is_integer() for value in variants.values())
    return False


def convert(value: Any, requested: FlagType | None) -> Any:
    """A variant value as a typed call for ``requested`` returns it (see :func:`accepts`)."""
    if requested is FlagType.FLOAT:
        return float(value)
    if requested is FlagType.INTEGER:
        return int(value)
    return value
