"""Dark launch through the running proxy: copies to the candidate, the user served by stable,
only safe methods unless a route opts in, and the diff report on the admin port."""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from typing import Any

import httpx
import pytest
import yaml

from stageless.analysis.batch import TrafficClass, Version
from stageless.proxy.app import ProxyApp
from stageless.proxy.config import parse_config
from tests.proxy.harness import SECRET, Running, running_proxy
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


def shadow_tagged(upstream: Upstream, path: str) -> int:
    return sum(h.get("x-stageless-traffic") == "shadow" for h in seen_by(upstream, path))


async def test_writes_never_get_a_second_stable_sample() -> None:
    """Stable is production: a POST a route opts into shadowing goes to the candidate only."""
    config = {**SHADOW, "shadow": {"share": 100, "timeout_s": 2, "noise_share": 100}}
    async with running_proxy(**config) as proxy, httpx.AsyncClient() as client:
        for n in range(3):
            assert (await client.post(proxy.url + "/api/orders", content=b"%d" % n)).is_success
            assert (await client.get(proxy.url + "/api/items")).is_success
        await settle(proxy, 6)
        report = (await client.get(proxy.admin_url + "/diff")).json()
    assert [r["method"] for r in proxy.stable.seen if r["target"] == "/api/orders"] == ["POST"] * 3
    assert shadow_tagged(proxy.stable, "/api/orders") == 0
    assert shadow_tagged(proxy.candidate, "/api/orders") == 3
    assert shadow_tagged(proxy.stable, "/api/items") == 3  # GETs: a second sample each
    endpoints = report["endpoints"]
    assert endpoints["shop POST /api/orders"]["noise_sampled"] == 0
    assert endpoints["shop GET /api/items"]["noise_sampled"] == 3


async def test_each_endpoints_first_copies_get_a_second_sample_then_the_share() -> None:
    # a share of one in 10^8 copies: after the first three, none of these get one
    shadow = {"share": 100, "timeout_s": 2, "noise_share": 1e-6, "noise_first": 3}
    async with (
        running_proxy(admin=False, **{**SHADOW, "shadow": shadow}) as proxy,
        httpx.AsyncClient() as client,
    ):
        for n in range(6):
            assert (await client.get(proxy.url + f"/echo?n={n}")).is_success
        for _ in range(2):
            assert (await client.get(proxy.url + "/json")).is_success
        await settle(proxy, 8)
    assert shadow_tagged(proxy.candidate, "/echo") == 6
    assert shadow_tagged(proxy.stable, "/echo") == 3
    assert shadow_tagged(proxy.stable, "/json") == 2  # another endpoint: its own first three


async def test_a_noise_share_of_0_sends_no_second_samples() -> None:
    shadow = {"share": 100, "timeout_s": 2, "noise_share": 0, "noise_first": 3}
    async with (
        running_proxy(admin=False, **{**SHADOW, "shadow": shadow}) as proxy,
        httpx.AsyncClient() as client,
    ):
        for n in range(4):
            assert (await client.get(proxy.url + f"/echo?n={n}")).is_success
        await settle(proxy, 4)
    assert shadow_tagged(proxy.candidate, "/echo") == 4
    assert shadow_tagged(proxy.stable, "/echo") == 0


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


async def test_copies_answered_the_same_are_counted_in_the_diff_report() -> None:
    # A candidate that answers byte for byte as stable does: the copies are compared without
    # lifting (the dispatcher counts them and hands the counts over with the worker's diff).
    candidate = Upstream("stable")  # the same name: the same answers
    async with (
        running_proxy(candidate_upstream=candidate, **SHADOW) as proxy,
        httpx.AsyncClient() as client,
    ):
        for _ in range(12):
            assert (await client.get(proxy.url + "/chunked")).status_code == 200
        await settle(proxy, 12)
        report = (await client.get(proxy.admin_url + "/diff")).json()
        counts = dict(proxy.app.hub.aggregate.shadow_totals())[("shop", "default")]
    endpoint = report["endpoints"]["shop GET /chunked"]
    assert (endpoint["total"], endpoint["differing"], endpoint["fields"]) == (12, 0, {}), endpoint
    assert counts["compared"] == 12 and counts["differing"] == 0


# -- pipelined copies (shadow.pipeline) -----------------------------------------------------------

#: The echo's fields that tell the two versions and the copies' tags apart; left out, a copy's
#: answer equals stable's only if it is the answer to the same request.
SAME_ANSWER = {"ignore_fields": ["body.upstream", "body.headers"]}


async def concurrent_gets(
    proxy: Running, paths: list[str], method: str = "GET", ok: tuple[int, ...] = (200,)
) -> None:
    """One request per path, all at once, each on a connection of its own, answered ``ok``."""

    async def one(path: str) -> None:
        async with httpx.AsyncClient() as client:
            response = await client.request(method, proxy.url + path)
            assert response.status_code in ok
            assert response.headers["x-upstream"] == "stable"

    await asyncio.gather(*(one(path) for path in paths))


