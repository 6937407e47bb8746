"""The store contract, data operations: every test runs against every backend (SQLite file,
SQLite in memory, PostgreSQL), or against the two whose data is shared between store objects.
Migrations, durability and notifications are in test_contract_lifecycle.py."""

from __future__ import annotations

import hashlib
import itertools
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError

from stageless.clock import FakeClock
from stageless.errors import ConflictError, NotFoundError, ValidationError
from stageless.store import (
    AuditAction,
    FlagSetRecord,
    SqlStore,
    TokenScope,
    flag_set_target,
    token_target,
)
from tests.store.conftest import Database
from tests.store.support import DOC_1, DOC_2, DOC_3, pg_url, race

# Flag sets: create, read, update, delete.


def test_a_created_flag_set_reads_back_exactly(store: SqlStore, clock: FakeClock) -> None:
    created = store.create_flag_set("web", DOC_3, actor="alice")
    assert created.version == 1
    assert created.created_at == created.updated_at == clock.now()
    assert store.get_flag_set("web") == created
    assert store.get_flag_set("web").document == DOC_3


def test_creating_an_existing_flag_set_conflicts(store: SqlStore) -> None:
    store.create_flag_set("web", DOC_1, actor="alice")
    with pytest.raises(ConflictError, match="flag set 'web' already exists"):
        store.create_flag_set("web", DOC_2, actor="bob")
    assert store.get_flag_set("web").document == DOC_1


def test_an_unknown_flag_set_is_not_found_by_name(store: SqlStore) -> None:
    with pytest.raises(NotFoundError, match="flag set 'nope' not found"):
        store.get_flag_set("nope")
    with pytest.raises(NotFoundError, match="flag set 'nope' not found"):
        store.update_flag_set("nope", DOC_1, expected=None, actor="alice")
    with pytest.raises(NotFoundError, match="flag set 'nope' not found"):
        store.list_versions("nope")


def test_a_bad_name_is_rejected_naming_the_field(store: SqlStore) -> None:
    with pytest.raises(ValidationError) as caught:
        store.create_flag_set("../etc", DOC_1, actor="alice")
    assert [issue.path for issue in caught.value.issues] == ["name"]


def test_flag_sets_are_listed_by_name(store: SqlStore) -> None:
    for name in ("web", "api", "mobile"):
        store.create_flag_set(name, DOC_1, actor="alice")
    assert [record.name for record in store.list_flag_sets()] == ["api", "mobile", "web"]
    assert store.versions() == {"api": 1, "mobile": 1, "web": 1}


def test_an_update_makes_a_new_version_and_etag(store: SqlStore, clock: FakeClock) -> None:
    first = store.create_flag_set("web", DOC_1, actor="alice")
    clock.advance(5)
    second = store.update_flag_set("web", DOC_2, expected=first.etag, actor="bob", message="on")
    assert (second.version, second.document) == (2, DOC_2)
    assert second.etag != first.etag
    assert second.created_at == first.created_at
    assert second.updated_at == first.updated_at + 5
    assert store.get_flag_set("web") == second


def test_the_same_document_twice_still_makes_distinct_etags(store: SqlStore) -> None:
    first = store.create_flag_set("web", DOC_1, actor="alice")
    second = store.update_flag_set("web", DOC_1, expected=1, actor="alice")
    assert second.etag != first.etag


@pytest.mark.parametrize("stale", [1, "0123456789abcdef0123456789abcdef"], ids=["version", "etag"])
def test_a_stale_precondition_conflicts_and_changes_nothing(
    store: SqlStore, stale: int | str
) -> None:
    first = store.create_flag_set("web", DOC_1, actor="alice")
    current = store.update_flag_set("web", DOC_2, expected=first.version, actor="alice")
    audit_before = store.list_audit()
    with pytest.raises(ConflictError, match="flag set 'web'"):
        store.update_flag_set("web", DOC_3, expected=stale, actor="mallory")
    with pytest.raises(ConflictError, match="flag set 'web'"):
        store.delete_flag_set("web", expected=stale, actor="mallory")
    with pytest.raises(ConflictError, match="flag set 'web'"):
        store.restore_version("web", 1, expected=stale, actor="mallory")
    assert store.get_flag_set("web") == current
    assert [v.version for v in store.list_versions("web")] == [2, 1]
    assert store.list_audit() == audit_before


