"""Header hygiene: cookies, baggage, and stripping everything only the proxy may say."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stageless.analysis.batch import TrafficClass
from stageless.routing import (
    cookie_value,
    request_cookie,
    sanitize_baggage,
    sanitize_request_headers,
    sticky_key,
    sticky_key_cookie,
    strip_cookie,
    tagged_baggage,
)

# --- cookies ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "name", "expected"),
    [
        (b"stageless-route=tok", b"stageless-route", b"tok"),
        (b"a=1; stageless-route=tok; b=2", b"stageless-route", b"tok"),
        (b"a=1;stageless-route=tok;b=2", b"stageless-route", b"tok"),
        (b"a=1 ;  stageless-route = tok  ; b=2", b"stageless-route", b"tok"),
        (b"a=1;\tstageless-route=tok\t", b"stageless-route", b"tok"),
        (b'stageless-route="tok"', b"stageless-route", b"tok"),
        (b"stageless-route=a=b", b"stageless-route", b"a=b"),
        (b"stageless-route=", b"stageless-route", b""),
        (b"stageless-route=first; stageless-route=second", b"stageless-route", b"first"),
        (b"x-stageless-route=no; Stageless-Route=no", b"stageless-route", None),
        (b"stageless-route-old=no", b"stageless-route", None),
        (b"stageless-route", b"stageless-route", None),
        (b"", b"stageless-route", None),
        (b"a=1; b=2", b"stageless-route", None),
        (b"stageless-key=Ab3dEf; other=1", b"stageless-key", b"Ab3dEf"),
    ],
)
def test_cookie_value(header: bytes, name: bytes, expected: bytes | None) -> None:
    assert cookie_value(header, name) == expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (b"stageless-route=tok", None),
        (b"a=1; stageless-route=tok; b=2", b"a=1; b=2"),
        (b"a=1;stageless-route=tok;b=2", b"a=1; b=2"),
        (b"  a=1 ;  stageless-route = tok  ;b=2 ", b"a=1; b=2"),
        (b"stageless-route=x; a=1; stageless-route=y", b"a=1"),
        (b"a=1; stageless-route", b"a=1"),
        (b"a=1; ; stageless-route=t", b"a=1"),
        (b'a="quoted; value"; stageless-route=t', b'a="quoted; value"'),
        (b"a=1; stageless-route-old=keep", b"a=1; stageless-route-old=keep"),
    ],
)
def test_strip_cookie(header: bytes, expected: bytes | None) -> None:
    assert strip_cookie(header, b"stageless-route") == expected


@pytest.mark.parametrize("header", [b"a=1; b=2", b"a=1;b=2 ", b"", b"x-stageless-route=1 "])
def test_strip_cookie_returns_a_header_without_the_cookie_unchanged(header: bytes) -> None:
    assert strip_cookie(header, b"stageless-route") is header


cookie_names = st.sampled_from([b"a", b"b", b"stageless-route", b"stageless-key", b"sid"])
cookie_values = st.binary(max_size=12).map(lambda v: v.replace(b";", b"").replace(b'"', b""))
cookie_values = cookie_values.map(lambda v: v.strip(b" \t"))
spaces = st.sampled_from([b"", b" ", b"  ", b"\t"])


@given(st.lists(st.tuples(cookie_names, cookie_values, spaces, spaces), max_size=6))
def test_stripping_a_cookie_removes_it_and_keeps_the_others_in_order(
    pairs: list[tuple[bytes, bytes, bytes, bytes]],
) -> None:
    header = b";".join(before + name + b"=" + value + after for name, value, before, after in pairs)
    stripped = strip_cookie(header, b"stageless-route")
    kept = [(name, value) for name, value, _, _ in pairs if name != b"stageless-route"]
    if stripped is None:
        assert not kept
        return
    assert cookie_value(stripped, b"stageless-route") is None
    reparsed = [
        tuple(pair.strip(b" \t").split(b"=", 1))
        for pair in stripped.split(b";")
        if pair.strip(b" \t")
    ]
    assert reparsed == [(name, value) for name, value in kept] or stripped is header
    firsts = dict(reversed(kept))
    for name, value in firsts.items():
        assert cookie_value(stripped, name) == value


def test_request_cookie_looks_in_every_cookie_header() -> None:
    headers = [
        (b"host", b"shop"),
        (b"cookie", b"a=1"),
        (b"x-cookie", b"stageless-key=no"),
        (b"cookie", b"b=2; stageless-key=K"),
    ]
    assert request_cookie(headers, b"stageless-key") == b"K"
    assert request_cookie(headers, b"missing") is None
    assert request_cookie([], b"stageless-key") is None


# --- baggage ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"userId=alice", b"userId=alice"),
        (b"userId=alice,serverNode=DF%2028", b"userId=alice,serverNode=DF%2028"),
        (b"stageless.traffic=tester", None),
        (b"userId=alice,stageless.traffic=tester", b"userId=alice"),
        (b"stageless.traffic=tester,userId=alice", b"userId=alice"),
        (b"a=1 , stageless.traffic=shadow , b=2", b"a=1,b=2"),
        (b"a=1;prop1;prop2=v2,stageless.x=1;p,b=2 ; q=3", b"a=1;prop1;prop2=v2,b=2 ; q=3"),
        (b"Stageless.Traffic=tester,STAGELESS.x=1,a=1", b"a=1"),
        (b"stageless.traffic = tester ;p , a = 1", b"a = 1"),
        (b"stagelessX=1,stageless=2,stageless.=3", b"stagelessX=1,stageless=2"),
        (b"a=stageless.traffic,stageless.k", b"a=stageless.traffic"),
        (b"a=1,,stageless.x=1,,b=2", b"a=1,b=2"),
        (b"a=1;p=stageless.traffic", b"a=1;p=stageless.traffic"),
        (b"", None),
        (b"  ", None),
    ],
)
def test_sanitize_baggage(value: bytes, expected: bytes | None) -> None:
    assert sanitize_baggage(value) == expected


def test_clean_baggage_comes_back_as_the_same_object() -> None:
    value = b"userId=alice , b=2;p"
    assert sanitize_baggage(value) is value


baggage_keys = st.sampled_from(
    [b"a", b"userId", b"stageless.traffic", b"Stageless.X", b"stagelessy"]
)
baggage_values = st.sampled_from([b"1", b"tester", b"DF%2028", b"stageless.traffic"])
properties = st.sampled_from([b"", b";p", b";p=v", b" ; q=stageless.x"])


@given(st.lists(st.tuples(baggage_keys, baggage_values, properties, spaces), max_size=8))
def test_sanitised_baggage_keeps_the_other_members_byte_for_byte(
    members: list[tuple[bytes, bytes, bytes, bytes]],
) -> None:
    texts = [key + b"=" + value + props for key, value, props, _ in members]
    header = b",".join(
        space + text + space for text, (_, _, _, space) in zip(texts, members, strict=True)
    )
    kept = [
        text
        for text, (key, _, _, _) in zip(texts, members, strict=True)
        if not key.lower().startswith(b"stageless.")
    ]
    result = sanitize_baggage(header)
    if not kept:
        assert result is None
    elif result is header:
        assert len(kept) == len(members)
    else:
        assert result == b",".join(kept)


@pytest.mark.parametrize(
    ("existing", "traffic_class", "expected"),
    [
        (None, TrafficClass.TESTER, b"stageless.traffic=tester"),
        (b"", TrafficClass.SYNTHETIC, b"stageless.traffic=synthetic"),
        (b"a=1;p", TrafficClass.SHADOW, b"a=1;p,stageless.traffic=shadow"),
    ],
)
def test_tagged_baggage(
    existing: bytes | None, traffic_class: TrafficClass, expected: bytes
) -> None:
    assert tagged_baggage(existing, traffic_class) == expected


def test_a_tag_survives_nothing_but_the_proxy() -> None:
    # A tag added by the proxy is removed again by the next sanitisation: it cannot leak.
    tagged = tagged_baggage(b"a=1", TrafficClass.TESTER)
    assert sanitize_baggage(tagged) == b"a=1"


# --- the whole request ------------------------------------------------------------------------


def test_a_request_with_nothing_to_strip_is_returned_as_is() -> None:
    headers = [
        (b"host", b"shop.example"),
        (b"cookie", b"sid=1; stageless-key=K"),
        (b"baggage", b"userId=alice"),
        (b"x-stageless", b"not our prefix"),
        (b"stageless-route", b"a header, not a cookie"),
    ]
    original = list(headers)
    clean, token = sanitize_request_headers(headers)
    assert clean is headers
    assert headers == original
    assert token is None


def test_everything_only_the_proxy_may_say_is_stripped() -> None:
    headers = [
        (b"host", b"shop.example"),
        (b"x-stageless-traffic", b"synthetic"),
        (b"cookie", b"sid=1; stageless-route=from-cookie; stageless-key=K"),
        (b"x-stageless-route", b" from-header "),
        (b"baggage", b"userId=alice,stageless.traffic=synthetic;p"),
        (b"x-stageless-version", b"candidate"),
        (b"cookie", b"stageless-route=second-cookie"),
        (b"baggage", b"stageless.traffic=tester"),
        (b"accept", b"*/*"),
        (b"x-stageless-route", b"second-header"),
    ]
    original = list(headers)
    clean, token = sanitize_request_headers(headers)
    assert token == b"from-header"
    assert clean == [
        (b"host", b"shop.example"),
        (b"cookie", b"sid=1; stageless-key=K"),
        (b"baggage", b"userId=alice"),
        (b"accept", b"*/*"),
    ]
    assert headers == original


@pytest.mark.parametrize(
    ("headers", "token"),
    [
        ([(b"cookie", b"a=1; stageless-route=C")], b"C"),
        ([(b"cookie", b"stageless-route=C"), (b"x-stageless-route", b"H")], b"H"),
        ([(b"x-stageless-route", b""), (b"cookie", b"stageless-route=C")], b"C"),
        ([(b"x-stageless-route", b" "), (b"x-stageless-route", b"H2")], b"H2"),
        ([(b"cookie", b"stageless-route="), (b"cookie", b"stageless-route=C2")], b"C2"),
        ([(b"cookie", b"stageless-route=C1"), (b"cookie", b"stageless-route=C2")], b"C1"),
        ([(b"cookie", b"x=stageless-route")], None),
    ],
)
def test_the_token_is_taken_from_the_header_first_then_the_cookie(
    headers: list[tuple[bytes, bytes]], token: bytes | None
) -> None:
    clean, found = sanitize_request_headers(headers)
    assert found == token
    assert all(not name.startswith(b"x-stageless-") for name, _ in clean)
    assert all(cookie_value(value, b"stageless-route") is None for _, value in clean)


def test_another_token_cookie_name_can_be_configured() -> None:
    headers = [(b"cookie", b"route=T; stageless-route=ignored")]
    clean, token = sanitize_request_headers(headers, token_cookie=b"route")
    assert token == b"T"
    assert clean == [(b"cookie", b"stageless-route=ignored")]


header_names = st.sampled_from(
    [b"host", b"cookie", b"baggage", b"x-stageless-route", b"x-stageless-traffic", b"accept"]
)
header_values = st.sampled_from(
    [
        b"a=1",
        b"stageless-route=T",
        b"a=1; stageless-route=T",
        b"stageless.traffic=tester",
        b"a=1,stageless.traffic=shadow",
        b"",
        b" ",
    ]
)


@given(st.lists(st.tuples(header_names, header_values), max_size=10))
def test_nothing_only_the_proxy_may_say_survives(headers: list[tuple[bytes, bytes]]) -> None:
    original = list(headers)
    clean, _ = sanitize_request_headers(headers)
    assert headers == original
    for name, value in clean:
        assert not name.startswith(b"x-stageless-")
        if name == b"cookie":
            assert cookie_value(value, b"stageless-route") is None
            assert b"stageless-route" not in value
        if name == b"baggage":
            assert b"stageless." not in value.lower()
    untouched = [(n, v) for n, v in original if n in {b"host", b"accept"}]
    assert [(n, v) for n, v in clean if n in {b"host", b"accept"}] == untouched
    assert sanitize_request_headers(clean)[0] is clean  # idempotent: a second pass finds nothing


# --- the sticky key ---------------------------------------------------------------------------


def test_sticky_key_and_its_cookie() -> None:
    key = sticky_key(bytes(range(16)))
    assert key == b"AAECAwQFBgcICQoLDA0ODw"
    assert len(key) == 22
    assert sticky_key_cookie(b"stageless-key", key) == (
        b"stageless-key=AAECAwQFBgcICQoLDA0ODw; Path=/; Max-Age=31536000; HttpOnly; SameSite=Lax"
    )


@pytest.mark.parametrize("entropy", [b"", b"x" * 15, b"x" * 17])
def test_a_sticky_key_needs_16_bytes(entropy: bytes) -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        sticky_key(entropy)
