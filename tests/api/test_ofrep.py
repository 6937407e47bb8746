"""OFREP on the wire: bodies, status codes, ETag/304 and which flag set a caller sees.

The real app over a real SQLite store, driven in-process through httpx (``api`` fixture); the
client tests (test_ofrep_python.py, test_ofrep_web.py) and the event streams
(test_ofrep_stream.py) use a server on a loopback port.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.routing import Route

from stageless.api import create_app
from stageless.api.ofrep import Ofrep, body_etag, etag_matches, loads
from stageless.store import open_store, sqlite_url
from tests.api.conftest import Api, make_settings, running_api
from tests.api.ofrep_server import DOCUMENT, document_with

BULK = "/ofrep/v1/evaluate/flags"


def one(key: str) -> str:
    return f"/ofrep/v1/evaluate/flags/{key}"


@pytest.fixture
async def web(api: Api) -> Api:
    response = await api.client.put(
        "/api/v1/flag-sets/web", json=DOCUMENT, headers=api.headers("admin")
    )
    assert response.status_code == 201, response.text
    return api


async def test_single_flag_success_body(web: Api) -> None:
    context = {"context": {"targetingKey": "u1", "email": "ann@example.com"}}
    response = await web.client.post(one("new-checkout"), json=context, headers=web.headers("sdk"))

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "key": "new-checkout",
        "reason": "TARGETING_MATCH",
        "variant": "on",
        "metadata": {"flagSetId": "web", "team": "growth"},
        "value": True,
    }


async def test_disabled_flag_omits_value_and_variant(web: Api) -> None:
    response = await web.client.post(one("retired"), json={}, headers=web.headers("sdk"))

    assert response.status_code == 200
    assert response.json() == {
        "key": "retired",
        "reason": "DISABLED",
        "metadata": {"flagSetId": "web", "team": "growth"},
    }


@pytest.mark.parametrize(
    ("body", "code", "details"),
    [
        (b"{not json", "PARSE_ERROR", "the request body is not JSON"),
        (b"[1, 2]", "PARSE_ERROR", "must be a JSON object, got list"),
        (b'{"context": "user-1"}', "INVALID_CONTEXT", "context: expected an object, got str"),
    ],
)
async def test_bad_request_bodies_are_400_with_an_error_code(
    web: Api, body: bytes, code: str, details: str
) -> None:
    single = await web.client.post(one("headline"), content=body, headers=web.headers("sdk"))
    bulk = await web.client.post(BULK, content=body, headers=web.headers("sdk"))

    assert (single.status_code, bulk.status_code) == (400, 400)
    assert single.json()["key"] == "headline"
    assert single.json()["errorCode"] == bulk.json()["errorCode"] == code
    assert details in single.json()["errorDetails"]
    assert "key" not in bulk.json()


async def test_empty_body_means_empty_context(web: Api) -> None:
    response = await web.client.post(one("headline"), headers=web.headers("sdk"))

    assert (response.status_code, response.json()["value"]) == (200, "Hello")


async def test_unknown_flag_is_404_flag_not_found(web: Api) -> None:
    response = await web.client.post(one("nope/with/slashes"), json={}, headers=web.headers("sdk"))

    assert response.status_code == 404
    assert response.json()["errorCode"] == "FLAG_NOT_FOUND"
    assert response.json()["key"] == "nope/with/slashes"


async def test_failing_rule_is_400_general(web: Api) -> None:
    response = await web.client.post(one("broken"), json={}, headers=web.headers("sdk"))

    assert response.status_code == 400
    assert response.json()["errorCode"] == "GENERAL"
    assert "'c'" in response.json()["errorDetails"]


@pytest.mark.parametrize(
    ("headers", "status", "details"),
    [
        ({}, 401, "a token is needed"),
        ({"Authorization": "Bearer stl_nope"}, 401, "unknown or revoked"),
        ({"X-API-Key": "stl_nope"}, 401, "unknown or revoked"),
    ],
)
async def test_auth_failures_answer_in_ofreps_shape(
    web: Api, headers: dict[str, str], status: int, details: str
) -> None:
    for path in (one("headline"), BULK):
        response = await web.client.post(path, json={}, headers=headers)

        assert response.status_code == status
        assert response.headers["content-type"] == "application/json"
        assert details in response.json()["errorDetails"]
        assert set(response.json()) == {"errorDetails"}


async def test_sdk_token_naming_another_flag_set_is_403(web: Api) -> None:
    headers = web.headers("sdk", **{"X-Stageless-Flag-Set": "default"})
    response = await web.client.post(BULK, json={}, headers=headers)

    assert response.status_code == 403
    assert "bound to flag set 'web'" in response.json()["errorDetails"]


async def test_x_api_key_and_the_flag_set_header_choose_the_set(web: Api) -> None:
    headers = {"X-API-Key": web.tokens["read"], "X-Stageless-Flag-Set": "web"}
    chosen = await web.client.post(one("headline"), json={}, headers=headers)
    default = await web.client.post(one("headline"), json={}, headers=web.headers("read"))

    assert chosen.json()["value"] == "Hello"
    assert default.status_code == 404
    assert default.json()["errorDetails"] == "flag set 'default' does not exist"


async def test_bulk_lists_every_flag_with_failures_as_items(web: Api) -> None:
    context = {"context": {"targetingKey": "u1"}}
    response = await web.client.post(BULK, json=context, headers=web.headers("sdk"))
    body = response.json()
    items = {item["key"]: item for item in body["flags"]}

    assert response.status_code == 200
    assert list(items) == list(DOCUMENT["flags"])
    assert items["headline"]["value"] == "Hello"
    assert "value" not in items["retired"]
    assert items["broken"]["errorCode"] == "GENERAL"
    assert "value" not in items["broken"]
    assert body["metadata"] == {"flagSetId": "web", "team": "growth"}
    [stream] = body["eventStreams"]
    assert stream["type"] == "sse"
    assert stream["inactivityDelaySec"] == 120
    assert stream["url"].startswith("http://api.test/ofrep/v1/events?token=sst_")
    assert stream["url"].endswith("&v=1")
    assert response.headers["cache-control"] == "no-store"


async def test_bulk_etag_and_304(web: Api) -> None:
    headers = web.headers("sdk")
    context = {"context": {"targetingKey": "u1", "plan": {"tier": "gold", "seats": 3}}}
    first = await web.client.post(BULK, json=context, headers=headers)
    etag = first.headers["etag"]
    again = await web.client.post(BULK, json=context, headers={**headers, "If-None-Match": etag})
    listed = await web.client.post(
        BULK, json=context, headers={**headers, "If-None-Match": f'"other", W/{etag}'}
    )
    star = await web.client.post(BULK, json=context, headers={**headers, "If-None-Match": "*"})
    stale = await web.client.post(BULK, json=context, headers={**headers, "If-None-Match": '"x"'})

    assert etag.startswith('"') and not etag.startswith("W/")
    assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", etag)
    assert (listed.status_code, star.status_code, stale.status_code) == (304, 304, 200)


async def test_bulk_etag_follows_the_body_and_the_version(web: Api) -> None:
    headers = web.headers("sdk")

    async def etag(body: bytes) -> str:
        response = await web.client.post(BULK, content=body, headers=headers)
        assert response.status_code == 200
        return response.headers["etag"]

    base = await etag(b'{"context":{"targetingKey":"u1","email":"a@b.c"}}')
    same = await etag(b'{"context":{"targetingKey":"u1","email":"a@b.c"}}')
    other_user = await etag(b'{"context":{"targetingKey":"u2","email":"a@b.c"}}')
    # The same context spelled otherwise is another tag: a 200 where a 304 could have been,
    # never a wrong 304 (docs/ofrep.md).
    reordered = await etag(b'{"context":{"email":"a@b.c","targetingKey":"u1"}}')
    await web.client.put(
        "/api/v1/flag-sets/web", json=document_with(headline="long"), headers=web.headers("admin")
    )
    changed = await etag(b'{"context":{"targetingKey":"u1","email":"a@b.c"}}')

    assert base == same
    assert len({base, other_user, reordered, changed}) == 4


async def test_time_dependent_rules_tag_the_evaluated_flags(web: Api) -> None:
    # A rule reading $flagd.timestamp can change its answer with no new version, so the tag
    # covers the result: it stays while the result does and follows it when it changes.
    # The flip is at least 2 s away: with +1 it could be 10 ms away, and a fresh-clone CI run
    # once took longer than that to store the set and ask, so "before" was already after it.
    flip = int(time.time()) + 3
    document = {
        "flags": {
            "sale": {
                "state": "ENABLED",
                "variants": {"on": True, "off": False},
                "defaultVariant": "off",
                "targeting": {"if": [{">=": [{"var": "$flagd.timestamp"}, flip]}, "on", "off"]},
            }
        }
    }
    await web.client.put("/api/v1/flag-sets/web", json=document, headers=web.headers("admin"))
    headers = web.headers("sdk")
    before = await web.client.post(BULK, json={}, headers=headers)
    same = await web.client.post(
        BULK, json={}, headers={**headers, "If-None-Match": before.headers["etag"]}
    )
    while time.time() < flip + 0.05:
        time.sleep(0.05)
    after = await web.client.post(
        BULK, json={}, headers={**headers, "If-None-Match": before.headers["etag"]}
    )

    assert before.json()["flags"][0]["value"] is False
    assert same.status_code == 304
    assert after.status_code == 200
    assert after.json()["flags"][0]["value"] is True


async def test_time_dependent_sets_reuse_answers_by_rule_results(web: Api) -> None:
    # Two users whose rule gives the same result share one kept answer (the result is what the
    # rule made of the time); a user with another result gets their own.
    rule = {"if": [{">=": [{"var": "$flagd.timestamp"}, {"var": "from"}]}, "on", "off"]}
    flags = {"variants": {"on": True, "off": False}, "defaultVariant": "off", "targeting": rule}
    document = {"flags": {"sale": {"state": "ENABLED", **flags}}}
    await web.client.put("/api/v1/flag-sets/web", json=document, headers=web.headers("admin"))
    headers = web.headers("sdk")

    def body(user: str, start: int) -> dict[str, Any]:
        return {"context": {"targetingKey": user, "from": start}}

    first = await web.client.post(BULK, json=body("u1", 0), headers=headers)
    second = await web.client.post(BULK, json=body("u2", 1), headers=headers)
    future = await web.client.post(BULK, json=body("u3", 10**12), headers=headers)

    assert [r.json()["flags"][0]["value"] for r in (first, second, future)] == [True, True, False]
    assert first.headers["etag"] == second.headers["etag"] != future.headers["etag"]
    assert len(ofrep_of(web).answers) == 2  # one answer per result, none per body


def ofrep_of(api: Api) -> Ofrep:
    """The app's OFREP endpoints object (white-box checks of its caches)."""
    route = next(r for r in api.app.routes if isinstance(r, Route) and r.path == BULK)
    cells = route.endpoint.__closure__ or ()
    bound = next(c.cell_contents for c in cells if hasattr(c.cell_contents, "__self__"))
    ofrep: Ofrep = bound.__self__
    return ofrep