def test_an_unconditional_update_applies_on_any_version(store: SqlStore) -> None:
    store.create_flag_set("web", DOC_1, actor="alice")
    store.update_flag_set("web", DOC_2, expected=None, actor="alice")
    assert store.update_flag_set("web", DOC_3, expected=None, actor="alice").version == 3


def test_delete_keeps_history_and_a_recreated_set_continues_its_numbers(store: SqlStore) -> None:
    first = store.create_flag_set("web", DOC_1, actor="alice")
    store.update_flag_set("web", DOC_2, expected=1, actor="alice")
    store.delete_flag_set("web", expected=2, actor="bob")
    with pytest.raises(NotFoundError):
        store.get_flag_set("web")
    assert store.list_flag_sets() == []
    assert [v.version for v in store.list_versions("web")] == [2, 1]
    again = store.create_flag_set("web", DOC_1, actor="carol")
    assert again.version == 3
    assert again.etag != first.etag  # so no client cache mistakes the new set for the old one


def test_deleting_a_missing_flag_set_is_not_found(store: SqlStore) -> None:
    with pytest.raises(NotFoundError, match="flag set 'web' not found"):
        store.delete_flag_set("web", expected=None, actor="alice")


# Versions, history, restore and the data a diff needs.


def test_history_lists_every_version_newest_first(store: SqlStore, clock: FakeClock) -> None:
    store.create_flag_set("web", DOC_1, actor="alice", message="first")
    clock.advance(1)
    store.update_flag_set("web", DOC_2, expected=1, actor="bob", message="turn it on")
    clock.advance(1)
    store.update_flag_set("web", DOC_3, expected=2, actor="carol")
    history = store.list_versions("web")
    assert [(v.version, v.author, v.message) for v in history] == [
        (3, "carol", ""),
        (2, "bob", "turn it on"),
        (1, "alice", "first"),
    ]
    assert [v.document for v in history] == [DOC_3, DOC_2, DOC_1]
    assert history[0].created_at == history[2].created_at + 2
    assert [v.version for v in store.list_versions("web", limit=2)] == [3, 2]


def test_two_versions_give_back_the_exact_documents_to_diff(store: SqlStore) -> None:
    store.create_flag_set("web", DOC_1, actor="alice")
    current = store.update_flag_set("web", DOC_3, expected=1, actor="alice")
    old, new = store.get_version("web", 1), store.get_version("web", 2)
    assert (old.document, new.document) == (DOC_1, DOC_3)
    assert new.etag == current.etag
    with pytest.raises(NotFoundError, match="flag set 'web' has no version 7"):
        store.get_version("web", 7)


def test_restore_makes_a_new_version_with_the_old_document(store: SqlStore) -> None:
    store.create_flag_set("web", DOC_1, actor="alice")
    store.update_flag_set("web", DOC_2, expected=1, actor="alice")
    restored = store.restore_version("web", 1, expected=2, actor="bob")
    assert (restored.version, restored.document) == (3, DOC_1)
    newest = store.list_versions("web")[0]
    assert (newest.author, newest.message) == ("bob", "restore version 1")
    entry = store.list_audit()[-1]
    assert (entry.action, entry.before, entry.after) == (AuditAction.FLAG_SET_RESTORE, DOC_2, DOC_1)


def test_restoring_a_missing_version_changes_nothing(store: SqlStore) -> None:
    store.create_flag_set("web", DOC_1, actor="alice")
    with pytest.raises(NotFoundError, match="flag set 'web' has no version 9"):
        store.restore_version("web", 9, expected=None, actor="bob")
    assert store.get_flag_set("web").version == 1
    assert len(store.list_audit()) == 1


