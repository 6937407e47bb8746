"""The rollout controller's edge: runs rollouts inside ``stageless serve``.

:class:`Controller` runs the state machine (``stageless.rollout``) of every unfinished rollout
whose lease this instance holds, steering the data plane through a driver
(``stageless.drivers``), judging canaries with the sequential judge (``stageless.analysis``),
and recording every transition and the judge's evidence through ``stageless.service`` before
acting on it. :mod:`~stageless.controller.notifier` sends signed webhooks with retries;
:mod:`~stageless.controller.checks` asks webhook checks. See docs/rollouts.md, "Running
rollouts".
"""

from stageless.controller.checks import CheckOutcome, run_check
from stageless.controller.drivers import builtin_driver_factory
from stageless.controller.notifier import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    RetryPolicy,
    WebhookNotifier,
    sign,
    verify_signature,
)
from stageless.controller.run import CONTROLLER_ACTOR, RolloutRun
from stageless.controller.runner import Controller, DriverFactory, RunnerOptions, instance_id

__all__ = [
    "CONTROLLER_ACTOR",
    "DELIVERY_HEADER",
    "EVENT_HEADER",
    "SIGNATURE_HEADER",
    "CheckOutcome",
    "Controller",
    "DriverFactory",
    "RetryPolicy",
    "RolloutRun",
    "RunnerOptions",
    "WebhookNotifier",
    "builtin_driver_factory",
    "instance_id",
    "run_check",
    "sign",
    "verify_signature",
]