async def test_each_caller_and_host_gets_its_own_stream_url(web: Api) -> None:
    # The descriptor of the last caller is reused only for the same caller, host and window.
    async def url(scope: str, host: str = "api.test") -> str:
        headers = web.headers(scope, **{"X-Stageless-Flag-Set": "web", "Host": host})
        response = await web.client.post(BULK, json={}, headers=headers)
        stream: str = response.json()["eventStreams"][0]["url"]
        return stream

    sdk, read, sdk_again, read_again = [await url(s) for s in ("sdk", "read", "sdk", "read")]
    elsewhere = await url("sdk", "other.test")

    assert sdk == sdk_again and read == read_again and sdk != read
    assert elsewhere.startswith("http://other.test/") and sdk.startswith("http://api.test/")


async def test_bulk_on_a_missing_flag_set_is_empty_with_a_stream(api: Api) -> None:
    response = await api.client.post(BULK, json={}, headers=api.headers("sdk"))

    assert response.status_code == 200
    assert response.json()["flags"] == []
    assert response.json()["eventStreams"][0]["url"].endswith("&v=none")


@pytest.fixture
async def short_tokens(tmp_path: Path) -> AsyncIterator[Api]:
    async for running in running_api(make_settings(tmp_path, stream_token_ttl_s=1.0)):
        yield running


