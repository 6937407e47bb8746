"""`stageless proxy-config list|get|apply|delete|history` against a real `stageless serve`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from stageless.cli import main
from stageless.cli.remote import EXIT_NOT_FOUND, EXIT_REFUSED, EXIT_UNAUTHORIZED
from tests.live_server import LiveServer

SECRET = "cli-test-signing-secret-0123456789abcdef"  # noqa: S105  # a test key
GOOD = f"""\
signing_keys: [{{id: k1, secret: {SECRET}}}]
services:
  - name: shop
    stable: {{addresses: ["127.0.0.1:9001"]}}
    candidate: {{addresses: ["127.0.0.1:9002"]}}
    split: {{weight: 5}}
    testers: true
"""


class Remote:
    def __init__(self, server: LiveServer, tokens: dict[str, str]) -> None:
        self.server, self.tokens = server, tokens

    def run(self, *args: str, role: str | None = "admin") -> Result:
        env = {"STAGELESS_SERVER": self.server.url}
        if role is not None:
            env["STAGELESS_TOKEN"] = self.tokens[role]
        return CliRunner().invoke(main, ["proxy-config", *args], env=env)


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Remote]:
    live = LiveServer(tmp_path_factory.mktemp("server"))
    tokens = {"admin": live.create_token("ci", "admin"), "read": live.create_token("v", "read")}
    with live:
        yield Remote(live, tokens)


def test_apply_get_history_list_delete(remote: Remote, tmp_path: Path) -> None:
    file = tmp_path / "edge.yaml"
    file.write_text(GOOD)
    applied = remote.run("apply", "-f", str(file), "-m", "first cut")
    assert applied.exit_code == 0, applied.output
    assert applied.stdout == "edge: created, version 1\n"
    file.write_text(GOOD.replace("weight: 5", "weight: 25"))
    again = remote.run("apply", "-f", str(file), "--name", "edge", "--json")
    assert again.exit_code == 0, again.output
    body = json.loads(again.stdout)
    assert (body["created"], body["version"]) == (False, 2)

    got = remote.run("get", "edge")  # admin: the document as applied, secrets included
    assert got.exit_code == 0, got.output
    assert yaml.safe_load(got.stdout) == yaml.safe_load(file.read_text())
    assert "edge: version 2" in got.stderr
    redacted = remote.run("get", "edge", role="read")
    shown = yaml.safe_load(redacted.stdout)["signing_keys"][0]["secret"]
    assert shown.startswith("redacted:sha256:")
    assert SECRET not in redacted.stdout

    history = remote.run("history", "edge", role="read")
    assert history.exit_code == 0
    rows = history.stdout.splitlines()
    assert rows[0].split() == ["VERSION", "CREATED", "AUTHOR", "MESSAGE"]
    assert [row.split()[0] for row in rows[1:]] == ["2", "1"]
    assert rows[2].endswith("ci  first cut")
    versions = json.loads(remote.run("history", "edge", "--json").stdout)["versions"]
    assert [v["version"] for v in versions] == [2, 1]

    listed = remote.run("list", role="read")
    assert any(line.split()[:2] == ["edge", "2"] for line in listed.stdout.splitlines())
    assert remote.run("delete", "edge").stdout == "edge: deleted\n"
    assert remote.run("get", "edge").exit_code == EXIT_NOT_FOUND


def test_an_invalid_file_is_refused_with_every_path(remote: Remote, tmp_path: Path) -> None:
    document = yaml.safe_load(GOOD)
    document["services"][0]["split"]["weight"] = 140
    document["services"][0]["stable"] = {"adresses": ["127.0.0.1:9001"]}
    file = tmp_path / "bad.json"
    file.write_text(json.dumps(document))
    result = remote.run("apply", "-f", str(file))
    assert result.exit_code == EXIT_REFUSED
    assert "services[0].split.weight: 140 is not between 0 and 100" in result.stderr
    assert "services[0].stable.adresses: unknown key" in result.stderr
    assert remote.run("get", "bad").exit_code == EXIT_NOT_FOUND


def test_a_read_token_cannot_apply_and_no_token_says_so(remote: Remote, tmp_path: Path) -> None:
    file = tmp_path / "edge.yaml"
    file.write_text(GOOD)
    refused = remote.run("apply", "-f", str(file), role="read")
    assert refused.exit_code == EXIT_UNAUTHORIZED
    assert "this needs write" in refused.stderr
    anonymous = remote.run("list", role=None)
    assert anonymous.exit_code == EXIT_UNAUTHORIZED
    assert "no token given" in anonymous.stderr
