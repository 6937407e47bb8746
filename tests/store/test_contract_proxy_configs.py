"""The store contract for proxy configurations and proxy tokens, against every backend: the same
versioning, preconditions, history, audit and notifications as flag sets, in their own namespace,
with signing secrets kept out of the audit log; and migration 2 keeping every existing token."""

from __future__ import annotations

import json
import queue
import time

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from stageless.clock import FakeClock
from stageless.errors import ConflictError, NotFoundError, ValidationError
from stageless.store import (  # _backend_for: to build a database at an older schema
    AuditAction,
    ChangeEvent,
    ResourceKind,
    SqlStore,
    TokenScope,
    _backend_for,
    open_store,
    proxy_config_target,
)
from stageless.store.documents import REDACTED_PREFIX, fingerprint
from stageless.store.migrations import apply_migrations, discover
from stageless.store.postgres import notification_payload, parse_payload
from tests.store.conftest import Database
from tests.store.support import DOC_1

SECRET_1 = "a-signing-secret-of-at-least-32-bytes-0001"  # noqa: S105  # a test key
SECRET_2 = "a-signing-secret-of-at-least-32-bytes-0002"  # noqa: S105  # a test key


def proxy_doc(weight: int, secret: str = SECRET_1) -> str:
    return json.dumps(
        {
            "signing_keys": [{"id": "k1", "secret": secret}],
            "services": [{"name": "shop", "split": {"weight": weight}}],
        }
    )


PROXY = ResourceKind.PROXY_CONFIG


def test_a_proxy_config_is_versioned_like_a_flag_set(store: SqlStore, clock: FakeClock) -> None:
    first = store.create_proxy_config("edge", proxy_doc(0), actor="alice", message="first")
    assert (first.name, first.version, first.document) == ("edge", 1, proxy_doc(0))
    clock.advance(2)
    second = store.update_proxy_config("edge", proxy_doc(5), expected=first.etag, actor="bob")
    assert (second.version, second.created_at, second.updated_at) == (
        2,
        first.created_at,
        first.updated_at + 2,
    )
    assert second.etag != first.etag
    assert store.get_proxy_config("edge") == second
    assert [r.name for r in store.list_proxy_configs()] == ["edge"]
    history = store.list_proxy_config_versions("edge")
    assert [(v.proxy_config, v.version, v.author, v.message) for v in history] == [
        ("edge", 2, "bob", ""),
        ("edge", 1, "alice", "first"),
    ]
    assert store.get_proxy_config_version("edge", 1).document == proxy_doc(0)
    with pytest.raises(NotFoundError, match="proxy config 'edge' has no version 9"):
        store.get_proxy_config_version("edge", 9)


def test_a_stale_precondition_changes_nothing(store: SqlStore) -> None:
    first = store.create_proxy_config("edge", proxy_doc(0), actor="alice")
    current = store.update_proxy_config("edge", proxy_doc(5), expected=1, actor="alice")
    with pytest.raises(ConflictError, match="proxy config 'edge' is at version 2"):
        store.update_proxy_config("edge", proxy_doc(9), expected=1, actor="mallory")
    with pytest.raises(ConflictError, match="proxy config 'edge' has ETag"):
        store.delete_proxy_config("edge", expected=first.etag, actor="mallory")
    with pytest.raises(ConflictError, match="proxy config 'edge' already exists"):
        store.create_proxy_config("edge", proxy_doc(9), actor="mallory")
    assert store.get_proxy_config("edge") == current
    assert len(store.list_audit()) == 2


def test_delete_keeps_history_and_a_recreated_config_continues_its_numbers(
    store: SqlStore,
) -> None:
    store.create_proxy_config("edge", proxy_doc(0), actor="alice")
    store.delete_proxy_config("edge", expected=None, actor="alice")
    with pytest.raises(NotFoundError, match="proxy config 'edge' not found"):
        store.get_proxy_config("edge")
    with pytest.raises(NotFoundError, match="proxy config 'edge' not found"):
        store.delete_proxy_config("edge", expected=None, actor="alice")
    assert store.create_proxy_config("edge", proxy_doc(1), actor="alice").version == 2
    assert [v.version for v in store.list_proxy_config_versions("edge")] == [2, 1]
    with pytest.raises(NotFoundError, match="proxy config 'nope' not found"):
        store.list_proxy_config_versions("nope")


