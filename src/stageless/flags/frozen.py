"""Read-only JSON containers for variant values that every evaluation shares.

An object-valued variant is built once, when its document loads, and the same object is handed
to every caller. Copying it per evaluation would cost microseconds on the happy path; wrapping it
in ``MappingProxyType``/tuples would change its type and break ``json.dumps``. So the value is
deep-frozen instead into :class:`FrozenDict` / :class:`FrozenList`: subclasses of ``dict`` and
``list`` (so ``isinstance``, equality and ``json.dumps`` behave as for plain JSON) whose
mutating methods raise ``TypeError``. ``copy.copy``/``copy.deepcopy`` give plain, mutable
containers, which is what a caller that wants to edit the value needs.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, NoReturn, SupportsIndex

__all__ = ["FrozenDict", "FrozenList", "freeze", "thaw"]


def _refuse(self: object, *_args: object, **_kwargs: object) -> NoReturn:
    raise TypeError(f"{type(self).__name__} is read-only (a shared flag value); copy it first")


class FrozenDict(dict[str, Any]):
    """A ``dict`` that refuses to change. Build it with :func:`freeze`."""

    __slots__ = ()

    __setitem__ = _refuse
    __delitem__ = _refuse
    __ior__ = _refuse
    clear = _refuse
    pop = _refuse
    popitem = _refuse
    setdefault = _refuse
    update = _refuse

    def __hash__(self) -> int:  # type: ignore[override]
        raise TypeError("unhashable type: 'FrozenDict'")

    def __copy__(self) -> dict[str, Any]:
        return dict(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[str, Any]:
        return {key: copy.deepcopy(value, memo) for key, value in self.items()}

    def __reduce__(self) -> tuple[type[dict[str, Any]], tuple[dict[str, Any]]]:
        return dict, (dict(self),)


class FrozenList(list[Any]):
    """A ``list`` that refuses to change. Build it with :func:`freeze`."""

    __slots__ = ()

    __setitem__ = _refuse
    __delitem__ = _refuse
    __iadd__ = _refuse
    __imul__ = _refuse
    append = _refuse
    clear = _refuse
    extend = _refuse
    insert = _refuse
    pop = _refuse
    remove = _refuse
    reverse = _refuse
    sort = _refuse

    def __hash__(self) -> int:  # type: ignore[override]
        raise TypeError("unhashable type: 'FrozenList'")

    def __copy__(self) -> list[Any]:
        return list(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> list[Any]:
        return [copy.deepcopy(value, memo) for value in self]

    def __reduce__(self) -> tuple[type[list[Any]], tuple[list[Any]]]:
        return list, (list(self),)

    def __mul__(self, other: SupportsIndex) -> list[Any]:
        return list(self) * other

    def __add__(self, other: list[Any]) -> list[Any]:
        return list(self) + other


def freeze(value: Any) -> Any:
    """A deep, read-only copy of a JSON value (dicts and lists frozen; scalars as they are).

    The value must already be known to be JSON of bounded depth (the document validator checks
    that), so the recursion here is bounded.
    """
    if isinstance(value, Mapping):
        return FrozenDict({key: freeze(item) for key, item in value.items()})
    if isinstance(value, list):
        return FrozenList(freeze(item) for item in value)
    return value


def thaw(value: Any) -> Any:
    """A deep, mutable copy of a (possibly frozen) JSON value."""
    return copy.deepcopy(value)
