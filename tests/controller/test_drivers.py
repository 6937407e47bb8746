"""The default driver factory of ``stageless serve``: the built-in proxy's driver over the
control plane's service, and the data-plane drivers made from the plan alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from stageless.controller.drivers import DATA_PLANE_DRIVERS, builtin_driver_factory
from stageless.drivers.base import DriverError
from stageless.drivers.builtin import BuiltinDriver
from stageless.drivers.gateway import GatewayDriver
from stageless.drivers.haproxy import HAProxyDriver
from stageless.drivers.nginx import NginxDriver
from stageless.rollout.plan import parse_plan
from stageless.service import Service
from stageless.store import open_store, sqlite_url

HEAD = (
    "service: shop\nstable: {addresses: ['shop-stable:80']}\n"
    "candidate: {addresses: ['shop-canary:80']}\nsteps: [{kind: promote}]\n"
)


@pytest.mark.parametrize(
    ("settings", "made"),
    [
        ("", BuiltinDriver),
        ("driver: haproxy\nhaproxy: {socket: /run/h.sock}\n", HAProxyDriver),
        ("driver: nginx\nnginx: {config: /tmp/stageless-factory/shop.conf}\n", NginxDriver),
        ("driver: gateway-api\ngateway: {parent_refs: [{name: edge}]}\n", GatewayDriver),
    ],
)
async def test_each_plan_gets_its_drivers_class(
    tmp_path: Path, settings: str, made: type[object]
) -> None:
    store = open_store(sqlite_url(tmp_path))
    service = Service(store)
    try:
        driver = builtin_driver_factory(service)(parse_plan(HEAD + settings))
        assert isinstance(driver, made)
        await driver.close()
    finally:
        service.close()
        store.close()


def test_every_data_plane_driver_of_the_plan_model_is_registered() -> None:
    from stageless.rollout.plan import DRIVERS

    assert set(DATA_PLANE_DRIVERS) == set(DRIVERS) - {"builtin"}


def test_a_driver_that_cannot_be_made_is_a_driver_error() -> None:
    plan = parse_plan(HEAD + "driver: nginx\nnginx: {config: /tmp/x.conf}\n")
    broken = plan.model_copy(update={"nginx": None})
    with pytest.raises(DriverError, match="no nginx settings"):
        builtin_driver_factory(None)(broken)  # type: ignore[arg-type]
