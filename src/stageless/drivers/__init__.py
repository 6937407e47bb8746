"""Rollout drivers: the one interface between the rollout runner and a data plane.

:class:`~stageless.drivers.base.Driver` is the interface; the built-in proxy's driver
(:class:`~stageless.drivers.builtin.BuiltinDriver`) steers it through the control plane.
"""

from stageless.drivers.base import Driver, DriverError, ShadowReport

__all__ = ["Driver", "DriverError", "ShadowReport"]
