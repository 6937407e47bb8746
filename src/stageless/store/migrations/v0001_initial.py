"""Version 1: flag sets, their versions, the append-only audit log and API tokens.

A migration is frozen once released: later changes go into a new ``vNNNN_<what>.py`` module.
Times are Unix seconds (double precision); documents and audit states are JSON text.
"""

from __future__ import annotations

DESCRIPTION = "flag sets, flag-set versions, append-only audit log, API tokens"

_TOKENS_CHECKS = """
    CHECK (scope IN ('admin', 'write', 'read', 'sdk')),
    CHECK ((scope = 'sdk') = (flag_set IS NOT NULL))
"""

_COMMON_TABLES = (
    """
    CREATE TABLE flag_sets (
        name TEXT PRIMARY KEY,
        document TEXT NOT NULL,
        version BIGINT NOT NULL CHECK (version > 0),
        etag TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL
    )
    """,
    # No foreign key to flag_sets: history outlives a deleted flag set, and a re-created one
    # continues its version numbers (so a version number or ETag is never reused).
    """
    CREATE TABLE flag_set_versions (
        flag_set TEXT NOT NULL,
        version BIGINT NOT NULL CHECK (version > 0),
        document TEXT NOT NULL,
        etag TEXT NOT NULL,
        author TEXT NOT NULL,
        message TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (flag_set, version)
    )
    """,
    f"""
    CREATE TABLE api_tokens (
        name TEXT PRIMARY KEY,
        token_hash TEXT NOT NULL UNIQUE,
        scope TEXT NOT NULL,
        flag_set TEXT,
        created_at DOUBLE PRECISION NOT NULL,
        last_used_at DOUBLE PRECISION,
        revoked_at DOUBLE PRECISION,
        {_TOKENS_CHECKS}
    )
    """,
)

_AUDIT_COLUMNS = """
        ts DOUBLE PRECISION NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        before_json TEXT,
        after_json TEXT
"""

STATEMENTS: dict[str, tuple[str, ...]] = {
    "sqlite": (
        *_COMMON_TABLES,
        # AUTOINCREMENT: ids are never reused, so "entries after id N" pages stay sound.
        f"CREATE TABLE audit_log (id INTEGER PRIMARY KEY AUTOINCREMENT, {_AUDIT_COLUMNS})",
        "CREATE INDEX audit_log_by_target ON audit_log (target, id)",
        """
        CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: UPDATE is not allowed'); END
        """,
        """
        CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: DELETE is not allowed'); END
        """,
    ),
    "postgresql": (
        *_COMMON_TABLES,
        f"""
        CREATE TABLE audit_log (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            {_AUDIT_COLUMNS}
        )
        """,
        "CREATE INDEX audit_log_by_target ON audit_log (target, id)",
        """
        CREATE FUNCTION stageless_audit_log_append_only() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION USING
                MESSAGE = 'audit_log is append-only: ' || TG_OP || ' is not allowed',
                ERRCODE = 'insufficient_privilege';
        END
        $$
        """,
        """
        CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
        FOR EACH ROW EXECUTE FUNCTION stageless_audit_log_append_only()
        """,
        """
        CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
        FOR EACH STATEMENT EXECUTE FUNCTION stageless_audit_log_append_only()
        """,
    ),
}