def shadow_counts(proxy: Running) -> Counter[str]:
    """The service's shadow counters so far (all 0 before the first copy ended)."""
    proxy.app.merge()
    return Counter(dict(proxy.app.hub.aggregate.shadow_totals()).get(("shop", "default"), {}))


async def counted(proxy: Running, outcomes: tuple[str, ...], total: int) -> Counter[str]:
    """The shadow counters, once ``outcomes`` add up to ``total`` (within 3 s)."""
    async with asyncio.timeout(3):
        while True:
            counts = shadow_counts(proxy)
            if sum(counts[outcome] for outcome in outcomes) >= total:
                return counts
            await asyncio.sleep(0.02)


@pytest.mark.parametrize("pipeline", [1, 8])
async def test_pipelined_copies_share_a_connection_and_each_gets_its_own_answer(
    pipeline: int,
) -> None:
    # The candidate takes 0.1 s per answer: copies sent within that time, one per connection,
    # need a connection each; pipelined, they share.
    candidate = Upstream("candidate", delay_s=0.1)
    shadow = {"share": 100, "timeout_s": 3, "pipeline": pipeline, "compare": SAME_ANSWER}
    async with running_proxy(admin=False, candidate_upstream=candidate, shadow=shadow) as proxy:
        await concurrent_gets(proxy, [f"/echo?n={n}" for n in range(8)])
        counts = await counted(proxy, ("compared",), 8)
        targets = sorted(str(request["target"]) for request in candidate.seen)
    assert targets == sorted(f"/echo?n={n}" for n in range(8))
    if pipeline == 1:
        assert candidate.connections == 8
    else:
        assert candidate.connections < 8
    # every copy was compared with stable's answer to the same request: none differs
    assert counts["sent"] == counts["compared"] == 8, counts
    assert counts["differing"] == 0, counts


async def test_pipelined_answers_read_plain_and_parsed_alike() -> None:
    # Echoes (Content-Length: read without the parser), chunked answers and 204s (read by the
    # parser) back to back on the same pipelined connections, in any order.
    candidate = Upstream("candidate", delay_s=0.05)
    shadow = {"share": 100, "timeout_s": 3, "pipeline": 8, "compare": SAME_ANSWER}
    paths = [p for n in range(4) for p in (f"/echo?n={n}", f"/chunked?n={n + 1}", "/status/204")]
    async with running_proxy(admin=False, candidate_upstream=candidate, shadow=shadow) as proxy:
        await concurrent_gets(proxy, paths, ok=(200, 204))
        counts = await counted(proxy, ("compared",), len(paths))
    assert candidate.connections < len(paths)
    assert counts["sent"] == counts["compared"] == len(paths), counts
    assert counts["differing"] == 0, counts


@pytest.mark.parametrize("failure", ["resetting", "slow"])
async def test_a_pipelined_connection_that_fails_drops_its_copies_and_no_user_request(
    failure: str,
) -> None:
    candidate = Upstream(
        "candidate", delay_s=0.3 if failure == "slow" else 0.0, reset_all=failure == "resetting"
    )
    shadow = {"share": 100, "timeout_s": 0.1, "pipeline": 8}
    async with running_proxy(admin=False, candidate_upstream=candidate, shadow=shadow) as proxy:
        await concurrent_gets(proxy, [f"/echo?n={n}" for n in range(8)])
        counts = await counted(proxy, ("dropped_error", "dropped_timeout"), 8)
    assert candidate.connections < 8  # the copies were pipelined
    outcome = "dropped_timeout" if failure == "slow" else "dropped_error"
    assert counts[outcome] == 8, counts
    assert counts["sent"] == counts["compared"] == 0, counts


async def test_heads_are_not_pipelined_and_are_compared() -> None:
    # The answer to a HEAD has a Content-Length and no body: a parser reading pipelined answers
    # would wait for that body. HEAD copies go one per connection.
    candidate = Upstream("candidate", delay_s=0.1)
    shadow = {"share": 100, "timeout_s": 3, "pipeline": 8, "compare": SAME_ANSWER}
    async with running_proxy(admin=False, candidate_upstream=candidate, shadow=shadow) as proxy:
        await concurrent_gets(proxy, [f"/echo?n={n}" for n in range(6)], method="HEAD")
        counts = await counted(proxy, ("compared",), 6)
    assert candidate.connections == 6
    assert counts["sent"] == counts["compared"] == 6, counts


