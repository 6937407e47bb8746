"""Which driver steers a plan's traffic: the factory ``stageless serve`` uses by default.

``driver: builtin`` gets :class:`stageless.drivers.builtin.BuiltinDriver`, which edits the
plan's service inside its proxy config (pushed to the proxies that follow it) and reads the
proxies' stored reports. The data-plane drivers (:data:`DATA_PLANE_DRIVERS`: ``haproxy``,
``nginx``, ``gateway-api``) are made from the plan alone, with the settings block it carries
(docs/drivers.md). Tests and embedders pass their own factory to
:class:`~stageless.controller.runner.Controller` (``create_app(..., driver_factory=...)``).
"""

from __future__ import annotations

import importlib
from typing import Any

from stageless.controller.runner import DriverFactory
from stageless.drivers.base import Driver, DriverError
from stageless.rollout.plan import RolloutPlan
from stageless.service import Service

__all__ = ["DATA_PLANE_DRIVERS", "builtin_driver_factory"]

DATA_PLANE_DRIVERS = {
    "haproxy": ("stageless.drivers.haproxy", "HAProxyDriver"),
    "nginx": ("stageless.drivers.nginx", "NginxDriver"),
    "gateway-api": ("stageless.drivers.gateway", "GatewayDriver"),
}
"""The plan's ``driver`` -> (module, class) of the drivers built from the plan alone."""


def builtin_driver_factory(service: Service) -> DriverFactory:
    """A factory making the built-in proxy's driver over ``service`` and the data-plane
    drivers from their plans; any other driver raises :class:`DriverError` naming it."""

    def make(plan: RolloutPlan) -> Driver:
        if plan.driver in DATA_PLANE_DRIVERS:
            module_name, class_name = DATA_PLANE_DRIVERS[plan.driver]
            try:
                made: Driver = getattr(importlib.import_module(module_name), class_name)(plan)
            except ImportError as exc:
                raise DriverError(f"the {plan.driver} driver cannot be loaded: {exc}") from exc
            return made
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
