"""Reloads of the proxy's configuration: what a reload may not change, and what it changed.

:func:`reload_problems` lists the changed fields that need a restart (``listen``, ``admin``,
``workers``; the proxy then keeps its old configuration); :func:`diff_config` gives the reload
log line its content, one readable line per change, secrets shown only as ``changed``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, SecretStr

from stageless.errors import join_path, show
from stageless.proxy.config import RESTART_FIELDS, ProxyConfig, SigningKeyConfig
from stageless.proxy.services import RouteConfig, ServiceConfig

__all__ = ["diff_config", "reload_problems"]


def reload_problems(old: ProxyConfig, new: ProxyConfig) -> list[str]:
    """Why ``new`` cannot replace ``old`` without a restart: one line per changed field of
    ``RESTART_FIELDS`` (everything else may change on a reload). Empty: the reload may go on;
    otherwise the proxy keeps ``old``."""
    return [
        f"{name}: changed from {show(getattr(old, name))} to {show(getattr(new, name))}; "
        "this needs a restart"
        for name in RESTART_FIELDS
        if getattr(old, name) != getattr(new, name)
    ]


_KEYS: dict[type[BaseModel], str] = {
    ServiceConfig: "name",
    RouteConfig: "name",
    SigningKeyConfig: "id",
}


def diff_config(old: ProxyConfig, new: ProxyConfig) -> list[str]:
    """What changed, one readable line per change, e.g.
    ``services[checkout].split.weight: 5 -> 10``; secrets only say ``changed``."""
    lines: list[str] = []
    _diff("", old, new, lines)
    return lines


def _diff(path: str, old: Any, new: Any, out: list[str]) -> None:
    if isinstance(old, SigningKeyConfig) and isinstance(new, SigningKeyConfig):
        if old.key != new.key:
            out.append(f"{path}: secret changed")
        if old.secret_env != new.secret_env:
            out.append(f"{path}.secret_env: {show(old.secret_env)} -> {show(new.secret_env)}")
        return
    if old == new:
        return
    if isinstance(old, BaseModel) and type(old) is type(new):
        for name in type(old).model_fields:
            _diff(join_path(path, name), getattr(old, name), getattr(new, name), out)
        return
    if isinstance(old, SecretStr) or isinstance(new, SecretStr):
        out.append(f"{path}: changed")
        return
    if isinstance(old, tuple) and isinstance(new, tuple):
        key = next((_KEYS[type(item)] for item in (*old, *new) if type(item) in _KEYS), None)
        if key is not None:
            _diff_keyed(path, key, old, new, out)
            return
    if old is None and isinstance(new, BaseModel):
        out.append(f"{path}: added")
    elif new is None and isinstance(old, BaseModel):
        out.append(f"{path}: removed")
    else:
        out.append(f"{path}: {_shown(old)} -> {_shown(new)}")


def _shown(value: Any) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(_shown(item) for item in value) + "]"
    return show(value)


def _diff_keyed(
    path: str, key: str, old: tuple[Any, ...], new: tuple[Any, ...], out: list[str]
) -> None:
    before = {getattr(item, key): item for item in old}
    after = {getattr(item, key): item for item in new}
    out += [f"{path}: removed {name!r}" for name in before if name not in after]
    out += [f"{path}: added {name!r}" for name in after if name not in before]
    for name, item in after.items():
        if name in before:
            _diff(f"{path}[{name}]", before[name], item, out)
    kept_before = [name for name in before if name in after]
    kept_after = [name for name in after if name in before]
    if kept_before != kept_after:
        out.append(f"{path}: order {kept_before} -> {kept_after}")
