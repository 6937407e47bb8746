"""REST flag-set routes: create, read, update, delete, ETags, versions, diff, restore, audit."""

from __future__ import annotations

import json

from tests.api.conftest import DOC, Api

URL = "/api/v1/flag-sets/web"
OFF = DOC.replace('"defaultVariant": "on"', '"defaultVariant": "off"')
BAD = (
    '{"flags": {"banner": {"state": "MAYBE", "variants": {"on": true}, "defaultVariant": "blue"}}}'
)
JSON = {"Content-Type": "application/json"}


async def test_create_read_update_delete(api: Api) -> None:
    created = await api.client.put(URL, content=DOC, headers=api.headers("write", **JSON))
    assert created.status_code == 201
    body = created.json()
    assert created.headers["etag"] == f'"{body["etag"]}"'
    assert created.headers["location"] == URL
    assert body["version"] == 1
    assert body["document"] == json.loads(DOC)

    read = await api.client.get(URL, headers=api.headers("read"))
    assert read.status_code == 200
    assert read.json()["etag"] == body["etag"]
    assert read.json()["warnings"] == []

    updated = await api.client.put(URL, content=OFF, headers=api.headers("write", **JSON))
    assert updated.status_code == 200
    assert updated.json()["version"] == 2

    listed = await api.client.get("/api/v1/flag-sets", headers=api.headers("read"))
    assert [(s["name"], s["version"]) for s in listed.json()["flag_sets"]] == [("web", 2)]

    deleted = await api.client.delete(URL, headers=api.headers("write"))
    assert deleted.status_code == 204
    assert (await api.client.get(URL, headers=api.headers("read"))).status_code == 404


async def test_yaml_bodies_are_accepted(api: Api) -> None:
    yaml = (
        "flags:\n  banner: {state: ENABLED, variants: {on: true, off: false}, defaultVariant: off}"
    )
    response = await api.client.put(
        URL, content=yaml, headers=api.headers("write", **{"Content-Type": "application/yaml"})
    )
    assert response.status_code == 201
    assert response.json()["document"]["flags"]["banner"]["defaultVariant"] == "off"


async def test_if_none_match_on_read_answers_304(api: Api) -> None:
    etag = (await api.client.put(URL, content=DOC, headers=api.headers("write"))).headers["etag"]
    again = await api.client.get(URL, headers=api.headers("read", **{"If-None-Match": etag}))
    assert again.status_code == 304
    assert again.headers["etag"] == etag
    assert again.content == b""


async def test_a_lost_update_gets_412_and_changes_nothing(api: Api) -> None:
    first = await api.client.put(URL, content=DOC, headers=api.headers("write"))
    etag = first.headers["etag"]
    ok = await api.client.put(URL, content=OFF, headers=api.headers("write", **{"If-Match": etag}))
    assert ok.status_code == 200
    lost = await api.client.put(
        URL, content=DOC, headers=api.headers("write", **{"If-Match": etag})
    )
    assert lost.status_code == 412
    assert lost.headers["content-type"] == "application/problem+json"
    assert lost.json()["code"] == "precondition_failed"
    current = await api.client.get(URL, headers=api.headers("read"))
    assert current.json()["version"] == 2
    assert current.json()["document"]["flags"]["banner"]["defaultVariant"] == "off"


async def test_create_only_gets_412_when_the_set_exists(api: Api) -> None:
    create_only = api.headers("write", **{"If-None-Match": "*"})
    assert (await api.client.put(URL, content=DOC, headers=create_only)).status_code == 201
    again = await api.client.put(URL, content=OFF, headers=create_only)
    assert again.status_code == 412


async def test_a_bad_document_gets_422_with_every_path_and_nothing_is_stored(api: Api) -> None:
    response = await api.client.put(URL, content=BAD, headers=api.headers("write", **JSON))
    assert response.status_code == 422
    problem = response.json()
    assert problem["code"] == "validation"
    paths = {error["path"] for error in problem["errors"]}
    assert {"flags.banner.state", "flags.banner.defaultVariant"} <= paths
    assert (await api.client.get(URL, headers=api.headers("read"))).status_code == 404
    audit = await api.client.get("/api/v1/audit?target=flag_set:web", headers=api.headers("read"))
    assert audit.json()["entries"] == []


async def test_history_diff_and_restore(api: Api) -> None:
    await api.client.put(URL, content=DOC, headers=api.headers("write"))
    await api.client.put(
        URL, content=OFF, headers=api.headers("write", **{"X-Stageless-Message": "dark launch"})
    )
    versions = (await api.client.get(URL + "/versions", headers=api.headers("read"))).json()
    assert [(v["version"], v["author"], v["message"]) for v in versions["versions"]] == [
        (2, "write-token", "dark launch"),
        (1, "write-token", ""),
    ]
    one = await api.client.get(URL + "/versions/1", headers=api.headers("read"))
    assert one.json()["document"] == json.loads(DOC)

    diff = await api.client.get(URL + "/diff?from=1&to=2", headers=api.headers("read"))
    assert diff.json()["changed"] == {
        "banner": [
            {
                "path": "flags.banner.defaultVariant",
                "kind": "changed",
                "before": "on",
                "after": "off",
            }
        ]
    }

    restored = await api.client.post(URL + "/versions/1/restore", headers=api.headers("write"))
    assert restored.status_code == 200
    assert restored.json()["version"] == 3
    assert restored.json()["document"] == json.loads(DOC)


async def test_restore_with_a_stale_etag_gets_412(api: Api) -> None:
    etag = (await api.client.put(URL, content=DOC, headers=api.headers("write"))).headers["etag"]
    await api.client.put(URL, content=OFF, headers=api.headers("write"))
    stale = api.headers("write", **{"If-Match": etag})
    response = await api.client.post(URL + "/versions/1/restore", headers=stale)
    assert response.status_code == 412


async def test_the_audit_log_records_who_changed_what_before_and_after(api: Api) -> None:
    await api.client.put(URL, content=DOC, headers=api.headers("write"))
    await api.client.put(URL, content=OFF, headers=api.headers("admin"))
    await api.client.delete(URL, headers=api.headers("write"))
    page = await api.client.get(
        "/api/v1/audit", params={"target": "flag_set:web"}, headers=api.headers("read")
    )
    entries = page.json()["entries"]
    assert [(e["actor"], e["action"]) for e in entries] == [
        ("write-token", "flag_set.create"),
        ("admin-token", "flag_set.update"),
        ("write-token", "flag_set.delete"),
    ]
    assert entries[0]["before"] is None
    assert entries[1]["before"] == json.loads(DOC)
    assert entries[1]["after"] == json.loads(OFF)
    assert entries[2]["after"] is None
    after = page.json()["next_after"]
    rest = await api.client.get(f"/api/v1/audit?after={after}", headers=api.headers("read"))
    assert rest.json()["entries"] == []
