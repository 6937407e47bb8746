"""Flag-set use cases: validation before storage, preconditions, history, compiled cache."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from stageless.errors import NotFoundError, ValidationError
from stageless.flags import Reason
from stageless.service import Precondition, PreconditionFailedError, Service, check_document
from stageless.store import open_store, sqlite_url

ON = '{"flags": {"banner": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on"}}}'  # noqa: E501
OFF = ON.replace('"defaultVariant": "on"', '"defaultVariant": "off"')
YAML = "flags:\n  banner:\n    state: ENABLED\n    variants: {on: true, off: false}\n    defaultVariant: off\n"  # noqa: E501
BAD = (
    '{"flags": {"banner": {"state": "MAYBE", "variants": {"on": true}, "defaultVariant": "blue"}}}'
)
ANY = Precondition()


def test_a_bad_document_reports_every_path_and_stores_nothing(service: Service) -> None:
    with pytest.raises(ValidationError) as caught:
        service.flag_sets.put("web", BAD, precondition=ANY, actor="ci")
    paths = {issue.path for issue in caught.value.issues}
    assert {"flags.banner.state", "flags.banner.defaultVariant"} <= paths
    assert service.flag_sets.list_all() == []
    assert service.audit.entries() == []


def test_yaml_is_stored_as_canonical_json(service: Service) -> None:
    written = service.flag_sets.put("web", YAML, precondition=ANY, actor="ci", format="yaml")
    assert written.created
    stored = service.flag_sets.current("web").document
    assert json.loads(stored) == written.view.document
    assert stored == check_document(json.dumps(written.view.document)).text


def test_create_or_replace_then_conditional_update(service: Service) -> None:
    first = service.flag_sets.put("web", ON, precondition=ANY, actor="ci").view.record
    second = service.flag_sets.put("web", OFF, precondition=ANY, actor="ci")
    assert not second.created
    assert second.view.record.version == first.version + 1
    with pytest.raises(PreconditionFailedError):
        service.flag_sets.put("web", ON, precondition=Precondition(if_match=first.etag), actor="ci")
    third = service.flag_sets.put(
        "web", ON, precondition=Precondition(if_match=second.view.record.etag), actor="ci"
    )
    assert third.view.record.version == 3


def test_create_only_fails_when_the_set_exists(service: Service) -> None:
    service.flag_sets.put("web", ON, precondition=Precondition(create_only=True), actor="ci")
    with pytest.raises(PreconditionFailedError, match="already exists"):
        service.flag_sets.put("web", OFF, precondition=Precondition(create_only=True), actor="ci")


def test_if_match_on_a_missing_set_fails_the_precondition(service: Service) -> None:
    with pytest.raises(PreconditionFailedError, match="does not exist"):
        service.flag_sets.put("web", ON, precondition=Precondition(if_match="*"), actor="ci")


def test_restore_makes_a_new_version_with_the_old_document(service: Service) -> None:
    service.flag_sets.put("web", ON, precondition=ANY, actor="ci")
    service.flag_sets.put("web", OFF, precondition=ANY, actor="ci")
    restored = service.flag_sets.restore("web", 1, if_match=None, actor="ops")
    assert restored.record.version == 3
    assert restored.document == json.loads(ON)
    assert [v.author for v in service.flag_sets.versions("web")] == ["ops", "ci", "ci"]
    with pytest.raises(NotFoundError):
        service.flag_sets.restore("web", 9, if_match=None, actor="ops")


def test_diff_between_versions(service: Service) -> None:
    service.flag_sets.put("web", ON, precondition=ANY, actor="ci")
    service.flag_sets.put("web", OFF, precondition=ANY, actor="ci")
    diff = service.flag_sets.diff("web", 1, 2)
    [change] = diff.changed["banner"]
    assert (change.path, change.before, change.after) == (
        "flags.banner.defaultVariant",
        "on",
        "off",
    )


def test_compiled_is_cached_per_version_and_dropped_on_change(service: Service) -> None:
    service.flag_sets.put("web", ON, precondition=ANY, actor="ci")
    first = service.flag_sets.compiled("web")
    assert service.flag_sets.compiled("web") is first
    assert first.flags.evaluate("banner").value is True
    service.flag_sets.put("web", OFF, precondition=ANY, actor="ci")
    second = service.flag_sets.compiled("web")
    assert second.version == 2
    assert second.flags.evaluate("banner").reason is Reason.STATIC
    assert second.flags.evaluate("banner").value is False


def test_compiled_sees_changes_made_by_another_store_on_the_same_database(
    service: Service, tmp_path: Path
) -> None:
    service.flag_sets.put("web", ON, precondition=ANY, actor="ci")
    assert service.flag_sets.compiled("web").version == 1
    with open_store(sqlite_url(tmp_path)) as other:
        other.update_flag_set("web", OFF, expected=None, actor="other")
    deadline = time.monotonic() + 2
    while service.flag_sets.compiled("web").version != 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert service.flag_sets.compiled("web").version == 2


def test_deleted_sets_are_not_found_for_evaluation(service: Service) -> None:
    service.flag_sets.put("web", ON, precondition=ANY, actor="ci")
    service.flag_sets.compiled("web")
    service.flag_sets.delete("web", if_match=None, actor="ci")
    with pytest.raises(NotFoundError):
        service.flag_sets.compiled("web")


def test_delete_with_a_stale_etag_fails_the_precondition(service: Service) -> None:
    record = service.flag_sets.put("web", ON, precondition=ANY, actor="ci").view.record
    service.flag_sets.put("web", OFF, precondition=ANY, actor="ci")
    with pytest.raises(PreconditionFailedError):
        service.flag_sets.delete("web", if_match=record.etag, actor="ci")
    assert service.flag_sets.current("web").version == 2