async def test_etag_changes_with_the_stream_token_window(short_tokens: Api) -> None:
    # Windows are half the token lifetime: a 304 never keeps an expired stream URL in a cache.
    api = short_tokens
    await api.client.put("/api/v1/flag-sets/web", json=DOCUMENT, headers=api.headers("admin"))
    first = await api.client.post(BULK, json={}, headers=api.headers("sdk"))
    time.sleep(0.6)  # more than one window (0.5 s)
    second = await api.client.post(
        BULK, json={}, headers=api.headers("sdk", **{"If-None-Match": first.headers["etag"]})
    )

    assert second.status_code == 200
    assert second.headers["etag"] != first.headers["etag"]
    assert second.json()["eventStreams"] != first.json()["eventStreams"]


async def test_evaluations_are_counted_by_flag_and_reason(web: Api) -> None:
    headers = web.headers("sdk")
    await web.client.post(one("headline"), json={}, headers=headers)
    await web.client.post(one("unknown-1"), json={}, headers=headers)
    await web.client.post(one("unknown-2"), json={}, headers=headers)
    await web.client.post(BULK, json={}, headers=headers)
    metrics = (await web.client.get("/metrics", headers=web.headers("read"))).text

    def count(flag: str, reason: str) -> float:
        for line in metrics.splitlines():
            if line.startswith("stageless_flag_evaluations_total{") and (
                f'flag="{flag}"' in line and f'reason="{reason}"' in line
            ):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    assert count("headline", "STATIC") == 2
    assert count("retired", "DISABLED") == 1
    assert count("(unknown)", "ERROR") == 2  # caller-chosen keys share one series
    assert 'flag="unknown-1"' not in metrics


