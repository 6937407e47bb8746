"""``stageless tokens`` and ``stageless audit`` on the configured database."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from stageless.cli import main
from stageless.store import open_store, sqlite_url


def _run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def test_tokens_create_prints_the_token_once_and_stores_only_its_hash(tmp_path: Path) -> None:
    data = str(tmp_path)
    code, out, err = _run(
        "tokens", "create", "--name", "ci", "--scope", "write", "--data-dir", data
    )
    assert code == 0, err
    token = out.strip()
    assert token.startswith("stl_")
    assert "shown only now" in err
    with open_store(sqlite_url(tmp_path)) as store:
        authenticated = store.authenticate(token)
        assert authenticated is not None
        assert (authenticated.name, str(authenticated.scope)) == ("ci", "write")
    code, listed, _ = _run("tokens", "list", "--json", env={"STAGELESS_DATA_DIR": data})
    assert code == 0
    assert token not in listed
    assert [t["name"] for t in json.loads(listed)["tokens"]] == ["ci"]


def test_sdk_tokens_need_a_flag_set_and_errors_are_plain(tmp_path: Path) -> None:
    code, _, err = _run(
        "tokens", "create", "--name", "app", "--scope", "sdk", "--data-dir", str(tmp_path)
    )
    assert code == 1
    assert err.strip().startswith("error:")
    assert "flag_set: an sdk token needs the flag set it reads" in err
    code, out, _ = _run(
        "tokens",
        "create",
        "--name",
        "app",
        "--scope",
        "sdk",
        "--flag-set",
        "web",
        "--data-dir",
        str(tmp_path),
    )
    assert code == 0
    assert out.startswith("stl_")


def test_revoke_then_audit_shows_both_changes(tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path)]
    _run("tokens", "create", "--name", "ci", "--scope", "read", *data)
    code, out, _ = _run("tokens", "revoke", "ci", *data)
    assert (code, out.strip()) == (0, "token 'ci' revoked")
    code, out, _ = _run("audit", "--json", "--target", "token:ci", *data)
    assert code == 0
    entries = [json.loads(line) for line in out.splitlines()]
    assert [(e["actor"], e["action"]) for e in entries] == [
        ("cli", "token.create"),
        ("cli", "token.revoke"),
    ]
    assert entries[1]["after"]["revoked_at"] is not None
    code, out, _ = _run("audit", "--limit", "1", *data)
    assert code == 0
    assert out.count("\n") == 1
    assert "token.create" in out
    code, _, err = _run("tokens", "revoke", "nobody", *data)
    assert code == 1
    assert "token 'nobody' not found" in err


def test_proxy_tokens_are_bound_to_a_proxy_config(tmp_path: Path) -> None:
    data = str(tmp_path)
    code, _, err = _run(
        "tokens", "create", "--name", "edge", "--scope", "proxy", "--data-dir", data
    )
    assert code == 1
    assert "proxy_config: a proxy token needs the proxy config it reads" in err
    code, out, err = _run(
        "tokens",
        "create",
        "--name",
        "edge",
        "--scope",
        "proxy",
        "--proxy-config",
        "edge-eu",
        "--data-dir",
        data,
    )
    assert code == 0, err
    assert "for proxy config 'edge-eu'" in err
    with open_store(sqlite_url(tmp_path)) as store:
        found = store.authenticate(out.strip())
        assert found is not None
        assert (str(found.scope), found.proxy_config) == ("proxy", "edge-eu")
    code, listed, _ = _run("tokens", "list", "--data-dir", data)
    assert "edge  proxy proxy config edge-eu" in listed
    code, listed, _ = _run("tokens", "list", "--json", "--data-dir", data)
    assert json.loads(listed)["tokens"][0]["proxy_config"] == "edge-eu"
