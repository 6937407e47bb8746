"""Version 2: proxy configurations and their versions; tokens bound to a proxy configuration.

``proxy_configs`` and ``proxy_config_versions`` mirror the flag-set tables (history outlives a
deleted configuration, and a re-created one continues its version numbers). ``api_tokens``
gains the ``proxy`` scope and a ``proxy_config`` column, required for, and only for, that
scope. Neither database can change a CHECK constraint in place portably, so the token table is
rebuilt: a new table with the new checks, every row copied, the old table dropped and the new
one renamed, in the migration's one transaction.
"""

from __future__ import annotations

DESCRIPTION = "proxy configurations, their versions, proxy tokens"

_TABLES = (
    """
    CREATE TABLE proxy_configs (
        name TEXT PRIMARY KEY,
        document TEXT NOT NULL,
        version BIGINT NOT NULL CHECK (version > 0),
        etag TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL
    )
    """,
    """
    CREATE TABLE proxy_config_versions (
        proxy_config TEXT NOT NULL,
        version BIGINT NOT NULL CHECK (version > 0),
        document TEXT NOT NULL,
        etag TEXT NOT NULL,
        author TEXT NOT NULL,
        message TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (proxy_config, version)
    )
    """,
)

_TOKENS = (
    """
    CREATE TABLE api_tokens_v2 (
        name TEXT PRIMARY KEY,
        token_hash TEXT NOT NULL UNIQUE,
        scope TEXT NOT NULL,
        flag_set TEXT,
        created_at DOUBLE PRECISION NOT NULL,
        last_used_at DOUBLE PRECISION,
        revoked_at DOUBLE PRECISION,
        proxy_config TEXT,
        CHECK (scope IN ('admin', 'write', 'read', 'sdk', 'proxy')),
        CHECK ((scope = 'sdk') = (flag_set IS NOT NULL)),
        CHECK ((scope = 'proxy') = (proxy_config IS NOT NULL))
    )
    """,
    """
    INSERT INTO api_tokens_v2
        (name, token_hash, scope, flag_set, created_at, last_used_at, revoked_at)
    SELECT name, token_hash, scope, flag_set, created_at, last_used_at, revoked_at
    FROM api_tokens
    """,
    "DROP TABLE api_tokens",
    "ALTER TABLE api_tokens_v2 RENAME TO api_tokens",
)

STATEMENTS: dict[str, tuple[str, ...]] = {
    "sqlite": (*_TABLES, *_TOKENS),
    "postgresql": (*_TABLES, *_TOKENS),
}