async def test_every_served_bulk_answer_is_counted_and_a_304_is_not(web: Api) -> None:
    headers = web.headers("sdk")
    body = {"context": {"targetingKey": "u1", "email": "ann@example.com"}}
    first = await web.client.post(BULK, json=body, headers=headers)
    await web.client.post(BULK, json=body, headers=headers)  # evaluated again, then kept
    await web.client.post(BULK, json=body, headers=headers)  # answered from the cache
    revalidated = await web.client.post(
        BULK, json=body, headers={**headers, "If-None-Match": first.headers["etag"]}
    )
    metrics = (await web.client.get("/metrics", headers=web.headers("read"))).text

    assert revalidated.status_code == 304
    assert 'flag="headline",flag_set="web",reason="STATIC"} 3.0' in metrics
    assert 'flag="new-checkout",flag_set="web",reason="TARGETING_MATCH"} 3.0' in metrics


async def test_a_cached_bulk_answer_never_outlives_its_version(web: Api) -> None:
    headers = web.headers("sdk")
    body = {"context": {"targetingKey": "u1"}}
    before = await web.client.post(BULK, json=body, headers=headers)
    again = await web.client.post(BULK, json=body, headers=headers)
    await web.client.put(
        "/api/v1/flag-sets/web", json=document_with(headline="long"), headers=web.headers("admin")
    )
    after = await web.client.post(BULK, json=body, headers=headers)

    def headline(response: Any) -> Any:
        return next(i["value"] for i in response.json()["flags"] if i["key"] == "headline")

    assert again.content == before.content
    assert (headline(before), headline(after)) == ("Hello", "Hello and welcome")
    assert after.json()["eventStreams"][0]["url"].endswith("&v=2")