# Optimistic concurrency under real concurrency.


@pytest.mark.parametrize("precondition", ["version", "etag"])
def test_racing_updates_of_one_version_exactly_one_wins(store: SqlStore, precondition: str) -> None:
    first = store.create_flag_set("web", DOC_1, actor="alice")
    expected = first.version if precondition == "version" else first.etag
    results = race(
        6,
        lambda i: store.update_flag_set(
            "web", f'{{"flags": {{}}, "writer": {i}}}', expected=expected, actor=f"w{i}"
        ),
    )
    winners = [r for r in results if not isinstance(r, Exception)]
    assert len(winners) == 1, results
    assert all(isinstance(r, ConflictError) for r in results if r not in winners), results
    assert store.get_flag_set("web") == winners[0]
    assert [v.version for v in store.list_versions("web")] == [2, 1]
    assert len(store.list_audit()) == 2


def test_racing_creates_of_one_name_exactly_one_wins(shared_database: Database) -> None:
    # Separate stores (separate engines and connections) so the database itself arbitrates.
    stores = [shared_database.open() for _ in range(4)]
    try:
        results = race(4, lambda i: stores[i].create_flag_set("web", DOC_1, actor=f"w{i}"))
        winners = [r for r in results if not isinstance(r, Exception)]
        assert len(winners) == 1, results
        assert all(isinstance(r, ConflictError) for r in results if r not in winners), results
        assert len(stores[0].list_audit()) == 1
    finally:
        for opened in stores:
            opened.close()


# The audit log.


def test_every_write_is_audited_with_who_what_before_and_after(
    store: SqlStore, clock: FakeClock
) -> None:
    store.create_flag_set("web", DOC_1, actor="alice")
    clock.advance(1)
    store.update_flag_set("web", DOC_2, expected=1, actor="bob")
    clock.advance(1)
    store.delete_flag_set("web", expected=2, actor="carol")
    entries = store.list_audit()
    assert [(e.actor, e.action, e.target, e.before, e.after) for e in entries] == [
        ("alice", AuditAction.FLAG_SET_CREATE, "flag_set:web", None, DOC_1),
        ("bob", AuditAction.FLAG_SET_UPDATE, "flag_set:web", DOC_1, DOC_2),
        ("carol", AuditAction.FLAG_SET_DELETE, "flag_set:web", DOC_2, None),
    ]
    assert [e.ts - entries[0].ts for e in entries] == [0, 1, 2]
    assert entries[0].id < entries[1].id < entries[2].id


def test_the_audit_log_pages_and_filters_by_target(store: SqlStore) -> None:
    for name in ("a", "b", "c"):
        store.create_flag_set(name, DOC_1, actor="alice")
    first_two = store.list_audit(limit=2)
    rest = store.list_audit(after_id=first_two[-1].id)
    assert [e.target for e in first_two + rest] == ["flag_set:a", "flag_set:b", "flag_set:c"]
    assert [e.target for e in store.list_audit(target=flag_set_target("b"))] == ["flag_set:b"]


def test_the_store_offers_no_way_to_change_the_audit_log() -> None:
    audit_methods = {name for name in dir(SqlStore) if "audit" in name and not name.startswith("_")}
    assert audit_methods == {"list_audit"}


@pytest.mark.parametrize("statement", ["UPDATE audit_log SET actor = 'x'", "DELETE FROM audit_log"])
def test_the_database_rejects_editing_the_audit_log(
    shared_store: SqlStore, shared_database: Database, statement: str
) -> None:
    shared_store.create_flag_set("web", DOC_1, actor="alice")
    engine = shared_database.raw_engine()
    try:
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text(statement))
    finally:
        engine.dispose()
    assert [e.actor for e in shared_store.list_audit()] == ["alice"]


