"""POST /api/v1/proxy-configs/{name}/reports: only the proxy token bound to the config (or an
admin) reports; a bad report is refused with every path and nothing stored; a good one is kept
for the runner."""

from __future__ import annotations

import json

from stageless.diff import state_to_json
from stageless.service import Service
from tests.analysis.factories import batch
from tests.api.conftest import PROXY_DOC, Api
from tests.service.test_reports import diff_of

PATH = "/api/v1/proxy-configs/web/reports"


async def _with_config(api: Api) -> None:
    response = await api.client.put(
        "/api/v1/proxy-configs/web", content=PROXY_DOC, headers=api.headers("write")
    )
    assert response.status_code == 201, response.text


async def test_the_bound_proxy_token_reports_and_the_report_is_kept(api: Api) -> None:
    await _with_config(api)
    body = {
        "batches": [batch(ts=100.0).to_json(), batch(ts=101.0).to_json()],
        "diff": state_to_json(diff_of({"n": 2})),
    }
    response = await api.client.post(PATH, json=body, headers=api.headers("proxy"))
    assert response.status_code == 202, response.text
    assert response.json() == {"accepted": 2}
    reports = Service(api.store).reports
    assert reports.batches("web", "shop", 0.0) == [batch(ts=100.0), batch(ts=101.0)]
    assert reports.diff_since("web", 0.0).endpoints["GET /a"].differing == 1
    admin = await api.client.post(PATH, json={"batches": []}, headers=api.headers("admin"))
    assert admin.status_code == 202


async def test_other_tokens_may_not_report(api: Api) -> None:
    await _with_config(api)
    await api.client.put(
        "/api/v1/proxy-configs/other", content=PROXY_DOC, headers=api.headers("write")
    )
    for who in ("write", "read", "sdk"):
        response = await api.client.post(PATH, json={"batches": []}, headers=api.headers(who))
        assert response.status_code == 403, who
    elsewhere = await api.client.post(
        "/api/v1/proxy-configs/other/reports", json={"batches": []}, headers=api.headers("proxy")
    )
    assert elsewhere.status_code == 403
    assert "bound to proxy config 'web', not 'other'" in elsewhere.json()["detail"]


async def test_a_bad_report_names_every_path_and_stores_nothing(api: Api) -> None:
    await _with_config(api)
    body = {"batches": [batch().to_json(), {**batch().to_json(), "version": "blue"}], "diff": []}
    response = await api.client.post(PATH, content=json.dumps(body), headers=api.headers("proxy"))
    assert response.status_code == 422
    assert [e["path"] for e in response.json()["errors"]] == ["batches[1].version", "diff"]
    assert Service(api.store).reports.batches("web", "shop", 0.0) == []


async def test_a_report_for_a_missing_config_is_not_found(api: Api) -> None:
    response = await api.client.post(
        "/api/v1/proxy-configs/gone/reports", json={"batches": []}, headers=api.headers("admin")
    )
    assert response.status_code == 404
