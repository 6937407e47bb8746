"""Who is calling: API tokens, scopes and signed stream tokens.

Tokens arrive as ``Authorization: Bearer <token>`` (or ``X-API-Key: <token>``, which OFREP
clients send) and are looked up through the service by their SHA-256. Scopes rank
``admin > write > read``; ``sdk`` tokens are bound to one flag set and may only evaluate (OFREP)
and stream that set; ``proxy`` tokens are bound to one proxy configuration and may only read
and stream that configuration. ``require(request, scope, flag_set=None, proxy_config=None)``
returns the ``Principal`` or raises a 401/403 ``Problem``.

Browsers cannot put headers on an ``EventSource``, so stream routes also accept ``?token=`` with
a short-lived *signed stream token*: ``sst_<payload>.<signature>``, the payload being base64url
JSON ``{"sub", "scope", "fs", "exp"}`` and the signature HMAC-SHA256 over it with the server's
key (``secret_key``, or a random key kept in ``data_dir/secret.key``). A stream token names the
flag set it may stream and expires after ``stream_token_ttl_s``; an event stream opened with
one ends when it expires.

Authentication results are cached for ``AUTH_CACHE_S`` seconds per token hash, so evaluation
traffic does not read the database on every request. Revocation does not wait for that: each
instance reads the token table every second (``stageless.api.revocation``), and from then on
a revoked token, and every stream token issued from it, is refused, and the event streams they
opened are ended.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection

from stageless.api.problem import Problem
from stageless.api.revocation import Revocations
from stageless.errors import Issue, ValidationError
from stageless.service import TokenService
from stageless.settings import Settings
from stageless.store import ApiToken, TokenScope

STREAM_TOKEN_PREFIX = "sst_"  # noqa: S105  # a public prefix, not a secret
AUTH_CACHE_S = 5.0
SECRET_KEY_FILE = "secret.key"  # noqa: S105  # a file name, not a secret
_RANK = {TokenScope.READ: 1, TokenScope.WRITE: 2, TokenScope.ADMIN: 3}
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="stageless"'}
#: The request-state key under which ``require`` leaves the authenticated ``Principal``.
CALLER = "caller"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: the token's name (the audit actor), scope and bound flag set."""

    name: str
    scope: TokenScope
    flag_set: str | None = None
    via_stream_token: bool = False
    proxy_config: str | None = None
    expires_at: float | None = None  # Unix time: when a stream token's access ends


class Auth:
    """Authenticates requests and issues/verifies signed stream tokens."""

    def __init__(self, tokens: TokenService, *, key: bytes, stream_token_ttl_s: float) -> None:
        self._tokens = tokens
        self._key = key
        self._ttl = stream_token_ttl_s
        self._cache: dict[str, tuple[float, Principal | None]] = {}
        self._lock = threading.Lock()
        self.revocations = Revocations(tokens, self._forget)

    async def authenticate(self, token: str) -> Principal | None:
        """The principal of an API token, or ``None`` (unknown or revoked)."""
        digest = hashlib.sha256(token.encode()).hexdigest()
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(digest)
        if hit is not None and hit[0] > now:
            cached = hit[1]
            if cached is not None and cached.name in self.revocations.revoked:
                return None
            return cached
        found: ApiToken | None = await run_in_threadpool(self._tokens.authenticate, token)
        principal = (
            None
            if found is None
            else Principal(found.name, found.scope, found.flag_set, proxy_config=found.proxy_config)
        )
        if principal is not None and principal.name in self.revocations.revoked:
            return None  # read just before a revocation this instance already saw
        with self._lock:
            if len(self._cache) > 10_000:  # bound memory under token spraying
                self._cache.clear()
            self._cache[digest] = (now + AUTH_CACHE_S, principal)
        return principal

    def _forget(self, names: Collection[str]) -> None:
        """Drop the cached authentications of the tokens named ``names``."""
        with self._lock:
            stale = [
                digest
                for digest, (_, principal) in self._cache.items()
                if principal is not None and principal.name in names
            ]
            for digest in stale:
                del self._cache[digest]

    def sign_stream_token(
        self, principal: Principal, flag_set: str, ttl: float | None = None
    ) -> tuple[str, float]:
        """A signed token allowing ``principal`` to stream ``flag_set``, and when it expires."""
        expires = time.time() + (self._ttl if ttl is None else ttl)
        payload: dict[str, object] = {
            "sub": principal.name,
            "scope": str(principal.scope),
            "fs": flag_set,
            "exp": round(expires, 3),
        }
        raw = _b64(json.dumps(payload, separators=(",", ":")).encode())
        return f"{STREAM_TOKEN_PREFIX}{raw}.{self._sign(raw)}", expires

    def verify_stream_token(self, token: str) -> Principal:
        """The principal a stream token was issued to; ``Problem(401)`` if bad or expired."""
        body = token.removeprefix(STREAM_TOKEN_PREFIX)
        raw, _, signature = body.partition(".")
        if not token.startswith(STREAM_TOKEN_PREFIX) or not hmac.compare_digest(
            signature, self._sign(raw)
        ):
            raise Problem(401, "the stream token is not valid", headers=_CHALLENGE)
        try:
            payload = json.loads(_unb64(raw))
            expires = float(payload["exp"])
            principal = Principal(
                str(payload["sub"]),
                TokenScope(payload["scope"]),
                str(payload["fs"]),
                True,
                expires_at=expires,
            )
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise Problem(401, "the stream token is not valid", headers=_CHALLENGE) from exc
        if expires < time.time():
            raise Problem(401, "the stream token has expired", headers=_CHALLENGE)
        if principal.name in self.revocations.revoked:
            raise Problem(
                401, "the token this stream token was issued from is revoked", headers=_CHALLENGE
            )
        return principal

    def _sign(self, raw: str) -> str:
        return _b64(hmac.new(self._key, raw.encode(), hashlib.sha256).digest())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def presented_token(conn: HTTPConnection) -> str | None:
    """The API token in ``Authorization: Bearer`` or ``X-API-Key``, if any."""
    header = conn.headers.get("authorization")
    if header is not None:
        kind, _, value = header.partition(" ")
        if kind.lower() == "bearer" and value.strip():
            return value.strip()
    key = conn.headers.get("x-api-key")
    return key.strip() if key and key.strip() else None