def test_proxy_configs_and_flag_sets_are_separate_namespaces(store: SqlStore) -> None:
    store.create_flag_set("edge", DOC_1, actor="alice")
    store.create_proxy_config("edge", proxy_doc(0), actor="alice")
    store.update_proxy_config("edge", proxy_doc(1), expected=None, actor="alice")
    assert store.get_flag_set("edge").version == 1
    assert store.get_proxy_config("edge").version == 2
    assert store.versions() == {"edge": 1}  # flag sets only
    assert [r.name for r in store.list_flag_sets()] == ["edge"]


def test_a_bad_name_is_rejected_naming_the_field(store: SqlStore) -> None:
    with pytest.raises(ValidationError) as caught:
        store.create_proxy_config("../etc", proxy_doc(0), actor="alice")
    assert [issue.path for issue in caught.value.issues] == ["name"]


def test_the_audit_log_never_holds_a_signing_secret(store: SqlStore) -> None:
    store.create_proxy_config("edge", proxy_doc(0), actor="alice")
    store.update_proxy_config("edge", proxy_doc(5, SECRET_2), expected=None, actor="bob")
    store.delete_proxy_config("edge", expected=None, actor="carol")
    entries = store.list_audit(target=proxy_config_target("edge"))
    assert [(e.actor, e.action) for e in entries] == [
        ("alice", AuditAction.PROXY_CONFIG_CREATE),
        ("bob", AuditAction.PROXY_CONFIG_UPDATE),
        ("carol", AuditAction.PROXY_CONFIG_DELETE),
    ]
    dumped = " ".join(f"{e.before} {e.after}" for e in entries)
    assert SECRET_1 not in dumped
    assert SECRET_2 not in dumped
    after = json.loads(entries[1].after or "")
    assert after["signing_keys"][0]["secret"] == fingerprint(SECRET_2)
    assert after["signing_keys"][0]["secret"].startswith(REDACTED_PREFIX)
    assert after["services"] == [{"name": "shop", "split": {"weight": 5}}]  # the rest as is
    # The document itself is stored as given: the proxy needs the secret.
    assert SECRET_2 in store.get_proxy_config_version("edge", 2).document


# Proxy tokens.


def test_proxy_tokens_and_only_they_are_bound_to_a_proxy_config(store: SqlStore) -> None:
    created = store.create_token("edge-proxy", TokenScope.PROXY, proxy_config="edge", actor="a")
    assert (created.token.scope, created.token.proxy_config) == (TokenScope.PROXY, "edge")
    found = store.authenticate(created.plaintext)
    assert found is not None
    assert (found.scope, found.flag_set, found.proxy_config) == (TokenScope.PROXY, None, "edge")
    assert store.list_tokens()[0].proxy_config == "edge"
    for scope, binding in [
        (TokenScope.PROXY, {}),
        (TokenScope.ADMIN, {"proxy_config": "edge"}),
        (TokenScope.SDK, {"flag_set": "web", "proxy_config": "edge"}),
        (TokenScope.PROXY, {"flag_set": "web", "proxy_config": "edge"}),
    ]:
        with pytest.raises(ValidationError) as caught:
            store.create_token("x", scope, actor="a", **binding)
        assert {i.path for i in caught.value.issues} <= {"flag_set", "proxy_config"}
    with pytest.raises(ValidationError) as bad:
        store.create_token("y", TokenScope.PROXY, proxy_config="no/slash", actor="a")
    assert [i.path for i in bad.value.issues] == ["proxy_config"]
    assert [t.name for t in store.list_tokens()] == ["edge-proxy"]
    created_entry = store.list_audit()[0]
    assert json.loads(created_entry.after or "")["proxy_config"] == "edge"


def test_the_database_refuses_a_proxy_token_without_its_config(
    shared_store: SqlStore, shared_database: Database
) -> None:
    shared_store.create_token("ok", TokenScope.PROXY, proxy_config="edge", actor="a")
    engine = shared_database.raw_engine()
    try:
        with pytest.raises(IntegrityError, match=r"(?i)check"), engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO api_tokens (name, token_hash, scope, created_at) "
                    "VALUES ('bad', 'h', 'proxy', 0)"
                )
            )
    finally:
        engine.dispose()


