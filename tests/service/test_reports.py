"""Proxy reports: validated with every bad path named, kept per proxy config, read back as
batches of one service since a time and as merged diff deltas."""

from __future__ import annotations

import json

import pytest

from stageless.analysis.batch import Version
from stageless.diff import CollectorState, DiffCollector, state_to_json
from stageless.errors import NotFoundError, ValidationError
from stageless.service import Precondition, Service, parse_report
from tests.analysis.factories import batch
from tests.diff.factories import json_response

PROXY_DOC = """\
services:
  - name: shop
    stable: {addresses: ["127.0.0.1:9001"]}
    candidate: {addresses: ["127.0.0.1:9002"]}
"""


def diff_of(*bodies: object) -> CollectorState:
    collector = DiffCollector()
    for body in bodies:
        collector.record("GET /a", json_response({"n": 1}), json_response(body))
    return collector.take()


def test_a_report_is_stored_and_read_back_by_service_and_time(service: Service) -> None:
    service.proxy_configs.put("edge", PROXY_DOC, precondition=Precondition(), actor="ci")
    early, late = batch(ts=100.0), batch(Version.STABLE, ts=110.0)
    body = json.dumps(
        {
            "batches": [early.to_json(), late.to_json(), {**late.to_json(), "service": "cart"}],
            "diff": state_to_json(diff_of({"n": 2})),
        }
    )
    stored = service.reports.add_json("edge", body)
    assert stored.batches[:2] == (early, late)
    assert service.reports.batches("edge", "shop", 100.0) == [early, late]
    assert service.reports.batches("edge", "shop", 105.0) == [late]
    assert service.reports.batches("edge", "cart", 0.0)[0].service == "cart"
    assert service.reports.batches("other", "shop", 0.0) == []


def test_diff_deltas_are_merged(service: Service) -> None:
    service.proxy_configs.put("edge", PROXY_DOC, precondition=Precondition(), actor="ci")
    service.reports.add("edge", [], diff_of({"n": 2}))
    service.reports.add("edge", [], diff_of({"n": 1}, {"n": 3}))
    service.reports.add("edge", [], None)
    merged = service.reports.diff_since("edge", 0.0)
    (endpoint,) = merged.endpoints.values()
    assert (endpoint.total, endpoint.differing, endpoint.fields["body.n"].raw) == (3, 2, 2)
    assert service.reports.diff_since("edge", 1e12) == CollectorState()


def test_a_report_for_an_unknown_config_is_refused(service: Service) -> None:
    with pytest.raises(NotFoundError, match="proxy config 'edge' not found"):
        service.reports.add("edge", [batch()])


def test_a_bad_report_names_every_path() -> None:
    body = json.dumps(
        {
            "batches": [batch().to_json(), {**batch().to_json(), "errors": -1}, 7],
            "diff": {"untracked_requests": "x"},
            "extra": 1,
        }
    )
    with pytest.raises(ValidationError) as caught:
        parse_report(body)
    paths = [issue.path for issue in caught.value.issues]
    assert paths == ["extra", "batches[1].errors", "batches[2]", "diff.untracked_requests"]
    with pytest.raises(ValidationError, match="not valid JSON"):
        parse_report(b"{")
    with pytest.raises(ValidationError, match="batches: expected a list of batches"):
        parse_report("{}")
