"""The current schema as SQLAlchemy Core tables, for building queries.

The tables are created and changed only by the versioned migrations in
``stageless.store.migrations``; a contract test checks that these definitions match the
columns the migrations create on every backend.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Double, MetaData, Table, Text

metadata = MetaData()

flag_sets = Table(
    "flag_sets",
    metadata,
    Column("name", Text, primary_key=True),
    Column("document", Text, nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("etag", Text, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
)

flag_set_versions = Table(
    "flag_set_versions",
    metadata,
    Column("flag_set", Text, primary_key=True),
    Column("version", BigInteger, primary_key=True),
    Column("document", Text, nullable=False),
    Column("etag", Text, nullable=False),
    Column("author", Text, nullable=False),
    Column("message", Text, nullable=False),
    Column("created_at", Double, nullable=False),
)

proxy_configs = Table(
    "proxy_configs",
    metadata,
    Column("name", Text, primary_key=True),
    Column("document", Text, nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("etag", Text, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
)

proxy_config_versions = Table(
    "proxy_config_versions",
    metadata,
    Column("proxy_config", Text, primary_key=True),
    Column("version", BigInteger, primary_key=True),
    Column("document", Text, nullable=False),
    Column("etag", Text, nullable=False),
    Column("author", Text, nullable=False),
    Column("message", Text, nullable=False),
    Column("created_at", Double, nullable=False),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("ts", Double, nullable=False),
    Column("actor", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("target", Text, nullable=False),
    Column("before_json", Text),
    Column("after_json", Text),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("name", Text, primary_key=True),
    Column("token_hash", Text, nullable=False, unique=True),
    Column("scope", Text, nullable=False),
    Column("flag_set", Text),
    Column("created_at", Double, nullable=False),
    Column("last_used_at", Double),
    Column("revoked_at", Double),
    Column("proxy_config", Text),
)

rollouts = Table(
    "rollouts",
    metadata,
    Column("id", Text, primary_key=True),
    Column("service", Text, nullable=False),
    Column("plan", Text, nullable=False),
    Column("state", Text, nullable=False),
    Column("phase", Text, nullable=False),
    Column("step", BigInteger, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("judge", Text),
    Column("created_by", Text, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
    Column("finished_at", Double),
    Column("lease_owner", Text),
    Column("lease_expires", Double),
)

rollout_transitions = Table(
    "rollout_transitions",
    metadata,
    Column("rollout_id", Text, primary_key=True),
    Column("seq", BigInteger, primary_key=True),
    Column("at", Double, nullable=False),
    Column("from_phase", Text, nullable=False),
    Column("to_phase", Text, nullable=False),
    Column("step", BigInteger, nullable=False),
    Column("event", Text, nullable=False),
    Column("commands", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("actor", Text, nullable=False),
)

rollout_requests = Table(
    "rollout_requests",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("rollout_id", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("actor", Text, nullable=False),
    Column("step", BigInteger),
    Column("reason", Text, nullable=False),
    Column("at", Double, nullable=False),
    Column("handled_at", Double),
)

rollout_evidence = Table(
    "rollout_evidence",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("rollout_id", Text, nullable=False),
    Column("step", BigInteger, nullable=False),
    Column("at", Double, nullable=False),
    Column("batch", Text, nullable=False),
)

proxy_reports = Table(
    "proxy_reports",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("proxy_config", Text, nullable=False),
    Column("received_at", Double, nullable=False),
    Column("batches", Text, nullable=False),
    Column("diff", Text),
)

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", BigInteger, primary_key=True),
    Column("description", Text, nullable=False),
    Column("applied_at", Double, nullable=False),
)
