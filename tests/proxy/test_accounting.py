"""Whose error is it: a failing candidate counts against the candidate, not against stable."""

from __future__ import annotations

import httpx

from stageless.analysis.batch import TrafficClass, Version
from tests.proxy.harness import running_proxy


async def test_a_dead_candidate_counts_as_candidate_errors_while_stable_serves_the_users() -> None:
    async with running_proxy(split={"weight": 100}) as proxy:
        await proxy.candidate.kill()
        async with httpx.AsyncClient() as client:
            for index in range(20):
                response = await client.get(
                    proxy.url + "/echo", headers={"Cookie": f"stageless-key=user-{index}"}
                )
                assert response.status_code == 200
                assert response.headers["x-upstream"] == "stable"
                echo = response.json()
                versions = [v for n, v in echo["headers"] if n.lower() == "x-stageless-version"]
                assert versions == ["stable"]  # the retried request is tagged as stable's
        proxy.app.merge()
        totals = dict(proxy.app.hub.aggregate.totals())
        candidate = totals[("shop", "default", Version.CANDIDATE, TrafficClass.USER)]
        stable = totals[("shop", "default", Version.STABLE, TrafficClass.USER)]
        assert (candidate.requests, candidate.errors) == (20, 20)
        assert (stable.requests, stable.errors) == (20, 0)
