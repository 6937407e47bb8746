"""Signed routing tokens: format, round trip, tampering, expiry, rotation, garbage input."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stageless.analysis.batch import TrafficClass
from stageless.routing import (
    MAX_TOKEN_BYTES,
    RoutingClaims,
    SigningKey,
    TokenProblem,
    issue_token,
    verification_keys,
    verify_token,
    verify_token_detail,
)
from stageless.routing.tokens import CLOCK_SKEW_S, MAX_SUBJECT_CHARS, MAX_TTL_S

K1 = SigningKey("k1", b"k1-secret-" + b"x" * 22)
K2 = SigningKey("k2", b"k2-secret-" + b"y" * 22)
KEYS = verification_keys([K1, K2])
NOW = 1_764_100_000.0
HOUR = 3_600.0

classes = st.sampled_from([TrafficClass.TESTER, TrafficClass.SYNTHETIC])
services = st.text(min_size=1, max_size=30)
subjects = st.text(max_size=MAX_SUBJECT_CHARS)


def token_for(service: str = "checkout", *, key: SigningKey = K1, **overrides: Any) -> str:
    arguments: dict[str, Any] = {
        "service": service,
        "traffic_class": TrafficClass.TESTER,
        "subject": "alice",
        "ttl_s": HOUR,
        "now": NOW,
    }
    arguments.update(overrides)
    return issue_token(key, **arguments)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged(claims: object, key: SigningKey = K1) -> str:
    """A correctly signed token around any payload: the format written out independently."""
    payload = b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
    signature = hmac.new(key.secret, f"st1.{payload}".encode(), hashlib.sha256).digest()
    return f"st1.{payload}.{b64(signature)}"


VALID_CLAIMS: dict[str, Any] = {
    "cls": "tester",
    "exp": int(NOW + HOUR),
    "iat": int(NOW),
    "kid": "k1",
    "sub": "alice",
    "svc": "checkout",
}


# --- format and round trip --------------------------------------------------------------------


def test_the_format_is_st1_payload_signature() -> None:
    token = token_for()
    assert re.fullmatch(r"st1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}", token)
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims == VALID_CLAIMS
    assert forged(VALID_CLAIMS) == token  # the independent spelling of the format agrees


def test_a_valid_token_gives_its_claims() -> None:
    claims = verify_token(token_for(), KEYS, service="checkout", now=NOW + 1)
    assert claims == RoutingClaims(
        service="checkout",
        traffic_class=TrafficClass.TESTER,
        subject="alice",
        issued_at=int(NOW),
        expires_at=int(NOW + HOUR),
        key_id="k1",
    )


@given(services, classes, subjects, st.floats(1, MAX_TTL_S), st.floats(0, 4e9))
def test_round_trip(
    service: str, traffic_class: TrafficClass, subject: str, ttl_s: float, now: float
) -> None:
    token = issue_token(
        K2, service=service, traffic_class=traffic_class, subject=subject, ttl_s=ttl_s, now=now
    )
    assert len(token) <= MAX_TOKEN_BYTES or pytest.fail("issue_token made an oversized token")
    for raw in (token, token.encode()):
        claims = verify_token(raw, KEYS, service=service, now=now)
        assert claims is not None
        assert (claims.service, claims.traffic_class, claims.subject) == (
            service,
            traffic_class,
            subject,
        )
        assert claims.key_id == "k2"
        assert claims.expires_at > now


def test_the_token_is_ascii_even_for_non_ascii_names() -> None:
    token = token_for("caisse-é", subject="Zoë 🚀")
    assert token.isascii()
    claims = verify_token(token, KEYS, service="caisse-é", now=NOW)
    assert claims is not None
    assert claims.subject == "Zoë 🚀"


# --- refusals ---------------------------------------------------------------------------------


def test_every_single_character_change_is_refused() -> None:
    token = token_for()
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ \x00é"
    tried = 0
    for index, original in enumerate(token):
        for replacement in alphabet:
            if replacement == original:
                continue
            tampered = token[:index] + replacement + token[index + 1 :]
            assert verify_token(tampered, KEYS, service="checkout", now=NOW) is None, tampered
            tried += 1
    assert tried > 60 * len(token)


@given(st.data())
def test_any_single_byte_change_is_refused(data: st.DataObject) -> None:
    token = token_for().encode()
    index = data.draw(st.integers(0, len(token) - 1))
    byte = data.draw(st.integers(0, 255).filter(lambda b: b != token[index]))
    tampered = token[:index] + bytes([byte]) + token[index + 1 :]
    assert verify_token(tampered, KEYS, service="checkout", now=NOW) is None


@given(st.data())
def test_a_dropped_or_added_byte_is_refused(data: st.DataObject) -> None:
    token = token_for().encode()
    index = data.draw(st.integers(0, len(token)))
    byte = data.draw(st.binary(min_size=1, max_size=1))
    for tampered in (token[:index] + token[index + 1 :], token[:index] + byte + token[index:]):
        if tampered != token:
            assert verify_token(tampered, KEYS, service="checkout", now=NOW) is None


def test_expiry() -> None:
    token = token_for()
    expires = int(NOW + HOUR)
    assert verify_token(token, KEYS, service="checkout", now=expires - 0.5) is not None
    assert verify_token_detail(token, KEYS, service="checkout", now=expires) is TokenProblem.EXPIRED
    assert verify_token(token, KEYS, service="checkout", now=expires + 1e6) is None


@given(st.floats(0, 1e6))
def test_a_token_is_never_valid_at_or_after_its_expiry(after: float) -> None:
    token = token_for(ttl_s=60)
    problem = verify_token_detail(token, KEYS, service="checkout", now=int(NOW) + 60 + after)
    assert problem is TokenProblem.EXPIRED


def test_a_token_from_the_far_future_is_refused_but_small_clock_skew_is_not() -> None:
    token = token_for(now=NOW + CLOCK_SKEW_S + 5)
    problem = verify_token_detail(token, KEYS, service="checkout", now=NOW)
    assert problem is TokenProblem.NOT_YET_VALID
    assert verify_token(token_for(now=NOW + CLOCK_SKEW_S - 5), KEYS, service="checkout", now=NOW)


def test_a_token_for_another_service_is_refused() -> None:
    problem = verify_token_detail(token_for("search"), KEYS, service="checkout", now=NOW)
    assert problem is TokenProblem.WRONG_SERVICE


def test_keys_rotate_by_id() -> None:
    old = token_for(key=K1)
    new = token_for(key=K2)
    both = verification_keys([K2, K1])
    assert verify_token(old, both, service="checkout", now=NOW) is not None
    assert verify_token(new, both, service="checkout", now=NOW) is not None
    only_new = verification_keys([K2])
    assert verify_token_detail(old, only_new, service="checkout", now=NOW) is (
        TokenProblem.UNKNOWN_KEY
    )


def test_a_known_key_id_with_another_secret_is_a_bad_signature() -> None:
    impostor = SigningKey("k1", b"z" * 32)
    problem = verify_token_detail(token_for(key=impostor), KEYS, service="checkout", now=NOW)
    assert problem is TokenProblem.BAD_SIGNATURE


def test_an_oversized_token_is_refused_before_decoding() -> None:
    padding = "A" * (MAX_TOKEN_BYTES + 1)
    for token in (padding, padding.encode(), "é" * (MAX_TOKEN_BYTES + 1)):
        problem = verify_token_detail(token, KEYS, service="checkout", now=NOW)
        assert problem is TokenProblem.OVERSIZED
    at_the_limit = "A" * MAX_TOKEN_BYTES
    problem = verify_token_detail(at_the_limit, KEYS, service="checkout", now=NOW)
    assert problem is TokenProblem.MALFORMED


@pytest.mark.parametrize(
    "claims",
    [
        {**VALID_CLAIMS, "cls": "user"},
        {**VALID_CLAIMS, "cls": "shadow"},
        {**VALID_CLAIMS, "cls": 1},
        {**VALID_CLAIMS, "exp": str(VALID_CLAIMS["exp"])},
        {**VALID_CLAIMS, "exp": float(VALID_CLAIMS["exp"])},
        {**VALID_CLAIMS, "iat": True},
        {**VALID_CLAIMS, "sub": None},
        {**VALID_CLAIMS, "kid": 7},
        {**VALID_CLAIMS, "kid": ["k1"]},
        {**VALID_CLAIMS, "svc": ["checkout"]},
        {**VALID_CLAIMS, "extra": 1},
        {k: v for k, v in VALID_CLAIMS.items() if k != "sub"},
        [VALID_CLAIMS],
        "checkout",
        None,
    ],
    ids=repr,
)
def test_signed_but_malformed_claims_are_refused(claims: object) -> None:
    problem = verify_token_detail(forged(claims), KEYS, service="checkout", now=NOW)
    assert problem is TokenProblem.MALFORMED


def test_the_forging_helper_makes_tokens_that_verify() -> None:
    # so that the malformed cases above fail for their claims, not for the helper
    assert verify_token(forged(VALID_CLAIMS), KEYS, service="checkout", now=NOW) is not None


@pytest.mark.parametrize(
    "token",
    [
        "",
        ".",
        "st1",
        "st1..",
        "st2.e30.AAAA",
        "st1.e30",
        "st1.e30.AAAA.AAAA",
        "st1.e30=.AAAA",
        "st1.!!!.AAAA",
        "st1.A.AAAA",
        "st1.e31.AAAA",  # non-canonical base64url ("e30" is "{}")
        "st1.bm90IGpzb24.AAAA",  # "not json"
        "st1." + b64(b"\xff\xfe") + ".AAAA",
        "st1." + b64(b"[" * 300 + b"]" * 300) + ".AAAA",
        "st1." + b64(b'{"kid": 7}') + ".AAAA",
        "st1.é.AAAA",
    ],
)
def test_malformed_tokens_are_refused(token: str) -> None:
    assert verify_token_detail(token, KEYS, service="checkout", now=NOW) is TokenProblem.MALFORMED
    assert verify_token(token.encode(), KEYS, service="checkout", now=NOW) is None


@given(st.binary(max_size=1_200) | st.text(max_size=1_200))
def test_garbage_never_raises(token: bytes | str) -> None:
    assert isinstance(verify_token_detail(token, KEYS, service="checkout", now=NOW), TokenProblem)


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(), st.lists), st.binary())
def test_well_shaped_garbage_never_raises(claims: object, signature: bytes) -> None:
    token = f"st1.{b64(json.dumps(claims).encode())}.{b64(signature)}"
    problem = verify_token_detail(token, KEYS, service="checkout", now=NOW)
    assert isinstance(problem, TokenProblem)


@pytest.mark.parametrize("token", [None, 42, ["st1"], bytearray(b"st1.e30.AAAA")])
def test_a_token_of_another_type_is_refused(token: Any) -> None:
    assert verify_token_detail(token, KEYS, service="checkout", now=NOW) is TokenProblem.MALFORMED


# --- keys and issuing ---------------------------------------------------------------------------


def test_a_short_secret_is_refused_at_construction() -> None:
    with pytest.raises(
        ValueError, match=r"signing key 'k1': the secret has 31 bytes; expected at least 32"
    ):
        SigningKey("k1", b"x" * 31)


@pytest.mark.parametrize("key_id", ["", "a b", "k/1", "x" * 65, "ключ"])
def test_a_bad_key_id_is_refused(key_id: str) -> None:
    with pytest.raises(ValueError, match="signing key id"):
        SigningKey(key_id, b"x" * 32)


def test_a_secret_must_be_bytes() -> None:
    with pytest.raises(ValueError, match="must be bytes"):
        SigningKey("k1", "x" * 32)  # type: ignore[arg-type]


def test_the_secret_is_not_printed() -> None:
    assert "secret" not in repr(K1)
    assert "xxxx" not in repr(K1)


def test_duplicate_key_ids_are_refused() -> None:
    with pytest.raises(ValueError, match="'k1' is used twice"):
        verification_keys([K1, SigningKey("k1", b"q" * 32)])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"service": ""}, "service"),
        ({"traffic_class": TrafficClass.USER}, "tester or synthetic"),
        ({"traffic_class": TrafficClass.SHADOW}, "tester or synthetic"),
        ({"subject": "x" * (MAX_SUBJECT_CHARS + 1)}, "subject"),
        ({"ttl_s": 0}, "ttl"),
        ({"ttl_s": -1}, "ttl"),
        ({"ttl_s": MAX_TTL_S + 1}, "ttl"),
        ({"ttl_s": float("nan")}, "ttl"),
        ({"service": "s" * 800}, "longer than"),
    ],
)
def test_issue_refuses_bad_claims(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        token_for(**overrides)
