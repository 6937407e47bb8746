"""The REST client against a real ``stageless serve``: typed results and problem+json errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from stageless.client import ApiError, ControlPlaneClient, ServerUnreachableError
from tests.live_server import LiveServer
from tests.ports import free_port

GOOD = {
    "flags": {
        "a": {"state": "ENABLED", "variants": {"on": True, "off": False}, "defaultVariant": "on"}
    }
}
BAD = {"flags": {"a": {"state": "ENABLED", "variants": {"on": True}, "defaultVariant": "blue"}}}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, str, str]]:
    live = LiveServer(tmp_path_factory.mktemp("server"))
    admin = live.create_token("admin", "admin")
    reader = live.create_token("reader", "read")
    with live:
        yield live, admin, reader


def test_apply_get_list_history_delete(server: tuple[LiveServer, str, str]) -> None:
    live, admin, _ = server
    with ControlPlaneClient(live.url, admin) as client:
        created = client.apply_flag_set("c-one", json.dumps(GOOD), format="json", message="first")
        assert created.created and created.flag_set.version == 1
        yaml_doc = "flags:\n  a: {state: ENABLED, variants: {on: true}, defaultVariant: 'on'}\n"
        updated = client.apply_flag_set(
            "c-one", yaml_doc, format="yaml", if_match=created.flag_set.etag
        )
        assert not updated.created and updated.flag_set.version == 2
        got = client.get_flag_set("c-one")
        assert got.version == 2 and got.document["flags"]["a"]["variants"] == {"on": True}
        assert "c-one" in [row.name for row in client.list_flag_sets()]
        history = client.list_versions("c-one")
        assert [(v.version, v.author, v.message) for v in history] == [
            (2, "admin", ""),
            (1, "admin", "first"),
        ]
        client.delete_flag_set("c-one")
        with pytest.raises(ApiError) as missing:
            client.get_flag_set("c-one")
    assert missing.value.status == 404 and missing.value.problem_code == "not_found"


def test_a_rejected_document_carries_every_path(server: tuple[LiveServer, str, str]) -> None:
    live, admin, _ = server
    with ControlPlaneClient(live.url, admin) as client, pytest.raises(ApiError) as refused:
        client.apply_flag_set("c-bad", json.dumps(BAD), format="json")
    error = refused.value
    assert error.status == 422 and error.problem_code == "validation"
    assert [issue.path for issue in error.issues] == ["flags.a.defaultVariant"]
    assert "'blue' is not one of the variants" in str(error)


def test_stale_etag_is_a_precondition_failure(server: tuple[LiveServer, str, str]) -> None:
    live, admin, _ = server
    with ControlPlaneClient(live.url, admin) as client:
        first = client.apply_flag_set("c-etag", json.dumps(GOOD), format="json")
        client.apply_flag_set("c-etag", json.dumps(GOOD) + " ", format="json")
        with pytest.raises(ApiError) as lost:
            client.apply_flag_set(
                "c-etag", json.dumps(GOOD), format="json", if_match=first.flag_set.etag
            )
    assert lost.value.status == 412 and lost.value.problem_code == "precondition_failed"


def test_scopes_and_missing_tokens(server: tuple[LiveServer, str, str]) -> None:
    live, _, reader = server
    with ControlPlaneClient(live.url, reader) as client, pytest.raises(ApiError) as denied:
        client.apply_flag_set("c-scope", json.dumps(GOOD), format="json")
    assert denied.value.status == 403
    with ControlPlaneClient(live.url, None) as anonymous, pytest.raises(ApiError) as anon:
        anonymous.list_flag_sets()
    assert anon.value.status == 401 and anon.value.problem_code == "unauthorized"


def test_no_server(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with ControlPlaneClient(url, "t") as client, pytest.raises(ServerUnreachableError) as down:
        client.list_flag_sets()
    assert f"cannot reach the control plane at {url}" in str(down.value)
