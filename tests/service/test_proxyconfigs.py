"""Proxy-config use cases: validation as the proxy validates (before storage), preconditions,
secrets redacted for readers and redacted placeholders refused on write."""

from __future__ import annotations

import json

import pytest

from stageless.errors import NotFoundError, ValidationError
from stageless.service import (
    Precondition,
    PreconditionFailedError,
    Service,
    check_proxy_config,
)

SECRET = "service-test-signing-secret-0123456789"  # noqa: S105  # a test key
YAML = f"""\
signing_keys: [{{id: k1, secret: {SECRET}}}]
services:
  - name: shop
    stable: {{addresses: ["127.0.0.1:9001"]}}
    candidate: {{addresses: ["127.0.0.1:9002"]}}
    testers: true
"""
ANY = Precondition()


def test_yaml_is_validated_and_stored_as_canonical_json(service: Service) -> None:
    checked = check_proxy_config(YAML)
    assert checked.config.services[0].name == "shop"
    assert json.loads(checked.text) == checked.document
    written = service.proxy_configs.put("edge", YAML, precondition=ANY, actor="ci")
    assert written.created
    assert written.record.document == checked.text


def test_a_bad_document_reports_every_path_and_stores_nothing(service: Service) -> None:
    bad = YAML.replace("testers: true", "testers: yes\n    split: {weight: -1}")
    with pytest.raises(ValidationError) as caught:
        service.proxy_configs.put("edge", bad, precondition=ANY, actor="ci")
    paths = {issue.path for issue in caught.value.issues}
    assert {"services[0].testers", "services[0].split.weight"} <= paths
    assert service.proxy_configs.list_all() == []


def test_redacted_placeholders_are_refused_wherever_they_are(service: Service) -> None:
    service.proxy_configs.put("edge", YAML, precondition=ANY, actor="ci")
    redacted = service.proxy_configs.view("edge", secrets=False).document
    assert SECRET not in json.dumps(redacted)
    assert service.proxy_configs.view("edge", secrets=True).document["signing_keys"][0] == {
        "id": "k1",
        "secret": SECRET,
    }
    redacted["signing_keys"].append({"id": "k2", "secret": redacted["signing_keys"][0]["secret"]})
    with pytest.raises(ValidationError) as caught:
        check_proxy_config(json.dumps(redacted))
    assert [i.path for i in caught.value.issues] == [
        "signing_keys[0].secret",
        "signing_keys[1].secret",
    ]


def test_preconditions_fail_as_412s_do(service: Service) -> None:
    first = service.proxy_configs.put(
        "edge", YAML, precondition=Precondition(create_only=True), actor="ci"
    )
    with pytest.raises(PreconditionFailedError, match="already exists"):
        service.proxy_configs.put(
            "edge", YAML, precondition=Precondition(create_only=True), actor="ci"
        )
    with pytest.raises(PreconditionFailedError, match="does not exist"):
        service.proxy_configs.put("nope", YAML, precondition=Precondition(if_match="*"), actor="ci")
    with pytest.raises(PreconditionFailedError):
        service.proxy_configs.put(
            "edge", YAML, precondition=Precondition(if_match="stale"), actor="ci"
        )
    second = service.proxy_configs.put(
        "edge", YAML, precondition=Precondition(if_match=first.record.etag), actor="ci"
    )
    assert (second.created, second.record.version) == (False, 2)
    with pytest.raises(PreconditionFailedError):
        service.proxy_configs.delete("edge", if_match=first.record.etag, actor="ci")
    service.proxy_configs.delete("edge", if_match=second.record.etag, actor="ci")
    with pytest.raises(NotFoundError):
        service.proxy_configs.current("edge")
    assert [v.version for v in service.proxy_configs.versions("edge")] == [2, 1]
    assert service.proxy_configs.version("edge", 1).document == first.record.document
