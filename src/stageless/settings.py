"""The control plane's settings: one frozen ``Settings`` object, each setting declared once.

``SETTINGS`` is the table (name, type, default, help): it drives ``stageless serve --help``,
docs/settings.md (checked by a test) and validation. Precedence, lowest first: the defaults,
``STAGELESS_*`` environment variables, command-line options. Every value is validated once, at
load; a bad one raises ``ValidationError`` naming the setting and what was expected. Secrets
(``secret_key``, a database password) are redacted in ``repr``.

Environment is read here and only here: callers pass ``os.environ`` (or a test's mapping) to
``Settings.load`` and hand the result down.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from stageless.errors import Issue, ValidationError

ENV_PREFIX = "STAGELESS_"
DEFAULT_PORT = 7411  # flagd has 8013; 7411 is Stageless's own
_LOG_LEVELS = ("debug", "info", "warning", "error")
_LOG_FORMATS = ("json", "text")


def _text(raw: str) -> str:
    return raw.strip()


def _optional_text(raw: str) -> str | None:
    return raw.strip() or None


def _integer(raw: str) -> int:
    try:
        return int(raw.strip())
    except ValueError:
        raise ValueError(f"{raw!r} is not an integer") from None


def _number(raw: str) -> float:
    try:
        return float(raw.strip())
    except ValueError:
        raise ValueError(f"{raw!r} is not a number") from None


def _boolean(raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"{raw!r} is not a boolean; expected true or false")


def _origins(raw: str) -> tuple[str, ...]:
    origins = tuple(part.strip().rstrip("/") for part in raw.split(",") if part.strip())
    for origin in origins:
        parts = urlsplit(origin)
        if origin != "*" and (parts.scheme not in {"http", "https"} or not parts.netloc):
            raise ValueError(f"{origin!r} is not an origin; expected scheme://host[:port] or *")
    return origins


def _path(raw: str) -> Path:
    if not raw.strip():
        raise ValueError("is empty; expected a directory")
    return Path(raw.strip()).expanduser()


@dataclass(frozen=True, slots=True)
class Setting:
    """One setting: its name, how to read it from text, its default and what it does."""

    name: str
    parse: Callable[[str], Any]
    default: Any
    help: str
    secret: bool = False
    metavar: str = "TEXT"

    @property
    def env(self) -> str:
        """The environment variable, e.g. ``STAGELESS_DATA_DIR``."""
        return ENV_PREFIX + self.name.upper()

    @property
    def option(self) -> str:
        """The command-line option, e.g. ``--data-dir``."""
        return "--" + self.name.replace("_", "-")


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "data_dir",
        _path,
        Path("stageless-data"),
        "Directory for the SQLite database and the stream-token key (created if missing).",
        metavar="DIR",
    ),
    Setting(
        "database",
        _optional_text,
        None,
        "Database URL: sqlite:///path or postgresql://user@host:port/db. Default: SQLite in "
        "the data directory. Several instances on one PostgreSQL database act as one service.",
        secret=True,
        metavar="URL",
    ),
    Setting("host", _text, "127.0.0.1", "Interface to listen on.", metavar="HOST"),
    Setting(
        "port", _integer, DEFAULT_PORT, "TCP port to listen on (0: any free port).", metavar="PORT"
    ),
    Setting(
        "cors_origins",
        _origins,
        (),
        "Comma-separated origins allowed to call the API from a browser (or *). Empty: no CORS.",
        metavar="ORIGINS",
    ),
    Setting(
        "max_body_bytes",
        _integer,
        1_048_576,
        "Largest request body accepted; larger ones get 413.",
        metavar="BYTES",
    ),
    Setting(
        "stream_token_ttl_s",
        _number,
        300.0,
        "Lifetime in seconds of signed stream tokens (for browsers' EventSource).",
        metavar="SECONDS",
    ),
    Setting(
        "heartbeat_s",
        _number,
        15.0,
        "Seconds between ': ping' comments on idle event streams.",
        metavar="SECONDS",
    ),
    Setting(
        "secret_key",
        _optional_text,
        None,
        "Key that signs stream tokens. Default: a random key kept in DATA_DIR/secret.key. "
        "Instances on different machines sharing one database need the same key.",
        secret=True,
        metavar="KEY",
    ),
    Setting(
        "metrics_public",
        _boolean,
        False,
        "Serve /metrics without a token (otherwise it needs a read token).",
        metavar="BOOL",
    ),
    Setting(
        "log_format",
        _text,
        "json",
        "Log format: json (one object a line) or text.",
        metavar="FORMAT",
    ),
    Setting(
        "log_level", _text, "info", "Log level: debug, info, warning or error.", metavar="LEVEL"
    ),
    Setting(
        "graceful_timeout_s",
        _number,
        10.0,
        "On SIGTERM/SIGINT, seconds to let requests in flight finish before closing them.",
        metavar="SECONDS",
    ),
    Setting(
        "webhook_secret",
        _optional_text,
        None,
        "Key that signs rollout webhooks and webhook checks (X-Stageless-Signature, "
        "HMAC-SHA256). Default: none, and webhooks go unsigned.",
        secret=True,
        metavar="KEY",
    ),
    Setting(
        "rollout_lease_s",
        _number,
        15.0,
        "Seconds an instance holds a rollout's lease without renewing it (renewed every third "
        "of it); after a crash, the rollout resumes this long after it stopped.",
        metavar="SECONDS",
    ),
)

BY_NAME: dict[str, Setting] = {setting.name: setting for setting in SETTINGS}


@dataclass(frozen=True, slots=True)
class Settings:
    """Validated settings of one control-plane instance. Build with ``Settings.load``."""

    data_dir: Path = Path("stageless-data")
    database: str | None = None
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    cors_origins: tuple[str, ...] = ()
    max_body_bytes: int = 1_048_576
    stream_token_ttl_s: float = 300.0
    heartbeat_s: float = 15.0
    secret_key: str | None = None
    metrics_public: bool = False
    log_format: str = "json"
    log_level: str = "info"
    graceful_timeout_s: float = 10.0
    webhook_secret: str | None = None
    rollout_lease_s: float = 15.0

    def __post_init__(self) -> None:
        issues = _check(self)
        if issues:
            raise ValidationError(issues, source="settings")

    @classmethod
    def load(
        cls, env: Mapping[str, str] | None = None, overrides: Mapping[str, str] | None = None
    ) -> Settings:
        """Defaults, then ``STAGELESS_*`` variables from ``env``, then ``overrides`` (CLI text).

        Raises ``ValidationError`` listing every bad value, e.g. ``port: 'x' is not an integer
        (from STAGELESS_PORT)``.
        """
        values: dict[str, Any] = {}
        issues: list[Issue] = []
        for setting in SETTINGS:
            raw, origin = None, ""
            if env is not None and setting.env in env:
                raw, origin = env[setting.env], f" (from {setting.env})"
            if overrides is not None and overrides.get(setting.name) is not None:
                raw, origin = overrides[setting.name], f" (from {setting.option})"
            if raw is None:
                continue
            try:
                values[setting.name] = setting.parse(raw)
            except ValueError as exc:
                issues.append(Issue(setting.name, f"{exc}{origin}"))
        if issues:
            raise ValidationError(issues, source="settings")
        return cls(**values)

    @property
    def database_url(self) -> str:
        """The database to open: ``database``, or the SQLite file in ``data_dir``."""
        if self.database is not None:
            return self.database
        path = (self.data_dir / "stageless.db").absolute()
        return f"sqlite:///{path}"

    def __repr__(self) -> str:
        shown = []
        for field in fields(self):
            value = getattr(self, field.name)
            if field.name in ("secret_key", "webhook_secret") and value is not None:
                value = "***"
            elif field.name == "database" and value is not None:
                value = redact_url(value)
            shown.append(f"{field.name}={value!r}")
        return f"Settings({', '.join(shown)})"


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def _check(settings: Settings) -> list[Issue]:
    issues = []
    if not 0 <= settings.port <= 65535:
        issues.append(Issue("port", f"{settings.port} is out of range; expected 0–65535"))
    if settings.max_body_bytes < 1:
        issues.append(Issue("max_body_bytes", f"{settings.max_body_bytes}; expected at least 1"))
    for name in ("stream_token_ttl_s", "heartbeat_s", "graceful_timeout_s", "rollout_lease_s"):
        value = getattr(settings, name)
        if not value > 0:
            issues.append(Issue(name, f"{value}; expected a positive number of seconds"))
    if settings.log_format not in _LOG_FORMATS:
        issues.append(
            Issue("log_format", f"{settings.log_format!r}; expected one of {list(_LOG_FORMATS)}")
        )
    if settings.log_level not in _LOG_LEVELS:
        issues.append(
            Issue("log_level", f"{settings.log_level!r}; expected one of {list(_LOG_LEVELS)}")
        )
    for name in ("secret_key", "webhook_secret"):
        value = getattr(settings, name)
        if value is not None and len(value) < 32:
            issues.append(Issue(name, "is too short; expected at least 32 characters"))
    return issues


def log_level_number(settings: Settings) -> int:
    """The ``logging`` level of ``settings.log_level``."""
    return logging.getLevelNamesMapping()[settings.log_level.upper()]


def settings_markdown() -> str:
    """The settings table of docs/settings.md, generated from ``SETTINGS``."""
    lines = [
        "| setting | option | environment | default | meaning |",
        "|---|---|---|---|---|",
    ]
    for setting in SETTINGS:
        default = setting.default
        shown = "(none)" if default in (None, ()) else f"`{default}`"
        if setting.name == "database":
            shown = "SQLite file `stageless.db` in `data_dir`"
        lines.append(
            f"| `{setting.name}` | `{setting.option}` | `{setting.env}` | {shown} | "
            f"{setting.help} |"
        )
    return "\n".join(lines) + "\n"
