"""Helpers for testing code that uses Stageless flags.

- :func:`flag_set_from_dict` / :func:`provider_from_dict`: flags from a plain ``{"key": value}``
  mapping, for tests that do not want a flag file.
- :func:`flag_overrides`: force flags to a variant or value inside a ``with`` block; everything
  is restored on exit, even after an exception.

Example::

    from openfeature import api
    from stageless.testing import flag_overrides, provider_from_dict

    provider = provider_from_dict({"new-checkout": False, "theme": "light"})
    api.set_provider_and_wait(provider)
    with flag_overrides(provider, {"new-checkout": True}):
        assert api.get_client().get_boolean_value("new-checkout", False) is True
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Literal

from stageless.clock import FakeClock
from stageless.flags import ErrorCode, FlagSet, FlagType, Reason, Resolution, parse_flag_set
from stageless.sdk.provider import StagelessProvider

__all__ = [
    "FakeClock",
    "OverriddenFlags",
    "flag_overrides",
    "flag_set_from_dict",
    "provider_from_dict",
]

Scope = Literal["provider", "context"]

_MISSING: Any = object()


# --- flags from a plain mapping ----------------------------------------------------------


def _definition(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        variants: dict[str, Any] = {"on": True, "off": False}
        default = "on" if value else "off"
    elif isinstance(value, str):
        variants, default = {value: value}, value
    else:
        variants, default = {"value": value}, "value"
    return {"state": "ENABLED", "variants": variants, "defaultVariant": default}


def flag_set_from_dict(values: Mapping[str, Any]) -> FlagSet:
    """A flag set with one static flag per entry of ``values``.

    Booleans get the variants ``on``/``off``; a string is its own variant name (``"blue"`` is
    variant ``blue``); numbers, lists and objects get a single variant named ``value``. Every
    flag resolves with reason STATIC.
    """
    document = {"flags": {key: _definition(value) for key, value in values.items()}}
    return parse_flag_set(document, source_name="flag_set_from_dict")


def provider_from_dict(values: Mapping[str, Any]) -> StagelessProvider:
    """A ready :class:`StagelessProvider` over :func:`flag_set_from_dict` ``(values)``."""
    return StagelessProvider.from_flag_set(flag_set_from_dict(values))


# --- overrides ---------------------------------------------------------------------------


def _type_error(value: Any, flag_type: FlagType | None) -> str | None:
    if flag_type is None:
        return None
    if flag_type is FlagType.BOOLEAN:
        ok = isinstance(value, bool)
    elif flag_type is FlagType.STRING:
        ok = isinstance(value, str)
    elif flag_type is FlagType.INTEGER:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif flag_type is FlagType.FLOAT:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    else:
        ok = isinstance(value, dict | list)
    return None if ok else f"override {value!r} is not of type {flag_type}"


def _variants(flags: FlagSet, key: str) -> Mapping[str, Any]:
    return flags.flag(key).variants if key in flags else {}


def _forced(
    flags: FlagSet,
    key: str,
    forced: Any,
    context: Mapping[str, Any] | None,
    flag_type: FlagType | None,
) -> Resolution:
    """The resolution an override produces: a variant by name, or else a plain value."""
    base = flags.evaluate(key, context, flag_type)
    variants = _variants(flags, key)
    if isinstance(forced, str) and forced in variants:
        variant: str | None = forced
        value = variants[forced]
    else:
        variant = next(
            (name for name, v in variants.items() if v == forced and type(v) is type(forced)), None
        )
        value = forced
    problem = _type_error(value, flag_type)
    if problem is not None:
        return Resolution(
            key, None, None, Reason.ERROR, ErrorCode.TYPE_MISMATCH, problem, base.metadata
        )
    if flag_type is FlagType.FLOAT:
        value = float(value)
    return Resolution(key, value, variant, Reason.STATIC, None, None, base.metadata)


@dataclass(eq=False)
class _Layers:
    """The overrides in force on one target: provider-wide blocks, innermost last."""

    layers: list[Mapping[str, Any]] = field(default_factory=list)
    blocks: int = 0  # active blocks of either scope; the interceptor goes when it drops to 0

    def lookup(self, key: str) -> Any:
        for owner, overrides in reversed(_CONTEXT_LAYERS.get()):
            if owner is self and key in overrides:
                return overrides[key]
        for overrides in reversed(self.layers):
            if key in overrides:
                return overrides[key]
        return _MISSING

    def __call__(
        self,
        flags: FlagSet,
        key: str,
        context: Mapping[str, Any] | None,
        flag_type: FlagType | None,
    ) -> Resolution:
        forced = self.lookup(key)
        if forced is _MISSING:
            return flags.evaluate(key, context, flag_type)
        return _forced(flags, key, forced, context, flag_type)


_CONTEXT_LAYERS: ContextVar[tuple[tuple[_Layers, Mapping[str, Any]], ...]] = ContextVar(
    "stageless_flag_overrides", default=()
)
_LOCK = threading.Lock()  # guards installing and removing interceptors on providers


class OverriddenFlags:
    """A read-only view of a :class:`FlagSet` with some flags forced (by :func:`flag_overrides`)."""

    def __init__(self, flags: FlagSet, layers: _Layers) -> None:
        self._flags = flags
        self._layers = layers

    def evaluate(
        self, key: str, context: Mapping[str, Any] | None = None, flag_type: FlagType | None = None
    ) -> Resolution:
        return self._layers(self._flags, key, context, flag_type)

    def evaluate_all(self, context: Mapping[str, Any] | None = None) -> dict[str, Resolution]:
        return {key: self.evaluate(key, context) for key in self.keys()}

    def keys(self) -> list[str]:
        keys = list(self._flags.keys())
        extra = {key for layer in self._layers.layers for key in layer}
        extra |= {
            key for owner, layer in _CONTEXT_LAYERS.get() if owner is self._layers for key in layer
        }
        return keys + sorted(extra - set(keys))


@contextmanager
def flag_overrides(
    target: StagelessProvider | FlagSet | OverriddenFlags,
    overrides: Mapping[str, Any],
    *,
    scope: Scope = "provider",
) -> Iterator[Any]:
    """Force flags inside a ``with`` block, restoring them on exit.

    Each value in ``overrides`` names a variant of the flag (``"on"``) or, if no variant has
    that name, is the value itself; a value equal to a variant's value reports that variant.
    Overridden flags resolve with reason STATIC; a flag missing from the set may be overridden
    too. A typed evaluation of an override of the wrong type gives TYPE_MISMATCH, as a real
    flag would. Blocks nest; the innermost wins.

    For a :class:`StagelessProvider` the overrides apply to every evaluation through it, across
    threads (``scope="provider"``), or only in the current thread / asyncio task and the tasks
    it starts (``scope="context"``, built on :mod:`contextvars`; context overrides win over
    provider-wide ones). The block yields the provider. A :class:`FlagSet` is immutable, so
    the block yields an :class:`OverriddenFlags` view of it instead.
    """
    if not isinstance(target, StagelessProvider):
        if isinstance(target, OverriddenFlags):
            view = OverriddenFlags(target._flags, _Layers(list(target._layers.layers)))
        else:
            view = OverriddenFlags(target, _Layers())
        with _layered(view._layers, dict(overrides), scope):
            yield view
        return
    with _LOCK:
        layers = target._interceptor
        if not isinstance(layers, _Layers):
            layers = _Layers()
        layers.blocks += 1
        target._set_interceptor(layers)
    try:
        with _layered(layers, dict(overrides), scope):
            yield target
    finally:
        with _LOCK:
            layers.blocks -= 1
            if layers.blocks == 0:
                target._set_interceptor(None)


@contextmanager
def _layered(layers: _Layers, overrides: Mapping[str, Any], scope: Scope) -> Iterator[None]:
    if scope == "context":
        token = _CONTEXT_LAYERS.set((*_CONTEXT_LAYERS.get(), (layers, overrides)))
        try:
            yield
        finally:
            _CONTEXT_LAYERS.reset(token)
        return
    with _LOCK:
        layers.layers.append(overrides)
    try:
        yield
    finally:
        with _LOCK:
            # Remove this block's layer by identity: threads may exit blocks out of order.
            index = next(i for i, layer in enumerate(layers.layers) if layer is overrides)
            del layers.layers[index]
