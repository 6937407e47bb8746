"""OFREP routes (placeholder until the OFREP module lands; the OFREP helper owns this file)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.routing import BaseRoute

if TYPE_CHECKING:
    from stageless.api.context import AppContext


def routes(ctx: AppContext) -> list[BaseRoute]:
    """The OFREP routes; none yet."""
    del ctx
    return []
