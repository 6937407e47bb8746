"""The proxy forwards HTTP/1.1 faithfully: framing, streaming, hop-by-hop, X-Forwarded-*, pools."""

from __future__ import annotations

import httpx

from tests.proxy.harness import echoed, header_values, raw_exchange, running_proxy


async def test_get_is_forwarded_to_stable_with_forwarded_headers() -> None:
    async with running_proxy() as proxy, httpx.AsyncClient() as client:
        response = await client.get(
            proxy.url + "/echo?x=1",
            headers={"Host": "shop.example", "X-Forwarded-For": "203.0.113.9"},
        )
        assert response.status_code == 200
        assert response.headers["x-upstream"] == "stable"
        echo = echoed(response.content)
        assert echo["target"] == "/echo?x=1"
        assert header_values(echo, "x-forwarded-for") == ["203.0.113.9, 127.0.0.1"]
        assert header_values(echo, "x-forwarded-proto") == ["http"]
        assert header_values(echo, "x-forwarded-host") == ["shop.example"]
        assert header_values(echo, "x-stageless-version") == ["stable"]


async def test_hop_by_hop_headers_never_cross_the_proxy() -> None:
    async with running_proxy() as proxy:
        raw = await raw_exchange(
            proxy.app.port,
            b"GET /echo HTTP/1.1\r\nHost: a\r\nConnection: close, X-Secret-Hop\r\n"
            b"X-Secret-Hop: 1\r\nKeep-Alive: timeout=5\r\nProxy-Authorization: x\r\n"
            b"TE: trailers\r\nUpgrade-Insecure-Requests: 1\r\n\r\n",
        )
        head, _, body = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        assert b"Connection: close" in head
        names = {n.lower() for n, _ in echoed(body)["headers"]}
        assert not names & {"x-secret-hop", "keep-alive", "proxy-authorization", "te"}
        assert "upgrade-insecure-requests" in names  # an end-to-end header that looks similar
        assert "connection" not in names  # HTTP/1.1 upstream requests are keep-alive by default
