"""Signed routing tokens: a tester's or a synthetic check's ticket to a service's candidate.

Format (compact, URL- and cookie-safe, at most :data:`MAX_TOKEN_BYTES`)::

    st1.<payload>.<signature>

``payload`` is the unpadded base64url of compact JSON
``{"cls": "tester", "exp": 1764130000, "iat": 1764101200, "kid": "k1", "sub": "alice",
"svc": "checkout"}`` (traffic class, expiry and issue time in whole Unix seconds, key id,
subject, service); ``signature`` is the unpadded base64url of
``HMAC-SHA256(secret, "st1." + payload)``, the secret being the one of key ``kid``.

Verification never raises on input from the network: :func:`verify_token` returns the claims or
``None``, and :func:`verify_token_detail` says why a token was refused (for logs and tests). The
signature is compared in constant time (:func:`hmac.compare_digest`) over its canonical text, so
no two spellings of one signature verify. Keys rotate by id: the first configured key signs,
every configured key verifies the tokens carrying its id.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from stageless.analysis.batch import TrafficClass
from stageless.routing.names import TOKEN_PREFIX

__all__ = [
    "CLOCK_SKEW_S",
    "MAX_SUBJECT_CHARS",
    "MAX_TOKEN_BYTES",
    "MAX_TTL_S",
    "MIN_SECRET_BYTES",
    "TOKEN_CLASSES",
    "RoutingClaims",
    "SigningKey",
    "TokenProblem",
    "issue_token",
    "verification_keys",
    "verify_token",
    "verify_token_detail",
]

MAX_TOKEN_BYTES = 1024
"""Longer tokens are refused before any decoding."""

MIN_SECRET_BYTES = 32
"""A signing secret has at least this many bytes (HMAC-SHA256's output size)."""

MAX_TTL_S = 90 * 86_400
"""The longest lifetime :func:`issue_token` grants: 90 days."""

MAX_SUBJECT_CHARS = 128
"""The longest subject (who the token is for) :func:`issue_token` accepts."""

CLOCK_SKEW_S = 300
"""A token issued up to this many seconds in the verifier's future is still accepted."""

TOKEN_CLASSES = frozenset({TrafficClass.TESTER, TrafficClass.SYNTHETIC})
"""The traffic classes a routing token can carry."""

_KEY_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_PREFIX = TOKEN_PREFIX.encode() + b"."
_FIELDS = frozenset({"cls", "exp", "iat", "kid", "sub", "svc"})
_CLASSES = {traffic_class.value: traffic_class for traffic_class in TOKEN_CLASSES}
_B64URL = re.compile(rb"[A-Za-z0-9_-]*")


class TokenProblem(StrEnum):
    """Why a token was refused."""

    OVERSIZED = "oversized"
    MALFORMED = "malformed"
    UNKNOWN_KEY = "unknown_key"
    BAD_SIGNATURE = "bad_signature"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    WRONG_SERVICE = "wrong_service"


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A routing-token key: its id (written into each token) and its secret (never printed)."""

    id: str
    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if type(self.id) is not str or not _KEY_ID.fullmatch(self.id):
            raise ValueError(
                f"signing key id {self.id!r}: expected 1 to 64 characters of A-Z a-z 0-9 . _ : -"
            )
        if type(self.secret) is not bytes:
            raise ValueError(f"signing key {self.id!r}: the secret must be bytes")
        if len(self.secret) < MIN_SECRET_BYTES:
            raise ValueError(
                f"signing key {self.id!r}: the secret has {len(self.secret)} bytes;"
                f" expected at least {MIN_SECRET_BYTES}"
            )


@dataclass(frozen=True, slots=True)
class RoutingClaims:
    """What a valid token says: for which service, which traffic class, whom, until when."""

    service: str
    traffic_class: TrafficClass
    subject: str
    issued_at: int
    expires_at: int
    key_id: str


def verification_keys(keys: Iterable[SigningKey]) -> dict[str, bytes]:
    """The ``key id -> secret`` mapping :func:`verify_token` takes.

    Raises:
        ValueError: two keys share an id.
    """
    found: dict[str, bytes] = {}
    for key in keys:
        if key.id in found:
            raise ValueError(f"signing key id {key.id!r} is used twice")
        found[key.id] = key.secret
    return found


def issue_token(
    key: SigningKey,
    *,
    service: str,
    traffic_class: TrafficClass,
    subject: str,
    ttl_s: float,
    now: float,
) -> str:
    """A token for ``service`` signed with ``key``, valid from ``now`` for ``ttl_s`` seconds.

    Raises:
        ValueError: an empty service, a class other than tester or synthetic, a subject longer
            than :data:`MAX_SUBJECT_CHARS`, or a lifetime not in (0, :data:`MAX_TTL_S`].
    """
    if type(service) is not str or not service:
        raise ValueError("service: expected a non-empty name")
    if traffic_class not in TOKEN_CLASSES:
        raise ValueError(f"traffic class is {traffic_class!r}; expected tester or synthetic")
    if type(subject) is not str or len(subject) > MAX_SUBJECT_CHARS:
        raise ValueError(f"subject: expected a string of at most {MAX_SUBJECT_CHARS} characters")
    if not (math.isfinite(ttl_s) and 0 < ttl_s <= MAX_TTL_S):
        raise ValueError(f"ttl is {ttl_s!r} s; expected more than 0 and at most {MAX_TTL_S}")
    issued_at = math.floor(now)
    claims = {
        "cls": TrafficClass(traffic_class).value,
        "exp": math.floor(now + ttl_s),
        "iat": issued_at,
        "kid": key.id,
        "sub": subject,
        "svc": service,
    }
    text = json.dumps(claims, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    signing_input = _PREFIX + _encode(text.encode())
    token = signing_input + b"." + _sign(key.secret, signing_input)
    if len(token) > MAX_TOKEN_BYTES:
        raise ValueError(f"the token would be longer than {MAX_TOKEN_BYTES} bytes; shorten names")
    return token.decode("ascii")


def verify_token(
    token: str | bytes, keys: Mapping[str, bytes], *, service: str, now: float
) -> RoutingClaims | None:
    """The claims of a valid, unexpired token for ``service``, else ``None``; never raises."""
    result = verify_token_detail(token, keys, service=service, now=now)
    return result if type(result) is RoutingClaims else None


def verify_token_detail(
    token: str | bytes, keys: Mapping[str, bytes], *, service: str, now: float
) -> RoutingClaims | TokenProblem:
    """The claims of a valid token, or the reason it is refused; never raises.

    Checks, in order: size, shape (``st1.<base64url>.<base64url>``, JSON object with exactly
    the expected fields and types), key id known, signature, issue time not more than
    :data:`CLOCK_SKEW_S` ahead of ``now``, expiry after ``now``, service.
    """
    try:
        return _verify(token, keys, service, now)
    except (ValueError, TypeError, RecursionError, binascii.Error):
        return TokenProblem.MALFORMED


def _verify(
    token: str | bytes, keys: Mapping[str, bytes], service: str, now: float
) -> RoutingClaims | TokenProblem:
    if type(token) is str:
        if len(token) > MAX_TOKEN_BYTES:
            return TokenProblem.OVERSIZED
        raw = token.encode("ascii")  # non-ASCII: UnicodeEncodeError, a ValueError
    elif type(token) is bytes:
        raw = token
    else:
        return TokenProblem.MALFORMED
    if len(raw) > MAX_TOKEN_BYTES:
        return TokenProblem.OVERSIZED
    parts = raw.split(b".")
    if len(parts) != 3 or parts[0] != _PREFIX[:-1]:
        return TokenProblem.MALFORMED
    _, payload, signature = parts
    claims = json.loads(_decode(payload))
    if type(claims) is not dict or claims.keys() != _FIELDS:
        return TokenProblem.MALFORMED
    key_id = claims["kid"]
    if type(key_id) is not str:
        return TokenProblem.MALFORMED
    secret = keys.get(key_id)
    if secret is None:
        return TokenProblem.UNKNOWN_KEY
    expected = _sign(secret, raw[: len(raw) - len(signature) - 1])
    if not hmac.compare_digest(expected, signature):
        return TokenProblem.BAD_SIGNATURE
    issued_at, expires_at = claims["iat"], claims["exp"]
    traffic_class = _CLASSES.get(claims["cls"]) if type(claims["cls"]) is str else None
    if (
        type(issued_at) is not int
        or type(expires_at) is not int
        or traffic_class is None
        or type(claims["svc"]) is not str
        or type(claims["sub"]) is not str
    ):
        return TokenProblem.MALFORMED
    if issued_at > now + CLOCK_SKEW_S:
        return TokenProblem.NOT_YET_VALID
    if not now < expires_at:
        return TokenProblem.EXPIRED
    if claims["svc"] != service:
        return TokenProblem.WRONG_SERVICE
    return RoutingClaims(
        service=service,
        traffic_class=traffic_class,
        subject=claims["sub"],
        issued_at=issued_at,
        expires_at=expires_at,
        key_id=key_id,
    )


def _sign(secret: bytes, signing_input: bytes) -> bytes:
    return _encode(hmac.digest(secret, signing_input, hashlib.sha256))


def _encode(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _decode(text: bytes) -> bytes:
    """Strict unpadded base64url: only the URL-safe alphabet, canonical trailing bits."""
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not unpadded base64url")
    data = base64.urlsafe_b64decode(text + b"=" * (-len(text) % 4))
    if _encode(data) != text:
        raise ValueError("non-canonical base64url")
    return data
