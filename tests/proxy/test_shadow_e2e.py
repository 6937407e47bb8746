"""Dark launch through the running proxy: copies to the candidate, the user served by stable,
only safe methods unless a route opts in, and the diff report on the admin port."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import httpx

from stageless.analysis.batch import TrafficClass, Version
from tests.proxy.harness import Running, running_proxy
from tests.proxy.upstreams import Upstream

SHADOW: dict[str, Any] = {
    "shadow": {"share": 100, "timeout_s": 2},
    "routes": [{"name": "api", "prefix": "/api/", "shadow_methods": ["GET", "POST"]}],
}


async def settle(proxy: Running, copies: int) -> None:
    """Wait until the candidate has received ``copies`` requests and the comparisons ran."""
    async with asyncio.timeout(3):
        while proxy.candidate.requests.total() < copies:
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    proxy.app.merge()


def seen_by(upstream: Upstream, path: str) -> list[dict[str, str]]:
    """The headers (lower-case names) of every request ``upstream`` got for ``path``."""
    return [
        {name.lower(): value for name, value in request["headers"]}  # type: ignore[attr-defined]
        for request in upstream.seen
        if str(request["target"]).split("?")[0] == path
    ]


async def test_each_get_is_copied_to_the_candidate_and_answered_by_stable() -> None:
    async with running_proxy(admin=False, **SHADOW) as proxy, httpx.AsyncClient() as client:
        for n in range(10):
            response = await client.get(proxy.url + f"/echo?n={n}", headers={"baggage": "a=1"})
            assert response.status_code == 200
            assert response.headers["x-upstream"] == "stable"
        await settle(proxy, 10)
        copies = seen_by(proxy.candidate, "/echo")
        assert len(copies) == 10
        for headers in copies:
            assert headers["x-stageless-traffic"] == "shadow"
            assert headers["x-stageless-version"] == "candidate"
            members = {m.strip() for m in headers["baggage"].split(",")}
            assert members == {"a=1", "stageless.traffic=shadow"}
        # stable got the users' requests (untagged) and the noise samples (tagged shadow)
        stable = seen_by(proxy.stable, "/echo")
        assert sum("x-stageless-traffic" not in h for h in stable) == 10
        assert sum(h.get("x-stageless-traffic") == "shadow" for h in stable) == 10
        totals = dict(proxy.app.hub.aggregate.totals())
        assert totals[("shop", "default", Version.CANDIDATE, TrafficClass.SHADOW)].requests == 10
        assert totals[("shop", "default", Version.STABLE, TrafficClass.USER)].requests == 10
        assert totals[("shop", "default", Version.CANDIDATE, TrafficClass.USER)].requests == 0


async def test_posts_are_copied_only_where_a_route_opts_in() -> None:
    async with running_proxy(admin=False, **SHADOW) as proxy, httpx.AsyncClient() as client:
        for n in range(3):
            assert (await client.post(proxy.url + f"/echo?{n}", content=b"x")).status_code == 200
            assert (await client.head(proxy.url + f"/echo?{n}")).status_code == 200
        body = b"order=42"
        response = await client.post(proxy.url + "/api/orders", content=body)
        assert response.headers["x-upstream"] == "stable"
        await settle(proxy, 4)
        assert proxy.candidate.requests["/echo"] == 3  # the HEADs, not the POSTs
        assert [r["method"] for r in proxy.candidate.seen if r["target"] == "/echo?0"] == ["HEAD"]
        assert proxy.candidate.requests["/api/orders"] == 1
        copy = seen_by(proxy.candidate, "/api/orders")[0]
        assert copy["content-length"] == str(len(body))
        assert copy["x-stageless-traffic"] == "shadow"
        # the copy carried the body
        [request] = [r for r in proxy.candidate.seen if r["target"] == "/api/orders"]
        assert request["body_sha256"] == hashlib.sha256(body).hexdigest()


async def test_the_diff_report_shows_real_differences_and_not_noise() -> None:
    stable = Upstream("stable", fields={"price": 10, "currency": "EUR"})
    candidate = Upstream("candidate", fields={"price": 12, "currency": "EUR"})
    async with (
        running_proxy(stable_upstream=stable, candidate_upstream=candidate, **SHADOW) as proxy,
        httpx.AsyncClient() as client,
    ):
        for _ in range(20):
            response = await client.get(proxy.url + "/json")
            assert response.json()["price"] == 10  # users see stable's answer
        await settle(proxy, 20)
        report = (await client.get(proxy.admin_url + "/diff")).json()
        proxy.app.merge()
        counts = dict(proxy.app.hub.aggregate.shadow_totals())[("shop", "default")]
    endpoint = report["endpoints"]["shop GET /json"]
    assert endpoint["total"] == 20
    assert endpoint["critical"] is True
    fields = endpoint["fields"]
    price = [path for path in fields if "price" in path]
    noise = [path for path in fields if "request_id" in path]
    assert price and all(fields[path]["reported"] for path in price)
    assert all(not fields[path]["reported"] for path in noise)  # differs between stables too
    assert not [path for path in fields if "currency" in path]  # equal everywhere
    reported = [path for path, field in fields.items() if field["reported"]]
    assert reported == price, reported
    example = fields[price[0]]["examples"][0]
    assert "/json" in example["request"]
    assert counts["compared"] == 20
    assert counts["differing"] == 20
