"""``stageless tester-token``: the printed token verifies with the routing API."""

from __future__ import annotations

import shlex
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from stageless.analysis.batch import TrafficClass
from stageless.cli import main
from stageless.cli.tester_token import parse_duration, read_signing_keys
from stageless.errors import ValidationError
from stageless.routing import TokenProblem, verification_keys, verify_token, verify_token_detail

SECRET_1 = "first secret, long enough for HMAC-SHA256 ....."  # noqa: S105 (a test key)
SECRET_2 = "second secret, also at least thirty-two bytes ..."  # noqa: S105 (a test key)
CONFIG = f"""\
listen: 127.0.0.1:8080
signing_keys:
  - {{id: k1, secret: "{SECRET_1}"}}
  - {{id: k2, secret_env: STAGELESS_TEST_KEY_2}}
services:
  - name: checkout
  - name: search
"""
KEYS = {"k1": SECRET_1.encode(), "k2": SECRET_2.encode()}


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["tester-token", *args], env=env)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def config(tmp_path: Path) -> str:
    path = tmp_path / "proxy.yaml"
    path.write_text(CONFIG)
    return str(path)


ENV = {"STAGELESS_TEST_KEY_2": SECRET_2}


def test_the_printed_token_verifies_with_the_routing_api(config: str) -> None:
    before = time.time()
    code, out, err = run("--config", config, "--service", "checkout", "--subject", "alice", env=ENV)
    assert code == 0, err
    token = out.strip()
    assert "\n" not in token
    claims = verify_token(token, KEYS, service="checkout", now=time.time())
    assert claims is not None
    assert (claims.traffic_class, claims.subject, claims.key_id) == (
        TrafficClass.TESTER,
        "alice",
        "k1",
    )
    assert before + 8 * 3600 - 1 <= claims.expires_at <= time.time() + 8 * 3600
    assert "tester token for service 'checkout', key 'k1', expires" in err
    wrong = verify_token_detail(token, KEYS, service="search", now=time.time())
    assert wrong is TokenProblem.WRONG_SERVICE


def test_class_ttl_and_key_can_be_chosen(config: str) -> None:
    args = ["--config", config, "--service", "search", "--class", "synthetic", "--ttl", "30m"]
    code, out, err = run(*args, "--key-id", "k2", env=ENV)
    assert code == 0, err
    token = out.strip()
    claims = verify_token(token, KEYS, service="search", now=time.time())
    assert claims is not None
    assert (claims.traffic_class, claims.key_id) == (TrafficClass.SYNTHETIC, "k2")
    assert claims.expires_at - claims.issued_at in (1800, 1801)
    assert verify_token(token, {"k1": SECRET_1.encode()}, service="search", now=time.time()) is None
    assert verify_token(token, KEYS, service="search", now=claims.expires_at) is None


def test_a_secret_from_the_environment_instead_of_a_config() -> None:
    env = {"ROUTE_SECRET": SECRET_1}
    code, out, err = run(
        "--secret-env", "ROUTE_SECRET", "--key-id", "k1", "--service", "x", env=env
    )
    assert code == 0, err
    assert verify_token(out.strip(), KEYS, service="x", now=time.time()) is not None


def test_the_curl_example_shows_the_header_and_the_cookie(config: str) -> None:
    code, out, err = run("--config", config, "--service", "checkout", "--curl-example", env=ENV)
    assert code == 0, err
    token, *example = out.splitlines()
    header = next(line for line in example if line.startswith("curl -H"))
    cookie = next(line for line in example if line.startswith("curl --cookie"))
    assert shlex.split(header) == [
        "curl",
        "-H",
        f"x-stageless-route: {token}",
        "http://127.0.0.1:8080/",
    ]
    assert shlex.split(cookie)[2] == f"stageless-route={token}"
    assert verify_token(token, KEYS, service="checkout", now=time.time()) is not None


def test_a_service_missing_from_the_config_gets_a_warning(config: str) -> None:
    code, out, err = run("--config", config, "--service", "chekout", env=ENV)
    assert code == 0
    assert "warning:" in err
    assert "no service 'chekout' (it has: checkout, search)" in err
    assert out.strip().startswith("st1.")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--service", "checkout"], "exactly one of --config or --secret-env"),
        (["--secret-env", "X", "--service", "checkout"], "--secret-env needs --key-id"),
        (["--secret-env", "NOPE", "--key-id", "k1", "--service", "c"], "NOPE is not set"),
        (["--secret-env", "SHORT", "--key-id", "k1", "--service", "c"], "at least 32"),
        (["--secret-env", "SHORT", "--key-id", "bad id", "--service", "c"], "signing key id"),
        (["--service", "c", "--ttl", "8 hours", "--secret-env", "X"], "not a duration"),
        (["--service", "c", "--ttl", "0s", "--secret-env", "X"], "--ttl"),
        (["--service", "c", "--ttl", "91d", "--secret-env", "X"], "--ttl"),
        (["--service", "c", "--class", "user", "--secret-env", "X"], "'user' is not one of"),
    ],
)
def test_bad_usage_is_refused_clearly(args: list[str], message: str) -> None:
    code, out, err = run(*args, env={"SHORT": "too short"})
    assert code == 2
    assert message in err
    assert out == ""