async def require(
    conn: HTTPConnection,
    scope: TokenScope,
    flag_set: str | None = None,
    *,
    allow_stream_token: bool = False,
    proxy_config: str | None = None,
) -> Principal:
    """The caller, if allowed ``scope`` (on ``flag_set``); otherwise a 401 or 403 ``Problem``.

    ``TokenScope.SDK`` means "evaluate or stream ``flag_set``": any admin, write or read token
    may, and an sdk token bound to that set. ``TokenScope.PROXY`` means "stream proxy config
    ``proxy_config``" (its documents hold signing secrets): admin tokens may, and a proxy token
    bound to it. Other scopes rank admin > write > read; sdk tokens never have them, and a proxy
    token has ``read`` on its own proxy config only (pass ``proxy_config`` on those routes).
    ``allow_stream_token`` accepts ``?token=`` (flag-set stream routes only).
    """
    auth: Auth = conn.app.ctx.auth  # a ControlPlaneApp (stageless.api.context)
    principal: Principal | None
    token = presented_token(conn)
    if token is not None:
        principal = await auth.authenticate(token)
        if principal is None:
            raise Problem(401, "the token is unknown or revoked", headers=_CHALLENGE)
    elif allow_stream_token and conn.query_params.get("token"):
        principal = auth.verify_stream_token(conn.query_params["token"])
    else:
        raise Problem(
            401, "a token is needed: send 'Authorization: Bearer <token>'", headers=_CHALLENGE
        )
    state = conn.scope.setdefault("state", {})
    state["principal"] = principal.name
    state[CALLER] = principal  # what event streams track (revocation, expiry)
    _check_scope(principal, scope, flag_set, proxy_config)
    return principal


def _check_scope(
    principal: Principal, scope: TokenScope, flag_set: str | None, proxy_config: str | None
) -> None:
    if principal.via_stream_token and principal.flag_set != flag_set:
        raise Problem(403, f"this stream token is for flag set {principal.flag_set!r} only")
    if principal.scope is TokenScope.PROXY:
        if proxy_config is None or scope not in (TokenScope.READ, TokenScope.PROXY):
            raise Problem(
                403,
                f"token {principal.name!r} has scope proxy: it may only read and stream proxy "
                f"config {principal.proxy_config!r}",
            )
        if principal.proxy_config != proxy_config:
            raise Problem(
                403,
                f"token {principal.name!r} is bound to proxy config "
                f"{principal.proxy_config!r}, not {proxy_config!r}",
            )
        return
    if scope is TokenScope.PROXY:
        if principal.scope is not TokenScope.ADMIN:
            raise Problem(
                403,
                f"token {principal.name!r} has scope {principal.scope}; streaming a proxy "
                "config needs an admin token or a proxy token bound to it",
            )
        return
    if scope is TokenScope.SDK:
        if principal.scope is TokenScope.SDK and principal.flag_set != flag_set:
            raise Problem(
                403,
                f"token {principal.name!r} is bound to flag set {principal.flag_set!r}, "
                f"not {flag_set!r}",
            )
        return
    if principal.scope is TokenScope.SDK or _RANK[principal.scope] < _RANK[scope]:
        raise Problem(
            403, f"token {principal.name!r} has scope {principal.scope}; this needs {scope}"
        )


def load_secret_key(settings: Settings) -> bytes:
    """The stream-token signing key: ``secret_key``, or ``data_dir/secret.key`` (made once)."""
    if settings.secret_key is not None:
        return settings.secret_key.encode()
    path = Path(settings.data_dir) / SECRET_KEY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_key(path)
    with os.fdopen(fd, "w") as file:
        file.write(secrets.token_hex(32))
        file.flush()
        os.fsync(file.fileno())
    return _read_key(path)


def _read_key(path: Path) -> bytes:
    for _ in range(50):  # another instance may have created the file and be writing it
        key = path.read_text().strip()
        if key:
            return key.encode()
        time.sleep(0.01)
    raise ValidationError([Issue("secret_key", f"{path} is empty; delete it to make a new key")])