def test_postgresql_also_rejects_truncating_the_audit_log(pg_schema: str) -> None:
    database = Database("postgresql", pg_url(pg_schema), schema=pg_schema)
    with database.open() as opened:
        opened.create_flag_set("web", DOC_1, actor="alice")
        engine = database.raw_engine()
        try:
            with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
                conn.execute(text("TRUNCATE audit_log"))
        finally:
            engine.dispose()
        assert len(opened.list_audit()) == 1


# Tokens.


def test_a_token_authenticates_until_revoked(store: SqlStore, clock: FakeClock) -> None:
    created = store.create_token("ci", TokenScope.WRITE, actor="admin")
    assert created.plaintext.startswith("stl_")
    assert len(created.plaintext) >= 40
    assert "stl_" not in repr(created)
    found = store.authenticate(created.plaintext)
    assert found is not None
    assert (found.name, found.scope, found.flag_set) == ("ci", TokenScope.WRITE, None)
    assert found.last_used_at == clock.now()
    assert store.authenticate(created.plaintext + "x") is None
    revoked = store.revoke_token("ci", actor="admin")
    assert revoked.revoked_at == clock.now()
    assert store.authenticate(created.plaintext) is None
    assert store.revoke_token("ci", actor="admin") == revoked  # idempotent
    actions = [(e.action, e.target) for e in store.list_audit()]
    assert actions == [
        (AuditAction.TOKEN_CREATE, token_target("ci")),
        (AuditAction.TOKEN_REVOKE, token_target("ci")),
    ]


def test_last_used_is_refreshed_at_most_once_a_minute(store: SqlStore, clock: FakeClock) -> None:
    created = store.create_token("ci", TokenScope.READ, actor="admin")
    first = store.authenticate(created.plaintext)
    clock.advance(30)
    assert store.authenticate(created.plaintext) == first
    clock.advance(31)
    later = store.authenticate(created.plaintext)
    assert later is not None
    assert later.last_used_at == clock.now()
    assert store.list_tokens()[0].last_used_at == clock.now()


def test_sdk_tokens_and_only_they_are_bound_to_a_flag_set(store: SqlStore) -> None:
    sdk = store.create_token("web-sdk", TokenScope.SDK, flag_set="web", actor="admin")
    assert sdk.token.flag_set == "web"
    with pytest.raises(ValidationError) as missing:
        store.create_token("x", TokenScope.SDK, actor="admin")
    with pytest.raises(ValidationError) as extra:
        store.create_token("y", TokenScope.ADMIN, flag_set="web", actor="admin")
    assert [i.path for i in missing.value.issues + extra.value.issues] == ["flag_set", "flag_set"]
    assert [t.name for t in store.list_tokens()] == ["web-sdk"]


def test_token_names_are_unique_and_unknown_ones_not_found(store: SqlStore) -> None:
    store.create_token("ci", TokenScope.READ, actor="admin")
    with pytest.raises(ConflictError, match="token 'ci' already exists"):
        store.create_token("ci", TokenScope.ADMIN, actor="admin")
    with pytest.raises(NotFoundError, match="token 'nope' not found"):
        store.revoke_token("nope", actor="admin")


def test_only_a_hash_of_the_token_reaches_the_database(
    shared_store: SqlStore, shared_database: Database
) -> None:
    created = shared_store.create_token("ci", TokenScope.ADMIN, actor="admin")
    plaintext = created.plaintext.encode()
    secret = created.plaintext.removeprefix("stl_").encode()
    stored = _everything_stored(shared_database)
    assert b"ci" in stored  # the dump is real: the token's name is there
    assert plaintext not in stored
    assert secret not in stored
    assert hashlib.sha256(plaintext).hexdigest().encode() in stored


def _everything_stored(database: Database) -> bytes:
    """Every byte the database holds: the SQLite files, or every row of every table."""
    if database.path is not None:
        files = [database.path, *database.path.parent.glob(database.path.name + "-*")]
        return b"".join(path.read_bytes() for path in files)
    engine = database.raw_engine()
    try:
        with engine.connect() as conn:
            tables = inspect(conn).get_table_names()
            rows = [
                conn.execute(text(f"SELECT row_to_json(t)::text FROM {table} t")).scalars().all()  # noqa: S608
                for table in tables
            ]
    finally:
        engine.dispose()
    return "\n".join(value for table in rows for value in table).encode()


