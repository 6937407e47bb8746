"""Version 3: rollouts, their transitions, requests and evidence; proxy reports.

``rollouts`` holds each rollout's plan (the text as validated), its controller state (JSON), its
phase and step, the latest judge decision, and the lease of the instance running it
(``lease_owner`` until ``lease_expires``). ``finished_at`` is set when the rollout ends; a
partial unique index allows one unfinished rollout per service. ``rollout_transitions`` is the
history (one row per transition, numbered per rollout), ``rollout_requests`` the pause, resume,
promote, abort and approve requests people made (handled by the instance running the rollout),
``rollout_evidence`` the batches the judge consumed, per step, to rebuild it after a restart.
``proxy_reports`` keeps what proxies report (their batches and diff deltas) for a retention
period; rows are deleted once older.
"""

from __future__ import annotations

DESCRIPTION = "rollouts, transitions, requests, evidence; proxy reports"

_TABLES = (
    """
    CREATE TABLE rollouts (
        id TEXT PRIMARY KEY,
        service TEXT NOT NULL,
        plan TEXT NOT NULL,
        state TEXT NOT NULL,
        phase TEXT NOT NULL,
        step BIGINT NOT NULL CHECK (step >= 0),
        seq BIGINT NOT NULL CHECK (seq >= 0),
        judge TEXT,
        created_by TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL,
        finished_at DOUBLE PRECISION,
        lease_owner TEXT,
        lease_expires DOUBLE PRECISION
    )
    """,
    "CREATE UNIQUE INDEX rollouts_one_unfinished ON rollouts (service) WHERE finished_at IS NULL",
    "CREATE INDEX rollouts_by_creation ON rollouts (created_at)",
    """
    CREATE TABLE rollout_transitions (
        rollout_id TEXT NOT NULL REFERENCES rollouts (id),
        seq BIGINT NOT NULL CHECK (seq > 0),
        at DOUBLE PRECISION NOT NULL,
        from_phase TEXT NOT NULL,
        to_phase TEXT NOT NULL,
        step BIGINT NOT NULL,
        event TEXT NOT NULL,
        commands TEXT NOT NULL,
        reason TEXT NOT NULL,
        actor TEXT NOT NULL,
        PRIMARY KEY (rollout_id, seq)
    )
    """,
)

_REQUESTS = """
        rollout_id TEXT NOT NULL REFERENCES rollouts (id),
        action TEXT NOT NULL,
        actor TEXT NOT NULL,
        step BIGINT,
        reason TEXT NOT NULL,
        at DOUBLE PRECISION NOT NULL,
        handled_at DOUBLE PRECISION
"""
_EVIDENCE = """
        rollout_id TEXT NOT NULL REFERENCES rollouts (id),
        step BIGINT NOT NULL,
        at DOUBLE PRECISION NOT NULL,
        batch TEXT NOT NULL
"""
_REPORTS = """
        proxy_config TEXT NOT NULL,
        received_at DOUBLE PRECISION NOT NULL,
        batches TEXT NOT NULL,
        diff TEXT
"""
_INDEXES = (
    "CREATE INDEX rollout_requests_pending ON rollout_requests (rollout_id, handled_at, id)",
    "CREATE INDEX rollout_evidence_by_step ON rollout_evidence (rollout_id, step, id)",
    "CREATE INDEX proxy_reports_by_config ON proxy_reports (proxy_config, received_at)",
    "CREATE INDEX proxy_reports_by_age ON proxy_reports (received_at)",
)
_SQLITE_ID = "id INTEGER PRIMARY KEY AUTOINCREMENT"
_POSTGRES_ID = "id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"


def _with_ids(id_column: str) -> tuple[str, ...]:
    return (
        f"CREATE TABLE rollout_requests ({id_column}, {_REQUESTS})",
        f"CREATE TABLE rollout_evidence ({id_column}, {_EVIDENCE})",
        f"CREATE TABLE proxy_reports ({id_column}, {_REPORTS})",
    )


STATEMENTS: dict[str, tuple[str, ...]] = {
    "sqlite": (*_TABLES, *_with_ids(_SQLITE_ID), *_INDEXES),
    "postgresql": (*_TABLES, *_with_ids(_POSTGRES_ID), *_INDEXES),
}
