"""Opening a store from a database URL: what is accepted, and how failures read."""

from __future__ import annotations

from pathlib import Path

import pytest

from stageless.errors import StoreError, ValidationError
from stageless.store import DEFAULT_DATABASE_FILENAME, Store, open_store, sqlite_url


def test_the_default_database_is_a_file_in_the_data_directory(tmp_path: Path) -> None:
    data_dir = tmp_path / "not" / "yet" / "there"
    with open_store(sqlite_url(data_dir)) as opened:
        assert opened.backend == "sqlite"
        store: Store = opened  # mypy checks that SqlStore satisfies the Protocol
        store.ping()
        store.create_flag_set("web", "{}", actor="me")
    assert (data_dir / DEFAULT_DATABASE_FILENAME).is_file()


def test_a_relative_data_directory_becomes_an_absolute_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert sqlite_url("data") == f"sqlite:///{tmp_path}/data/{DEFAULT_DATABASE_FILENAME}"


@pytest.mark.parametrize("url", ["mysql://db/x", "postgresql+asyncpg://db/x", "nonsense"])
def test_an_unusable_url_names_the_database_setting(url: str) -> None:
    with pytest.raises(ValidationError) as caught:
        open_store(url)
    assert [issue.path for issue in caught.value.issues] == ["database"]


def test_an_unreachable_postgresql_is_a_store_error_without_the_password() -> None:
    # Port 1 on loopback: nothing listens there, so the connection is refused at once.
    with pytest.raises(StoreError, match=r"127\.0\.0\.1:1/test") as caught:
        open_store("postgresql://stageless:hunter2@127.0.0.1:1/test?connect_timeout=2")
    assert "hunter2" not in str(caught.value)


def test_a_postgresql_search_path_without_a_schema_is_explained() -> None:
    url = "postgresql://postgres@127.0.0.1:5432/test?options=-csearch_path%3Dno_such_schema_here"
    with pytest.raises(StoreError, match="no schema on the search_path exists"):
        open_store(url)