def test_json_documents_round_trip_as_text(store: SqlStore) -> None:
    document = json.dumps({"flags": {"f": {"variants": {"a": "ü" * 1000}}}}, ensure_ascii=False)
    store.create_flag_set("big", document, actor="alice")
    assert json.loads(store.get_flag_set("big").document) == json.loads(document)


# Properties over random sequences of writes.

_OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("create"), st.integers(0, 2), st.just("")),
        st.tuples(
            st.just("update"),
            st.integers(0, 2),
            st.sampled_from(["version", "etag", "none", "stale"]),
        ),
        st.tuples(st.just("delete"), st.integers(0, 2), st.sampled_from(["version", "stale"])),
        st.tuples(st.just("restore"), st.integers(0, 2), st.sampled_from(["1", "2", "5"])),
    ),
    max_size=12,
)
_runs = itertools.count()


# A quarter of the profile's examples: each one makes up to a dozen real database writes.
@settings(
    max_examples=max(10, settings().max_examples // 4),
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(operations=_OPERATIONS)
def test_random_writes_keep_versions_monotonic_and_the_audit_one_to_one(
    store: SqlStore, operations: list[tuple[str, int, str]]
) -> None:
    run = next(_runs)  # fresh names per example: the store is shared by all of them
    names = [f"p{run}-{i}" for i in range(3)]
    audit_start = max((e.id for e in store.list_audit(limit=1_000_000)), default=0)
    live: dict[str, FlagSetRecord] = {}
    numbers: dict[str, list[int]] = {name: [] for name in names}
    documents: dict[tuple[str, int], str] = {}
    writes: list[tuple[AuditAction, str, str | None]] = []
    for step, (kind, index, how) in enumerate(operations):
        name, document = names[index], f'{{"flags": {{}}, "step": {step}}}'
        current = live.get(name)
        expected: int | str | None = None
        if current is not None:
            choices: dict[str, int | str] = {
                "version": current.version,
                "etag": current.etag,
                "stale": 0,
            }
            expected = choices.get(how)
        try:
            if kind == "create":
                record = store.create_flag_set(name, document, actor="prop")
                writes.append((AuditAction.FLAG_SET_CREATE, name, document))
            elif kind == "update":
                record = store.update_flag_set(name, document, expected=expected, actor="prop")
                writes.append((AuditAction.FLAG_SET_UPDATE, name, document))
            elif kind == "restore":
                record = store.restore_version(name, int(how), expected=expected, actor="prop")
                writes.append((AuditAction.FLAG_SET_RESTORE, name, record.document))
                assert record.document == documents[name, int(how)]
            else:
                store.delete_flag_set(name, expected=expected, actor="prop")
                writes.append((AuditAction.FLAG_SET_DELETE, name, None))
                del live[name]
                continue
        except ConflictError:
            assert (kind == "create" and current is not None) or how == "stale"
            continue
        except NotFoundError:
            assert current is None or (kind == "restore" and (name, int(how)) not in documents)
            continue
        assert kind == "create" or current is not None
        assert how != "stale"
        live[name] = record
        numbers[name].append(record.version)
        documents[name, record.version] = record.document

    for name in names:
        assert numbers[name] == sorted(set(numbers[name]))  # strictly increasing, never reused
        if numbers[name]:
            history = store.list_versions(name, limit=1_000)
            assert [v.version for v in history] == numbers[name][::-1]
    assert {n: r.version for n, r in live.items()} == {
        n: v for n, v in store.versions().items() if n in names
    }
    audit = store.list_audit(after_id=audit_start, limit=1_000)
    assert [(e.action, e.target.removeprefix("flag_set:"), e.after) for e in audit] == writes
