"""`stageless flags list|get|apply|delete|history` against a real `stageless serve`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from stageless.cli import main
from stageless.cli.remote import (
    EXIT_NOT_FOUND,
    EXIT_REFUSED,
    EXIT_UNAUTHORIZED,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
)
from tests.live_server import LiveServer
from tests.ports import free_port

GOOD_YAML = """\
flags:
  new-checkout:
    state: ENABLED
    variants: {"on": true, "off": false}
    defaultVariant: "off"
"""
BAD_JSON = {
    "flags": {
        "a": {"state": "ENABLED", "variants": {"on": True}, "defaultVariant": "blue"},
        "b": {"state": "SOMETIMES", "variants": {"on": True}, "defaultVariant": "on"},
    }
}


class Remote:
    def __init__(self, server: LiveServer, admin: str, reader: str) -> None:
        self.server, self.admin, self.reader = server, admin, reader

    def run(self, *args: str, role: str | None = "admin") -> Result:
        """Run ``stageless flags ARGS`` with the admin's, the reader's or no token."""
        env = {"STAGELESS_SERVER": self.server.url}
        tokens = {"admin": self.admin, "reader": self.reader}
        if role is not None:
            env["STAGELESS_TOKEN"] = tokens[role]
        return CliRunner().invoke(main, ["flags", *args], env=env)


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Remote]:
    live = LiveServer(tmp_path_factory.mktemp("server"))
    admin, reader = live.create_token("ci", "admin"), live.create_token("viewer", "read")
    with live:
        yield Remote(live, admin, reader)


def test_apply_list_get_history_delete(remote: Remote, tmp_path: Path) -> None:
    file = tmp_path / "shop.yaml"
    file.write_text(GOOD_YAML)
    applied = remote.run("apply", "-f", str(file), "-m", "first cut")
    assert applied.exit_code == 0, applied.output
    assert applied.stdout == "shop: created, version 1\n"
    again = remote.run("apply", "-f", str(file), "--name", "shop", "--json")
    assert again.exit_code == 0
    body = json.loads(again.stdout)
    assert body["created"] is False and body["version"] == 2 and body["name"] == "shop"

    listed = remote.run("list")
    assert listed.exit_code == 0
    assert listed.stdout.splitlines()[0].split() == ["NAME", "VERSION", "UPDATED"]
    assert any(line.split()[:2] == ["shop", "2"] for line in listed.stdout.splitlines())
    names = [row["name"] for row in json.loads(remote.run("list", "--json").stdout)["flag_sets"]]
    assert "shop" in names

    got = remote.run("get", "shop", role="reader")
    assert got.exit_code == 0
    assert json.loads(got.stdout)["flags"]["new-checkout"]["defaultVariant"] == "off"
    assert "shop: version 2" in got.stderr
    full = json.loads(remote.run("get", "shop", "--json").stdout)
    assert {"name", "version", "etag", "document", "created_at", "updated_at"} <= set(full)

    history = remote.run("history", "shop")
    lines = history.stdout.splitlines()
    assert lines[1].split()[0] == "2" and lines[2].split()[0] == "1"
    assert lines[2].endswith("ci  first cut")
    versions = json.loads(remote.run("history", "shop", "--json").stdout)["versions"]
    assert [v["version"] for v in versions] == [2, 1]
    assert versions[1]["message"] == "first cut"

    deleted = remote.run("delete", "shop")
    assert (deleted.exit_code, deleted.stdout) == (0, "shop: deleted\n")
    gone = remote.run("get", "shop")
    assert gone.exit_code == EXIT_NOT_FOUND
    assert gone.stderr.startswith("error: ")


def test_an_invalid_document_lists_every_path(remote: Remote, tmp_path: Path) -> None:
    file = tmp_path / "bad.json"
    file.write_text(json.dumps(BAD_JSON))
    result = remote.run("apply", "-f", str(file))
    assert result.exit_code == EXIT_REFUSED
    lines = result.stderr.splitlines()
    assert lines[0] == "error: 2 problems with the input:"
    assert lines[1].startswith("  flags.a.defaultVariant: 'blue' is not one of the variants")
    assert lines[2].startswith("  flags.b.state: ")
    assert remote.run("get", "bad").exit_code == EXIT_NOT_FOUND  # nothing stored


def test_a_stale_if_match_is_refused(remote: Remote, tmp_path: Path) -> None:
    file = tmp_path / "etag.yaml"
    file.write_text(GOOD_YAML)
    remote.run("apply", "-f", str(file))
    result = remote.run("apply", "-f", str(file), "--if-match", "not-the-etag")
    assert result.exit_code == EXIT_REFUSED
    assert result.stderr.startswith("error: ")


def test_tokens_missing_or_too_weak(remote: Remote, tmp_path: Path) -> None:
    none = remote.run("list", role=None)
    assert none.exit_code == EXIT_UNAUTHORIZED
    assert "set STAGELESS_TOKEN or pass --token" in none.stderr
    file = tmp_path / "weak.yaml"
    file.write_text(GOOD_YAML)
    weak = remote.run("apply", "-f", str(file), role="reader")
    assert weak.exit_code == EXIT_UNAUTHORIZED
    explicit = remote.run("list", "--token", remote.admin, role=None)
    assert explicit.exit_code == 0


def test_unreadable_file_and_unreachable_server(remote: Remote, tmp_path: Path) -> None:
    missing = remote.run("apply", "-f", str(tmp_path / "nope.yaml"))
    assert missing.exit_code == EXIT_USAGE
    assert "cannot read" in missing.stderr
    url = f"http://127.0.0.1:{free_port()}"
    down = CliRunner().invoke(main, ["flags", "list", "--server", url, "--token", "t"])
    assert down.exit_code == EXIT_UNREACHABLE
    assert f"cannot reach the control plane at {url}" in down.stderr
