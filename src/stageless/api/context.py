"""``AppContext``: what every route module gets from the app (no globals)."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import HTTPConnection

from stageless.api.auth import Auth
from stageless.api.metrics import Metrics
from stageless.controller import Controller
from stageless.service import ChangeHub, Service
from stageless.settings import Settings


@dataclass(frozen=True, slots=True)
class AppContext:
    """The settings, use cases, change hub, authenticator, metrics and rollout controller of
    one app."""

    settings: Settings
    service: Service
    hub: ChangeHub
    auth: Auth
    metrics: Metrics
    controller: Controller | None = None


def get_context(conn: HTTPConnection) -> AppContext:
    """The context of the app serving ``conn``."""
    ctx: AppContext = conn.app.state.ctx
    return ctx
