"""Settings: one table drives the dataclass, the CLI, the docs and validation."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from click.testing import CliRunner

from stageless.cli import main
from stageless.errors import ValidationError
from stageless.settings import SETTINGS, Settings, redact_url, settings_markdown

DOCS = Path(__file__).resolve().parents[1] / "docs" / "settings.md"


def test_every_field_is_declared_once_with_the_same_default() -> None:
    fields = {field.name: field.default for field in dataclasses.fields(Settings)}
    assert [setting.name for setting in SETTINGS] == list(fields)
    for setting in SETTINGS:
        assert fields[setting.name] == setting.default, setting.name


def test_defaults_are_zero_setup() -> None:
    settings = Settings.load({})
    assert settings.port == 7411
    assert settings.host == "127.0.0.1"
    assert settings.database_url == f"sqlite:///{Path('stageless-data').absolute()}/stageless.db"


def test_environment_overrides_defaults_and_options_override_environment() -> None:
    env = {"STAGELESS_PORT": "8000", "STAGELESS_HOST": "::1", "STAGELESS_METRICS_PUBLIC": "yes"}
    settings = Settings.load(env, {"port": "9000"})
    assert (settings.port, settings.host, settings.metrics_public) == (9000, "::1", True)


def test_cors_origins_are_parsed_from_a_comma_separated_list() -> None:
    settings = Settings.load(
        {"STAGELESS_CORS_ORIGINS": "https://a.example, http://b.example:8080/"}
    )
    assert settings.cors_origins == ("https://a.example", "http://b.example:8080")


def test_every_bad_value_is_reported_with_its_source() -> None:
    env = {
        "STAGELESS_PORT": "x",
        "STAGELESS_CORS_ORIGINS": "ftp://x",
        "STAGELESS_HEARTBEAT_S": "-1",
    }
    with pytest.raises(ValidationError) as caught:
        Settings.load(env, {"max_body_bytes": "many"})
    messages = [str(issue) for issue in caught.value.issues]
    assert "port: 'x' is not an integer (from STAGELESS_PORT)" in messages
    assert any(m.startswith("cors_origins: 'ftp://x' is not an origin") for m in messages)
    assert "max_body_bytes: 'many' is not an integer (from --max-body-bytes)" in messages


def test_range_checks_name_the_setting() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings.load({"STAGELESS_HEARTBEAT_S": "0", "STAGELESS_LOG_FORMAT": "xml"})
    paths = {issue.path for issue in caught.value.issues}
    assert paths == {"heartbeat_s", "log_format"}


def test_secrets_are_redacted_in_repr() -> None:
    settings = Settings(database="postgresql://app:hunter2-secret@db:5432/x", secret_key="k" * 40)
    shown = repr(settings)
    assert "hunter2-secret" not in shown
    assert "k" * 40 not in shown
    assert "postgresql://app:***@db:5432/x" in shown
    assert redact_url("sqlite:///x.db") == "sqlite:///x.db"


def test_docs_settings_table_is_current() -> None:
    assert settings_markdown() in DOCS.read_text(), "regenerate docs/settings.md's table"


def test_serve_help_lists_every_setting_with_its_variable() -> None:
    result = CliRunner().invoke(main, ["serve", "--help"], terminal_width=200)
    assert result.exit_code == 0
    text = "".join(result.output.split())  # help is wrapped: compare without whitespace
    for setting in SETTINGS:
        assert setting.option in text
        assert f"[env:{setting.env}]" in text


def test_serve_refuses_bad_settings_before_starting() -> None:
    result = CliRunner().invoke(
        main, ["serve", "--port", "99999"], env={"STAGELESS_LOG_LEVEL": "loud"}
    )
    assert result.exit_code == 2
    assert "port: 99999 is out of range" in result.output
    assert "log_level: 'loud'" in result.output