def test_migration_2_keeps_every_existing_token(shared_database: Database) -> None:
    # A database at schema version 1 with tokens of every scope it knew.
    backend = _backend_for(shared_database.url, poll_interval=0.05)
    try:
        assert apply_migrations(backend, migrations=discover()[:1]) == [1]
    finally:
        backend.close()
    engine = shared_database.raw_engine()
    try:
        with engine.begin() as conn:
            for name, scope, flag_set in [("root", "admin", None), ("app", "sdk", "web")]:
                conn.execute(
                    text(
                        "INSERT INTO api_tokens (name, token_hash, scope, flag_set, created_at) "
                        "VALUES (:name, :hash, :scope, :flag_set, 1)"
                    ),
                    {"name": name, "hash": f"hash-{name}", "scope": scope, "flag_set": flag_set},
                )
    finally:
        engine.dispose()
    with open_store(shared_database.url) as migrated:
        tokens = {t.name: (t.scope, t.flag_set, t.proxy_config) for t in migrated.list_tokens()}
        assert tokens == {
            "root": (TokenScope.ADMIN, None, None),
            "app": (TokenScope.SDK, "web", None),
        }
        migrated.create_token("edge", TokenScope.PROXY, proxy_config="edge", actor="a")
        with pytest.raises(ConflictError):  # the unique name survived the rebuild
            migrated.create_token("root", TokenScope.READ, actor="a")


# Change notifications.


def _events(sink: queue.Queue[ChangeEvent], count: int, timeout: float) -> list[ChangeEvent]:
    deadline = time.monotonic() + timeout
    return [sink.get(timeout=max(0.0, deadline - time.monotonic())) for _ in range(count)]


def test_subscribers_hear_the_kind_they_asked_for(store: SqlStore) -> None:
    proxies: queue.Queue[ChangeEvent] = queue.Queue()
    flags: queue.Queue[ChangeEvent] = queue.Queue()
    everything: queue.Queue[ChangeEvent] = queue.Queue()
    store.subscribe(proxies.put, kind=PROXY)
    store.subscribe(flags.put)  # flag sets, as before
    store.subscribe(everything.put, kind=None)
    store.create_proxy_config("edge", proxy_doc(0), actor="a")
    store.create_flag_set("edge", DOC_1, actor="a")
    store.update_proxy_config("edge", proxy_doc(1), expected=1, actor="a")
    store.delete_proxy_config("edge", expected=2, actor="a")
    assert _events(proxies, 3, timeout=2) == [
        ChangeEvent("edge", 1, kind=PROXY),
        ChangeEvent("edge", 2, kind=PROXY),
        ChangeEvent("edge", 2, deleted=True, kind=PROXY),
    ]
    assert _events(flags, 1, timeout=2) == [ChangeEvent("edge", 1)]
    assert len(_events(everything, 4, timeout=2)) == 4
    time.sleep(0.2)  # echoes from the backend's watcher must not repeat anything
    assert proxies.empty()
    assert flags.empty()
    assert everything.empty()


def test_a_proxy_config_change_reaches_another_instance_within_a_second(
    shared_database: Database,
) -> None:
    with shared_database.open() as writer, shared_database.open() as reader:
        writer.create_proxy_config("edge", proxy_doc(0), actor="a")  # before subscribing
        proxies: queue.Queue[ChangeEvent] = queue.Queue()
        flags: queue.Queue[ChangeEvent] = queue.Queue()
        reader.subscribe(proxies.put, kind=PROXY)
        reader.subscribe(flags.put)
        started = time.monotonic()
        writer.update_proxy_config("edge", proxy_doc(5), expected=1, actor="a")
        assert _events(proxies, 1, timeout=1.0) == [ChangeEvent("edge", 2, kind=PROXY)]
        assert time.monotonic() - started < 1.0
        writer.delete_proxy_config("edge", expected=2, actor="a")
        assert _events(proxies, 1, timeout=1.0) == [
            ChangeEvent("edge", 2, deleted=True, kind=PROXY)
        ]
        assert flags.empty()


def test_notification_payloads_round_trip_and_keep_the_flag_set_shape() -> None:
    for event in [ChangeEvent("web", 3), ChangeEvent("edge", 4, deleted=True, kind=PROXY)]:
        assert parse_payload(json.dumps(notification_payload(event))) == event
    # What an older instance sends (and reads) for a flag set is unchanged.
    assert notification_payload(ChangeEvent("web", 3)) == {
        "flag_set": "web",
        "version": 3,
        "deleted": False,
    }
    assert "flag_set" not in notification_payload(ChangeEvent("edge", 1, kind=PROXY))
