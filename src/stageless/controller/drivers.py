"""Which driver steers a plan's traffic: the factory ``stageless serve`` uses by default.

``driver: builtin`` gets :class:`stageless.drivers.builtin.BuiltinDriver`, which edits the
plan's service inside its proxy config (pushed to the proxies that follow it) and reads the
proxies' stored reports. Tests and embedders pass their own factory to
:class:`~stageless.controller.runner.Controller` (``create_app(..., driver_factory=...)``).
"""

from __future__ import annotations

import importlib
from typing import Any

from stageless.controller.runner import DriverFactory
from stageless.drivers.base import Driver, DriverError
from stageless.rollout.plan import RolloutPlan
from stageless.service import Service

__all__ = ["builtin_driver_factory"]


def builtin_driver_factory(service: Service) -> DriverFactory:
    """A factory making the built-in proxy's driver over ``service``; other drivers raise
    :class:`DriverError` naming the driver."""

    def make(plan: RolloutPlan) -> Driver:
        if plan.driver != "builtin":
            raise DriverError(
                f"driver {plan.driver!r} is not available in this control plane; expected builtin"
            )
        try:
            module: Any = importlib.import_module("stageless.drivers.builtin")
        except ImportError as exc:
            raise DriverError(f"the built-in driver cannot be loaded: {exc}") from exc
        driver: Driver = module.BuiltinDriver(plan, service)
        return driver

    return make