async def test_a_body_sent_in_chunks_reads_as_the_whole_body(web: Api) -> None:
    headers = web.headers("sdk")
    body = b'{"context":{"targetingKey":"u1","email":"ann@example.com"}}'

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 7):
            yield body[start : start + 7]

    whole = await web.client.post(BULK, content=body, headers=headers)
    chunked = await web.client.post(BULK, content=chunks(), headers=headers)
    single = await web.client.post(one("new-checkout"), content=chunks(), headers=headers)

    assert chunked.status_code == 200
    assert (chunked.content, chunked.headers["etag"]) == (whole.content, whole.headers["etag"])
    assert single.json()["variant"] == "on"


async def test_bulk_answers_follow_the_body_not_an_earlier_request(web: Api) -> None:
    headers = web.headers("sdk")
    ann = {"context": {"email": "ann@example.com"}}
    bob = {"context": {"email": "bob@elsewhere.org"}}
    answers = [
        (await web.client.post(BULK, json=body, headers=headers)).json()["flags"][0]
        for body in (ann, bob, ann, bob)
    ]
    bad = await web.client.post(BULK, content=b"{nope", headers=headers)
    bad_again = await web.client.post(BULK, content=b"{nope", headers=headers)

    assert [a["variant"] for a in answers] == ["on", "off", "on", "off"]
    assert (bad.status_code, bad_again.status_code) == (400, 400)


def test_body_etag_covers_every_part() -> None:
    tag = body_etag("web", '"e1"', "7", b'{"context":{}}')

    # A quote, 16 hex digits of the head (set, version, window), 32 of the body, a quote.
    assert re.fullmatch(r'"[0-9a-f]{48}"', tag)
    assert tag == body_etag("web", '"e1"', "7", b'{"context":{}}')
    others = {
        body_etag("web2", '"e1"', "7", b'{"context":{}}'),
        body_etag("web", '"e2"', "7", b'{"context":{}}'),
        body_etag("web", '"e1"', "8", b'{"context":{}}'),
        body_etag("web", '"e1"', "7", b'{"context":{"a":1}}'),
    }
    assert tag not in others and len(others) == 4


def test_body_etag_is_the_same_in_every_process() -> None:
    # Instances on one database answer one provider: a tag from one must match on another,
    # and after a restart (no per-process hash seed in it).
    script = (
        "from stageless.api.ofrep import body_etag; "
        "print(body_etag('web', '\"e1\"', '7', b'{\"context\":{}}'))"
    )
    tags = {
        subprocess.run(  # noqa: S603  # this interpreter, a fixed script
            [sys.executable, "-c", script],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for seed in ("1", "2")
    }

    assert tags == {body_etag("web", '"e1"', "7", b'{"context":{}}')}


@pytest.mark.parametrize(
    ("header", "matches"),
    [
        (None, False),
        ("*", True),
        ('"t"', True),
        ('W/"t"', True),
        ('"u", "t"', True),
        ('"u"', False),
    ],
)
def test_if_none_match(header: str | None, matches: bool) -> None:
    assert etag_matches(header, '"t"') is matches


DOCS = Path(__file__).resolve().parents[2] / "docs" / "ofrep.md"
ROUTE_IN_DOCS = re.compile(r"`(GET|POST|PUT|DELETE|PATCH) (/ofrep/v1/[^`\s?]*)")
URL_IN_DOCS = re.compile(r"https?://[^\s/\"`]+(/ofrep/v1/[^\s?\"`'\\]*)")


def ofrep_routes(tmp_path: Path) -> list[Route]:
    app = create_app(make_settings(tmp_path))
    try:
        return [
            route
            for route in app.routes
            if isinstance(route, Route) and route.path.startswith("/ofrep/v1")
        ]
    finally:
        app.state.ctx.service.close()


def test_the_ofrep_routes_in_the_docs_are_the_apps(tmp_path: Path) -> None:
    documented = set(ROUTE_IN_DOCS.findall(DOCS.read_text()))
    served = {
        (method, re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path))  # {key:path} -> {key}
        for route in ofrep_routes(tmp_path)
        for method in route.methods or ()
        if method != "HEAD"
    }

    assert documented == served