def test_an_unknown_key_id_lists_the_known_ones(config: str) -> None:
    code, _, err = run("--config", config, "--service", "checkout", "--key-id", "k9", env=ENV)
    assert code == 2
    assert "no signing key 'k9'" in err
    assert "(its keys: k1, k2)" in err


@pytest.mark.parametrize(
    ("text", "issues"),
    [
        ("- a list", ["expected a mapping at the top level"]),
        ("listen: x\n", ["signing_keys: expected a non-empty list"]),
        ("signing_keys: []\n", ["signing_keys: expected a non-empty list"]),
        ("signing_keys: [k1]\n", ["signing_keys[0]: expected a mapping"]),
        ("signing_keys: [{id: k1}]\n", ["signing_keys[0]: expected exactly one of secret or"]),
        (
            f'signing_keys: [{{id: k1, secret: "{SECRET_1}", secret_env: A}}]\n',
            ["signing_keys[0]: expected exactly one of secret or secret_env"],
        ),
        ('signing_keys: [{secret: "x"}]\n', ["signing_keys[0].id: expected a non-empty string"]),
        ("signing_keys: [{id: k1, secret: 12}]\n", ["signing_keys[0].secret: expected a string"]),
        (
            'signing_keys: [{id: k1, secret: "short"}]\n',
            ["signing_keys[0].secret: the secret is 5 bytes; expected at least 32"],
        ),
        (
            "signing_keys: [{id: k1, secret_env: MISSING_VAR}]\n",
            ["signing_keys[0].secret_env: the environment variable MISSING_VAR is not set"],
        ),
        (
            f'signing_keys: [{{id: "a b", secret: "{SECRET_1}"}}]\n',
            ["signing_keys[0].id: signing key id 'a b'"],
        ),
        (
            f'signing_keys: [{{id: k1, secret: "{SECRET_1}", sekret: x}}]\n',
            ["signing_keys[0]: unknown field(s) sekret"],
        ),
        (
            f'signing_keys: [{{id: k1, secret: "{SECRET_1}"}}, {{id: k1, secret: "{SECRET_2}"}}]\n',
            ["signing_keys[1].id: 'k1' is used by an earlier key"],
        ),
        (
            'signing_keys: [{id: k1, secret: "short"}, {id: "", secret: "x"}]\n',
            ["signing_keys[0].secret:", "signing_keys[1].id:"],
        ),
        ("signing_keys: [{id: k1, secret_env: 12}]\n", ["secret_env: expected the name of an"]),
        ("signing_keys: [\n", ["not valid YAML"]),
    ],
)
def test_signing_keys_errors_name_their_path(tmp_path: Path, text: str, issues: list[str]) -> None:
    path = tmp_path / "proxy.yaml"
    path.write_text(text)
    with pytest.raises(ValidationError) as caught:
        read_signing_keys(path, environ={})
    found = [str(issue) for issue in caught.value.issues]
    assert len(found) == len(issues), found
    for line, expected in zip(found, issues, strict=True):
        assert expected in line
    assert str(path) in str(caught.value)
    assert SECRET_1 not in str(caught.value)


def test_an_unreadable_config_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "proxy.yaml"
    path.write_bytes(b"signing_keys: \xff\xfe\n")
    with pytest.raises(ValidationError, match="cannot read the file"):
        read_signing_keys(path, environ={})


def test_a_token_that_would_be_too_long_is_refused(config: str) -> None:
    code, out, err = run("--config", config, "--service", "s" * 800, env=ENV)
    assert code == 2
    assert "longer than 1024 bytes" in err
    assert out == ""


def test_a_config_error_is_printed_with_the_file_name(tmp_path: Path) -> None:
    path = tmp_path / "proxy.yaml"
    path.write_text('signing_keys: [{id: k1, secret: "short"}]\n')
    code, out, err = run("--config", str(path), "--service", "checkout")
    assert code == 2
    assert out == ""
    assert f"error: {path}: 1 problem" in err
    assert "signing_keys[0].secret: the secret is 5 bytes; expected at least 32" in err


def test_the_keys_read_from_a_config_are_the_proxy_keys(config: str) -> None:
    keys, _ = read_signing_keys(Path(config), environ=ENV)
    assert verification_keys(keys) == KEYS


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("30m", 1800), ("8h", 28_800), ("2d", 172_800), ("1.5h", 5_400)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "8 hours", "-1h", "8w", "1e3"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)
