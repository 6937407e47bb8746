"""The tester tokens a data plane may honour now, verified by the driver.

HAProxy, nginx and Gateway API implementations can match a header or a cookie against a list
of strings, but none can check a routing token's HMAC signature (:mod:`stageless.routing.
tokens`). So the driver does: it reads the tokens handed to testers from a file, keeps those
that verify for the plan's service with the configured keys and have not expired, and gives the
data plane that short list of exact strings. A token that expires (or is removed from the file)
stops matching at the next refresh; each driver refreshes on every apply and every batch read.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from stageless.drivers.base import DriverError
from stageless.rollout.dataplanes import TesterTokens
from stageless.routing.tokens import MIN_SECRET_BYTES, verify_token

__all__ = ["MAX_TOKENS", "current_tokens"]

MAX_TOKENS = 64
"""At most this many tokens reach a data plane (an HTTPRoute rule has at most 64 matches); with
more valid tokens, those expiring last are kept."""


def current_tokens(
    settings: TesterTokens,
    service: str,
    now: float,
    environ: Mapping[str, str] | None = None,
) -> tuple[str, ...]:
    """The tokens of ``settings.tokens_file`` valid for ``service`` at ``now``, sorted.

    Raises:
        DriverError: the file cannot be read, or a key's environment variable is unset or holds
            a secret shorter than 32 bytes.
    """
    environ = os.environ if environ is None else environ
    keys: dict[str, bytes] = {}
    for key in settings.signing_keys:
        secret = environ.get(key.secret_env)
        if secret is None:
            raise DriverError(
                f"testers.signing_keys: the environment variable {key.secret_env} (key "
                f"{key.id!r}) is not set in the control plane's process"
            )
        if len(secret.encode()) < MIN_SECRET_BYTES:
            raise DriverError(
                f"testers.signing_keys: {key.secret_env} (key {key.id!r}) holds "
                f"{len(secret.encode())} bytes; expected at least {MIN_SECRET_BYTES}"
            )
        keys[key.id] = secret.encode()
    try:
        text = Path(settings.tokens_file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        message = f"testers.tokens_file: cannot read {settings.tokens_file}: {exc}"
        raise DriverError(message) from exc
    valid: dict[str, int] = {}
    for line in text.splitlines():
        token = line.split("#", 1)[0].strip()
        if not token:
            continue
        claims = verify_token(token, keys, service=service, now=now)
        if claims is not None:
            valid[token] = claims.expires_at
    kept = sorted(valid, key=lambda t: (-valid[t], t))[:MAX_TOKENS]
    return tuple(sorted(kept))