def test_every_ofrep_url_in_the_docs_reaches_a_route(tmp_path: Path) -> None:
    routes = ofrep_routes(tmp_path)
    paths = set(URL_IN_DOCS.findall(DOCS.read_text()))

    assert paths  # the curl examples and the eventStreams URL
    for path in paths:
        assert any(route.path_regex.fullmatch(path) for route in routes), path


json_texts = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=8,
).map(json.dumps)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.sampled_from([-0.0, 1e308, 5e-324, 2**63, -(2**63) - 1, 2**64, 0.1 + 0.2])
    | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=8,
)
object_texts = st.dictionaries(st.text(max_size=3), json_values, max_size=4).map(json.dumps) | (
    st.sampled_from(
        [
            '{"a":1,"a":2}',
            '{"a":1e400,"b":-1e400,"c":1E-400,"d":-0,"e":-0.0,"f":1.0E+2}',
            '{"a":"\\ud800","b":"\\udc00\\ud800","c":"\\u0000"}',
            '{"a":NaN,"b":Infinity,"c":-Infinity}',
            '{"a":123456789012345678901234567890,"b":0.1000000000000000055511151231257827}',
            '{ "a" : [ 1 , 2 ] }\t\r\n',
            '{"a":1}x',
            '{"a":01}',
            '{"a":"\x7f\u00e9\U0001f600"}',
        ]
    )
)
# Numbers as written by hand, not by json.dumps: up to 21 digits before and after the point
# and an exponent, and integers around 18 to 20 digits and the 64-bit limits (``loads`` reads
# a run of 19 digits or more with the standard library, shorter ones with orjson).
number_texts = st.from_regex(
    r"-?(0|[1-9][0-9]{0,20})(\.[0-9]{1,21})?([eE][+-]?[0-9]{1,3})?", fullmatch=True
) | st.sampled_from(
    [
        str(n)
        for base in (10**17, 10**18, 10**19, 2**63, 2**64)
        for n in (base - 1, base, base + 1, -base - 1, -base, -base + 1)
    ]
)
object_texts = object_texts | st.lists(number_texts, min_size=1, max_size=3).map(
    lambda numbers: '{"context":{' + ",".join(f'"n{i}":{n}' for i, n in enumerate(numbers)) + "}}"
)
bodies = (
    object_texts.map(lambda text: text.encode("utf-8", "surrogatepass"))
    | st.tuples(
        json_texts, st.sampled_from(["utf-8", "utf-16", "utf-16-le", "utf-32", "utf-8-sig"])
    ).map(lambda pair: pair[0].encode(pair[1], "surrogatepass"))
    | json_texts.map(lambda text: text.encode() + b" \n")
    | st.binary(max_size=12).map(lambda tail: b"{" + tail)
    | st.binary(max_size=12)
)


@settings(max_examples=1500)
@given(bodies)
def test_loads_is_json_loads(raw: bytes) -> None:
    def outcome(load: Any) -> Any:
        try:
            return ("value", repr(load(raw)))
        except ValueError as exc:
            return ("error", type(exc), str(exc))

    assert outcome(loads) == outcome(json.loads)


def test_the_ofrep_routes_are_tried_first_and_no_other_route_shares_their_prefix(
    tmp_path: Path,
) -> None:
    store = open_store(sqlite_url(tmp_path), poll_interval=0.05)
    try:
        routes = create_app(make_settings(tmp_path), store).router.routes
    finally:
        store.close()
    paths = [str(getattr(route, "path", "")) for route in routes]
    ofrep = [i for i, path in enumerate(paths) if path.startswith("/ofrep/")]
    assert ofrep == list(range(len(ofrep))) and len(ofrep) == 3, paths
    assert len(paths) > 20, paths  # the rest of the API follows them
