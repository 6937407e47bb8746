"""The built-in proxy driver against a real store: it edits one service of a proxy config, only
when something changes, promotes by moving the candidate's addresses to stable, and reads the
proxies' reports (batches of its service, its own diff endpoints, shadow copies)."""

from __future__ import annotations

import json

import pytest

from stageless.analysis.batch import TrafficClass, Version
from stageless.diff import DiffCollector, state_to_json
from stageless.drivers.base import DriverError
from stageless.drivers.builtin import BuiltinDriver
from stageless.rollout.commands import Traffic
from stageless.rollout.plan import RolloutPlan, parse_plan
from stageless.service import Precondition, Service
from tests.analysis.factories import batch
from tests.diff.factories import json_response

DOC = """\
signing_keys: [{id: k1, secret: "0123456789abcdef0123456789abcdef"}]
services:
  - name: shop
    stable: {addresses: ["127.0.0.1:9001"]}
    candidate: {addresses: ["127.0.0.1:9002"]}
    shadow: {share: 0, compare: {ignore_fields: [body.id]}}
  - name: cart
    hosts: [cart.example]
    stable: {addresses: ["127.0.0.1:9101"]}
    candidate: {addresses: ["127.0.0.1:9102"]}
"""


def plan(service: str, *, proxy_config: str = "edge") -> RolloutPlan:
    return parse_plan(
        f"service: {service}\nproxy_config: {proxy_config}\n"
        "stable: {addresses: ['127.0.0.1:9001']}\ncandidate: {addresses: ['127.0.0.1:9002']}\n"
        "steps: [{kind: promote}]\n"
    )


def driver(service: Service, name: str = "shop", now: float = 1000.0) -> BuiltinDriver:
    return BuiltinDriver(plan(name), service, clock=lambda: now)


def entry(service: Service, name: str = "shop") -> dict[str, object]:
    document = service.proxy_configs.view("edge", secrets=True).document
    found: dict[str, object] = next(s for s in document["services"] if s["name"] == name)
    return found


@pytest.fixture
def edge(service: Service) -> Service:
    service.proxy_configs.put("edge", DOC, precondition=Precondition(), actor="ci")
    return service


async def test_apply_edits_only_its_service_and_only_when_something_changes(edge: Service) -> None:
    shop = driver(edge)
    before = edge.proxy_configs.current("edge").version
    await shop.apply(Traffic(weight=5, testers=True, shadow=10))
    assert edge.proxy_configs.current("edge").version == before + 1
    assert entry(edge)["split"] == {"weight": 5}
    assert entry(edge)["testers"] is True
    assert entry(edge)["shadow"] == {"share": 10, "compare": {"ignore_fields": ["body.id"]}}
    assert "split" not in entry(edge, "cart")  # the other service is untouched
    await shop.apply(Traffic(weight=5, testers=True, shadow=10))
    assert edge.proxy_configs.current("edge").version == before + 1  # idempotent: no new version
    await shop.apply(Traffic())  # a rollback, in one write
    assert edge.proxy_configs.current("edge").version == before + 2
    assert entry(edge)["split"] == {"weight": 0}
    assert entry(edge)["testers"] is False
    assert entry(edge)["shadow"] == {"share": 0, "compare": {"ignore_fields": ["body.id"]}}
    versions = edge.proxy_configs.versions("edge")
    assert {v.author for v in versions[:2]} == {"rollout of shop"}  # the audit names the rollout


async def test_promote_makes_the_candidate_stable(edge: Service) -> None:
    shop = driver(edge)
    await shop.apply(Traffic(weight=100))
    await shop.promote()
    assert entry(edge)["stable"] == {"addresses": ["127.0.0.1:9002"]}
    assert entry(edge)["split"] == {"weight": 0}


async def test_a_missing_service_or_config_is_a_driver_error(edge: Service) -> None:
    with pytest.raises(DriverError, match="has no service 'nope'"):
        await driver(edge, "nope").apply(Traffic(weight=1))
    with pytest.raises(DriverError, match="proxy config 'shop' does not exist"):
        await BuiltinDriver(plan("shop", proxy_config="shop"), edge).apply(Traffic(weight=1))


async def test_batches_and_the_shadow_report_come_from_the_reports(edge: Service) -> None:
    shop = driver(edge, now=0.0)
    await shop.apply(Traffic(shadow=100))
    collector = DiffCollector()
    collector.record("shop GET /a", json_response({"n": 1}), json_response({"n": 2}))
    collector.record("cart GET /b", json_response({"n": 1}), json_response({"n": 3}))
    copies = batch(Version.CANDIDATE, ts=1100.0, requests=7, errors=2)
    body = {
        "batches": [
            batch(Version.STABLE, ts=1100.0).to_json(),
            {**copies.to_json(), "traffic_class": TrafficClass.SHADOW.value},
        ],
        "diff": state_to_json(collector.take()),
    }
    edge.reports.add_json("edge", json.dumps(body))
    got = await shop.batches(1000.0)
    assert [(b.version, b.traffic_class) for b in got] == [
        (Version.STABLE, TrafficClass.USER),
        (Version.CANDIDATE, TrafficClass.SHADOW),
    ]
    report = await shop.shadow_report()
    assert (report.sent, report.failed) == (7, 2)
    assert report.report is not None
    assert [e.endpoint for e in report.report.endpoints] == ["shop GET /a"]  # not cart's
