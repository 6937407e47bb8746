"""API token material: generation and the one-way hash that is all the store keeps.

Why SHA-256 and not bcrypt/scrypt/argon2: those are deliberately slow to make guessing a
*password* (low entropy, chosen by people) expensive. A Stageless token is 256 bits from the
operating system's CSPRNG, so there is nothing to guess: a fast hash is exactly as safe, and
it lets every request be authenticated with one indexed lookup instead of a deliberate
50 to 100 ms of CPU work per call, which the OFREP and stream endpoints could not afford.
Lookup is by the hash of what the caller presented, so timing reveals nothing about a token.
"""

from __future__ import annotations

import hashlib
import secrets

#: Visible prefix so leaked tokens are recognisable (by people and by secret scanners).
TOKEN_PREFIX = "stl_"  # noqa: S105 (a public prefix, not a secret)
TOKEN_BYTES = 32  # 256 bits of entropy


def generate_token() -> str:
    """A new random token: the prefix and 43 URL-safe characters."""
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(plaintext: str) -> str:
    """The hex SHA-256 of a token, as stored and looked up."""
    return hashlib.sha256(plaintext.encode()).hexdigest()