async def test_copies_left_unanswered_by_a_server_that_closes_are_sent_again_alone() -> None:
    # A server that closes the connection after each answer (Connection: close) never reads
    # the requests behind the first: they are sent again, one per connection, and that
    # address is no longer pipelined.
    candidate = Upstream("candidate", delay_s=0.05, keep_alive=False)
    shadow = {"share": 100, "timeout_s": 3, "pipeline": 8, "compare": SAME_ANSWER}
    async with running_proxy(admin=False, candidate_upstream=candidate, shadow=shadow) as proxy:
        await concurrent_gets(proxy, [f"/echo?n={n}" for n in range(8)])
        counts = await counted(proxy, ("compared",), 8)
        await concurrent_gets(proxy, [f"/echo?m={n}" for n in range(4)])
        later = await counted(proxy, ("compared",), 12)
    assert counts["sent"] == counts["compared"] == 8, counts
    assert counts["differing"] == 0, counts
    assert later["sent"] == 12 and later["dropped_error"] == 0, later
    assert sorted(str(r["target"]) for r in candidate.seen if "n=" in str(r["target"])) == sorted(
        f"/echo?n={n}" for n in range(8)
    )


async def test_each_copy_is_dropped_at_its_own_deadline() -> None:
    # One timer serves every copy in flight (set for the earliest deadline): copies sent at
    # different times, with slow and quick answers among them, are each dropped once their
    # own timeout_s has passed, and no earlier; the quick one between them is compared.
    shadow = {"share": 100, "timeout_s": 0.3, "compare": SAME_ANSWER}
    async with running_proxy(admin=False, shadow=shadow) as proxy:
        loop = asyncio.get_running_loop()
        sent: dict[str, float] = {}

        async def get(name: str, path: str, after_s: float) -> None:
            async with httpx.AsyncClient() as client:  # made first: that takes a while
                await asyncio.sleep(after_s)
                sent[name] = loop.time()
                assert (await client.get(proxy.url + path)).status_code == 200

        users = asyncio.gather(
            get("first", "/slow?ms=1000", 0.0),
            get("quick", "/slow?ms=20", 0.1),
            get("last", "/slow?ms=1000", 0.2),
        )
        drops: list[float] = []  # when dropped_timeout was seen to reach 1, then 2
        async with asyncio.timeout(3):
            while len(drops) < 2:
                seen = shadow_counts(proxy)["dropped_timeout"]
                drops += [loop.time()] * (seen - len(drops))
                await asyncio.sleep(0.005)
        await users
        counts = await counted(proxy, ("compared",), 1)
    assert counts["dropped_timeout"] == 2 and counts["sent"] == 1, counts
    assert drops[0] >= sent["first"] + 0.3
    assert drops[1] >= sent["last"] + 0.3  # not swept away with the first
    assert drops[1] - drops[0] >= 0.1  # the last's deadline, not the first sweep's


async def test_a_shorter_timeout_sent_later_is_enforced_first() -> None:
    # The one timer is set for the earliest deadline: a copy of a service with a short
    # timeout_s, sent after one with a long timeout, brings the timer forward.
    stable, candidate = await Upstream("stable").start(), await Upstream("candidate").start()

    def service(name: str, timeout_s: float) -> dict[str, Any]:
        return {
            "name": name,
            "hosts": [f"{name}.test"],
            "stable": {"addresses": [stable.address]},
            "candidate": {"addresses": [candidate.address]},
            "shadow": {"share": 100, "timeout_s": timeout_s},
        }

    document = {
        "listen": "127.0.0.1:0",
        "admin": None,
        "signing_keys": [{"id": "k1", "secret": SECRET}],
        "services": [service("patient", 5), service("hasty", 0.2)],
    }
    app = ProxyApp(parse_config(yaml.safe_dump(document), source="test"))
    await app.start()
    loop = asyncio.get_running_loop()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{app.port}") as client:

            async def get(host: str) -> None:
                answer = await client.get("/slow?ms=1500", headers={"host": host})
                assert answer.status_code == 200

            sent: list[float] = []

            async def hasty() -> None:
                await asyncio.sleep(0.1)
                sent.append(loop.time())
                await get("hasty.test")

            async def dropped() -> float:
                """When the hasty copy was seen dropped for time, after it was sent."""
                async with asyncio.timeout(3):
                    while True:
                        app.merge()
                        totals = dict(app.hub.aggregate.shadow_totals())
                        if totals.get(("hasty", "default"), {}).get("dropped_timeout"):
                            return loop.time() - sent[0]
                        await asyncio.sleep(0.005)

            _, _, dropped_after = await asyncio.gather(get("patient.test"), hasty(), dropped())
            app.merge()
            totals = dict(app.hub.aggregate.shadow_totals())
    finally:
        await app.stop()
        await stable.stop()
        await candidate.stop()
    assert 0.2 <= dropped_after < 1.0  # its own deadline, not the patient copy's (5 s)
    assert totals[("patient", "default")]["sent"] == 1  # answered after 1.5 s, in time
