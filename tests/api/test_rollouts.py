"""/api/v1/rollouts in process: start from YAML or JSON with every bad path named, one running
rollout per service, reads, requests recorded for the runner (and audited), history."""

from __future__ import annotations

import asyncio
import json

import yaml

from stageless.store import AuditAction, rollout_target
from tests.api.conftest import Api
from tests.api.rollout_support import PLAN, finished_rollout, held_rollout


async def test_a_plan_starts_a_rollout(api: Api) -> None:
    response = await api.client.post(
        "/api/v1/rollouts",
        content=PLAN,
        headers=api.headers("write", **{"Content-Type": "application/yaml"}),
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["location"] == f"/api/v1/rollouts/{body['id']}"
    assert body["id"].startswith("checkout-")
    assert (body["service"], body["phase"], body["finished"]) == ("checkout", "PENDING", False)
    assert body["step"] == {
        "index": 0,
        "number": 1,
        "of": 3,
        "kind": "testers",
        "description": "testers, manual approval",
        "started_at": None,
    }
    assert body["traffic"] == {"weight": 0.0, "testers": False, "shadow": 0.0}
    assert body["evidence"] == {"batches": 0, "decision": None}
    assert body["created_by"] == "write-token"
    assert body["plan"]["steps"][1] == {
        "kind": "canary",
        "weight": 5.0,
        "min_duration_s": 60.0,
        "max_duration_s": 600.0,
        "on_timeout": "pause",
        "judge": "default",
    }
    shown = await api.client.get(response.headers["location"], headers=api.headers("read"))
    assert shown.status_code == 200
    assert shown.json()["id"] == body["id"]


async def test_a_json_plan_is_accepted(api: Api) -> None:
    document = json.dumps(yaml.safe_load(PLAN))
    response = await api.client.post(
        "/api/v1/rollouts",
        content=document,
        headers=api.headers("write", **{"Content-Type": "application/json"}),
    )
    assert response.status_code == 201, response.text


async def test_an_invalid_plan_is_refused_with_every_path_and_nothing_is_stored(api: Api) -> None:
    bad = PLAN.replace("weight: 5", "weight: 140").replace("kind: testers", "kind: testerz")
    response = await api.client.post("/api/v1/rollouts", content=bad, headers=api.headers("write"))
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    paths = {error["path"] for error in response.json()["errors"]}
    assert {"steps[0].kind", "steps[1].weight"} <= paths, response.json()
    listed = await api.client.get("/api/v1/rollouts", headers=api.headers("read"))
    assert listed.json() == {"rollouts": []}


async def test_a_service_runs_one_rollout_at_a_time(api: Api) -> None:
    running = held_rollout(api.store)
    response = await api.client.post("/api/v1/rollouts", content=PLAN, headers=api.headers("write"))
    assert response.status_code == 409
    assert running in response.json()["detail"]


async def test_rollouts_are_listed_newest_first_and_filtered(api: Api) -> None:
    done = finished_rollout(api.store)
    running = held_rollout(api.store)
    read = api.headers("read")
    everything = (await api.client.get("/api/v1/rollouts", headers=read)).json()["rollouts"]
    assert [r["id"] for r in everything] == [running, done]
    only = await api.client.get("/api/v1/rollouts", params={"status": "finished"}, headers=read)
    assert [r["id"] for r in only.json()["rollouts"]] == [done]
    assert only.json()["rollouts"][0]["phase"] == "ABORTED"
    first = await api.client.get("/api/v1/rollouts", params={"limit": 1}, headers=read)
    assert [r["id"] for r in first.json()["rollouts"]] == [running]
    bad = await api.client.get("/api/v1/rollouts", params={"status": "done"}, headers=read)
    assert bad.status_code == 422
    assert bad.json()["errors"] == [
        {"path": "status", "message": "'done'; expected running or finished"}
    ]


async def test_requests_are_recorded_audited_and_refused_when_they_cannot_apply(api: Api) -> None:
    rollout = held_rollout(api.store)
    headers = api.headers("write", **{"X-Stageless-Message": "deploy freeze"})
    response = await api.client.post(f"/api/v1/rollouts/{rollout}/pause", headers=headers)
    assert response.status_code == 202
    request = response.json()["request"]
    assert (request["rollout"], request["action"], request["actor"], request["reason"]) == (
        rollout,
        "pause",
        "write-token",
        "deploy freeze",
    )
    pending = api.store.pending_rollout_requests(rollout)
    assert [r.id for r in pending] == [request["id"]]
    actions = [e.action for e in api.store.list_audit(target=rollout_target(rollout))]
    assert actions == [AuditAction.ROLLOUT_CREATE, AuditAction.ROLLOUT_PAUSE]
    approve = await api.client.post(
        f"/api/v1/rollouts/{rollout}/approve", headers=api.headers("write")
    )
    assert approve.status_code == 409
    assert "is not waiting for an approval" in approve.json()["detail"]
    done = finished_rollout(api.store, PLAN.replace("checkout", "cart"))
    late = await api.client.post(f"/api/v1/rollouts/{done}/abort", headers=api.headers("write"))
    assert late.status_code == 409
    assert "has finished (ABORTED)" in late.json()["detail"]


async def test_the_runner_records_why_a_rollout_without_its_proxy_config_pauses(api: Api) -> None:
    # The app's own runner with the built-in driver: no proxy config 'checkout' to steer.
    created = await api.client.post("/api/v1/rollouts", content=PLAN, headers=api.headers("write"))
    rollout = created.json()["id"]
    for _ in range(200):
        body = (
            await api.client.get(f"/api/v1/rollouts/{rollout}", headers=api.headers("read"))
        ).json()
        if body["phase"] == "PAUSED":
            break
        await asyncio.sleep(0.05)
    assert body["phase"] == "PAUSED", body
    assert "proxy config 'checkout' does not exist" in body["reason"]
    assert body["lease"]["owner"]
    history = await api.client.get(
        f"/api/v1/rollouts/{rollout}/history", params={"limit": 10}, headers=api.headers("read")
    )
    entries = history.json()["transitions"]
    assert [(e["from"], e["to"]) for e in entries] == [
        ("PENDING", "TESTING"),
        ("TESTING", "PAUSED"),
    ]
    assert entries[0]["event"] == {"type": "StartRequested", "by": "write-token"}
    assert entries[0]["actor"] == "write-token"
    assert entries[1]["event"]["type"] == "DriverFailed"
    assert entries[1]["actor"] == "stageless-controller"
    assert history.json()["next_after"] == 2
    rest = await api.client.get(
        f"/api/v1/rollouts/{rollout}/history", params={"after": 1}, headers=api.headers("read")
    )
    assert [e["seq"] for e in rest.json()["transitions"]] == [2]
    await api.client.post(f"/api/v1/rollouts/{rollout}/abort", headers=api.headers("write"))


async def test_a_proxy_token_reads_no_rollouts(api: Api) -> None:
    response = await api.client.get("/api/v1/rollouts", headers=api.headers("proxy"))
    assert response.status_code == 403
