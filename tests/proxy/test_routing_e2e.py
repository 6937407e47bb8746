"""Routing through the running proxy: sticky splits by cookie, header and client address, weight
changes that only add users to the candidate, tester tokens, and header hygiene."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from stageless.analysis.batch import TrafficClass, Version
from stageless.routing import SigningKey, is_candidate, issue_token, split_threshold, sticky_hash
from tests.proxy.harness import (
    SECRET,
    RawResponse,
    Running,
    echoed,
    header_values,
    read_response,
    running_proxy,
)

KEY = SigningKey("k1", SECRET.encode())


async def send(
    proxy: Running,
    target: str = "/echo",
    headers: tuple[tuple[str, str], ...] = (),
    *,
    local: str = "127.0.0.1",
) -> RawResponse:
    """One request on a new connection from ``local``, headers exactly as given."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", proxy.app.port, local_addr=(local, 0)
    )
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers)
    writer.write(
        f"GET {target} HTTP/1.1\r\nHost: shop\r\n{lines}Connection: close\r\n\r\n".encode()
    )
    response = await read_response(reader)
    writer.close()
    assert response.status == 200, response.body
    return response


def version_of(response: RawResponse) -> str:
    upstream = response.header("x-upstream")
    assert upstream is not None
    assert header_values(echoed(response.body), "x-stageless-version") == [upstream]
    return upstream


def predicted(key: str | bytes, weight: float) -> str:
    """The version the routing core gives this sticky key at this weight."""
    return (
        "candidate" if is_candidate(sticky_hash("shop", key), split_threshold(weight)) else "stable"
    )


def token(**overrides: Any) -> str:
    claims: dict[str, Any] = {
        "service": "shop",
        "traffic_class": TrafficClass.TESTER,
        "subject": "alice@example.com",
        "ttl_s": 300,
        "now": time.time(),
    }
    return issue_token(KEY, **(claims | overrides))


async def test_a_first_visit_gets_a_sticky_cookie_that_holds_the_version() -> None:
    async with running_proxy(admin=False, split={"weight": 50}) as proxy:
        seen = set()
        for _ in range(30):
            first = await send(proxy)
            cookie = first.header("set-cookie")
            assert cookie is not None
            value, *attributes = cookie.split("; ")
            name, _, key = value.partition("=")
            assert name == "stageless-key"
            assert len(key) == 22
            assert attributes == ["Path=/", "Max-Age=31536000", "HttpOnly", "SameSite=Lax"]
            version = version_of(first)
            assert version == predicted(key, 50)  # the first visit is routed by the new key
            for _ in range(3):
                later = await send(proxy, headers=(("Cookie", f"a=1; stageless-key={key}"),))
                assert later.header("set-cookie") is None
                assert version_of(later) == version
                assert header_values(echoed(later.body), "cookie") == [f"a=1; stageless-key={key}"]
            seen.add(version)
        assert seen == {"stable", "candidate"}


async def test_the_sticky_header_mode_keys_users_by_that_header() -> None:
    split = {"weight": 30, "sticky": {"header": "x-user"}}
    async with running_proxy(admin=False, split=split) as proxy:
        seen = set()
        for n in range(30):
            user = f"user-{n}"
            versions = {
                version_of(await send(proxy, headers=(("X-User", user),))) for _ in range(3)
            }
            assert versions == {predicted(user, 30)}
            seen |= versions
        assert seen == {"stable", "candidate"}
        response = await send(proxy, headers=(("X-User", "user-1"),))
        assert response.header("set-cookie") is None  # no cookie in header mode


async def test_the_client_address_mode_keys_users_by_their_address() -> None:
    split = {"weight": 50, "sticky": {"client_address": True}}
    async with running_proxy(admin=False, split=split) as proxy:
        seen = set()
        for n in range(2, 22):
            address = f"127.0.0.{n}"  # all of 127/8 is loopback
            versions = {version_of(await send(proxy, local=address)) for _ in range(2)}
            assert versions == {predicted(address, 50)}
            seen |= versions
        assert seen == {"stable", "candidate"}


async def test_raising_the_weight_only_moves_users_from_stable_to_candidate() -> None:
    users = [f"u{n}" for n in range(120)]
    split: dict[str, Any] = {"weight": 20, "sticky": {"header": "x-user"}}
    async with running_proxy(admin=False, split=split) as proxy:

        async def versions() -> dict[str, str]:
            return {u: version_of(await send(proxy, headers=(("X-User", u),))) for u in users}

        before = await versions()
        assert proxy.app.reload(proxy.config(split=split | {"weight": 60}))
        after = await versions()
    moved = {u for u in users if before[u] != after[u]}
    assert moved  # some users moved...
    assert all(before[u] == "stable" and after[u] == "candidate" for u in moved)  # ...one way
    assert sum(v == "candidate" for v in after.values()) > sum(
        v == "candidate" for v in before.values()
    )


async def test_a_valid_tester_token_routes_to_the_candidate_at_weight_zero() -> None:
    async with running_proxy(admin=False, split={"weight": 0}) as proxy:
        signed = token()
        for headers in (
            (("X-Stageless-Route", signed),),
            (("Cookie", f"theme=dark; stageless-route={signed}; stageless-key=abc"),),
        ):
            response = await send(proxy, headers=headers)
            assert version_of(response) == "candidate"
            echo = echoed(response.body)
            assert header_values(echo, "x-stageless-traffic") == ["tester"]
            assert header_values(echo, "baggage") == ["stageless.traffic=tester"]
            assert signed not in response.body.decode()  # the token never reaches an upstream
            assert header_values(echo, "x-stageless-route") == []
            assert response.header("set-cookie") is None  # a tester is no user
        cookies = header_values(echo, "cookie")
        assert cookies == ["theme=dark; stageless-key=abc"]
        # a synthetic check is recognised the same way, with its own class
        synthetic = await send(
            proxy, headers=(("X-Stageless-Route", token(traffic_class=TrafficClass.SYNTHETIC)),)
        )
        assert version_of(synthetic) == "candidate"
        assert header_values(echoed(synthetic.body), "x-stageless-traffic") == ["synthetic"]
        # stable users meanwhile
        assert version_of(await send(proxy)) == "stable"

        proxy.app.merge()
        totals = dict(proxy.app.hub.aggregate.totals())
    tester = totals[("shop", "default", Version.CANDIDATE, TrafficClass.TESTER)]
    assert tester.requests == 2
    assert totals[("shop", "default", Version.CANDIDATE, TrafficClass.SYNTHETIC)].requests == 1
    assert totals[("shop", "default", Version.CANDIDATE, TrafficClass.USER)].requests == 0
    assert totals[("shop", "default", Version.STABLE, TrafficClass.USER)].requests == 1


async def test_forged_expired_and_unbacked_tags_are_stripped_and_count_as_users() -> None:
    other_key = SigningKey("k1", b"x" * 40)
    forged = issue_token(
        other_key,
        service="shop",
        traffic_class=TrafficClass.TESTER,
        subject="mallory",
        ttl_s=300,
        now=time.time(),
    )
    expired = token(now=time.time() - 600, ttl_s=60)
    wrong_service = token(service="billing")
    async with running_proxy(admin=False, split={"weight": 0}) as proxy:
        attempts = [
            (("X-Stageless-Route", forged),),
            (("X-Stageless-Route", expired),),
            (("X-Stageless-Route", wrong_service),),
            (("X-Stageless-Route", "st1.garbage.garbage"),),
            (("Cookie", f"stageless-route={forged}; a=1"),),
            (("X-Stageless-Traffic", "tester"), ("X-Stageless-Version", "candidate")),
            (("Baggage", "stageless.traffic=tester, userId=42,stageless.other=1"),),
            (("baggage", "stageless.traffic=synthetic"),),
        ]
        for headers in attempts:
            response = await send(proxy, headers=headers)
            echo = echoed(response.body)
            assert version_of(response) == "stable", headers
            assert header_values(echo, "x-stageless-traffic") == [], headers
            assert header_values(echo, "x-stageless-route") == [], headers
            assert all("stageless." not in v for v in header_values(echo, "baggage")), headers
            assert all("stageless-route" not in v for v in header_values(echo, "cookie"))
            assert response.header("set-cookie") is not None  # treated as a new user
        kept = await send(proxy, headers=attempts[6])
        assert header_values(echoed(kept.body), "baggage") == ["userId=42"]
        cookie = await send(proxy, headers=attempts[4])
        assert header_values(echoed(cookie.body), "cookie") == ["a=1"]
        proxy.app.merge()
        totals = dict(proxy.app.hub.aggregate.totals())
    users = totals[("shop", "default", Version.STABLE, TrafficClass.USER)].requests
    assert users == len(attempts) + 2
    assert not any(t.requests for (_, _, _, c), t in totals.items() if c is not TrafficClass.USER)


async def test_tokens_are_ignored_when_the_service_does_not_honour_testers() -> None:
    async with running_proxy(admin=False, split={"weight": 0}, testers=False) as proxy:
        response = await send(proxy, headers=(("X-Stageless-Route", token()),))
        assert version_of(response) == "stable"
        assert header_values(echoed(response.body), "x-stageless-route") == []


async def test_users_routed_before_a_split_change_are_not_new_users_of_the_next_step() -> None:
    """A reload starts a step (``new_users`` counts afresh): the users the worker routed by the
    old split, not yet merged into the hub, belong to the old step. Counted in the new one, 30
    users all on stable at a configured 50 % look like a broken split to the judge."""
    async with running_proxy(admin=False, split={"weight": 0}) as proxy:
        aggregate = proxy.app.hub.aggregate
        proxy.app.merge()
        aggregate.emit_batches(time.time(), 1.0)  # start from an empty interval
        for _ in range(30):  # 30 new users (no cookie), all on stable at weight 0
            assert version_of(await send(proxy)) == "stable"

        proxy.app.reload(proxy.config(split={"weight": 50}))
        proxy.app.merge()
        batches = [
            b
            for b in aggregate.emit_batches(time.time(), 1.0)
            if b.traffic_class is TrafficClass.USER
        ]

        assert sum(b.requests for b in batches if b.version is Version.STABLE) == 30  # counted
        assert sum(b.new_users or 0 for b in batches) == 0  # but not as the new step's users
        assert {b.configured_share for b in batches} == {0.5}
