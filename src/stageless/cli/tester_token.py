"""``stageless tester-token``: issue a signed routing token for a tester or a synthetic check.

The token sends its bearer's requests to a service's candidate through the proxy, whatever the
split's weight, and tags them as test traffic (docs/routing.md). It is signed with the first key
of the proxy configuration's ``signing_keys`` (or the one named by ``--key-id``), or with a
secret read from an environment variable (``--secret-env``). Only ``signing_keys`` (and, for
messages and the curl example, ``services[].name`` and ``listen``) are read from the file.
"""

from __future__ import annotations

import math
import os
import re
import shlex
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import click
import yaml

from stageless.analysis.batch import TrafficClass
from stageless.errors import Issue, ValidationError
from stageless.routing.names import ROUTE_COOKIE, ROUTE_HEADER
from stageless.routing.tokens import MAX_TTL_S, MIN_SECRET_BYTES, SigningKey, issue_token

EXIT_BAD_INPUT = 2
DEFAULT_TTL = "8h"
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3_600, "d": 86_400}


def parse_duration(text: str) -> float:
    """Seconds in ``"90"``, ``"90s"``, ``"30m"``, ``"8h"`` or ``"2d"``.

    Raises:
        ValueError: anything else.
    """
    match = _DURATION.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration; expected e.g. 90s, 30m, 8h or 2d")
    return float(match.group(1)) * _UNIT_S[match.group(2)]


def read_signing_keys(
    path: Path, environ: Mapping[str, str] | None = None
) -> tuple[list[SigningKey], dict[str, Any]]:
    """The ``signing_keys`` of a proxy configuration file, and the whole parsed document.

    Each entry is ``{id, secret}`` or ``{id, secret_env}`` (the secret read from that
    environment variable); secrets are UTF-8 and at least 32 bytes long.

    Raises:
        ValidationError: the file cannot be read or parsed, or an entry is wrong (each issue
            names its path, e.g. ``signing_keys[1].secret_env``).
    """
    environ = os.environ if environ is None else environ
    source = str(path)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError([Issue("", f"cannot read the file: {exc}")], source=source) from exc
    except yaml.YAMLError as exc:
        raise ValidationError([Issue("", f"not valid YAML: {exc}")], source=source) from exc
    if not isinstance(document, dict):
        raise ValidationError([Issue("", "expected a mapping at the top level")], source=source)
    entries = document.get("signing_keys")
    if not isinstance(entries, list) or not entries:
        raise ValidationError(
            [Issue("signing_keys", "expected a non-empty list of {id, secret | secret_env}")],
            source=source,
        )
    keys: list[SigningKey] = []
    issues: list[Issue] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        where = f"signing_keys[{index}]"
        key = _signing_key(entry, where, environ, issues)
        if key is None:
            continue
        if key.id in seen:
            issues.append(Issue(f"{where}.id", f"{key.id!r} is used by an earlier key"))
        seen.add(key.id)
        keys.append(key)
    if issues:
        raise ValidationError(issues, source=source)
    return keys, document


def _signing_key(
    entry: object, where: str, environ: Mapping[str, str], issues: list[Issue]
) -> SigningKey | None:
    if not isinstance(entry, dict):
        issues.append(Issue(where, "expected a mapping {id, secret} or {id, secret_env}"))
        return None
    unknown = sorted(str(name) for name in entry if name not in {"id", "secret", "secret_env"})
    if unknown:
        issues.append(Issue(where, f"unknown field(s) {', '.join(unknown)}"))
        return None
    key_id = entry.get("id")
    if not isinstance(key_id, str) or not key_id:
        issues.append(Issue(f"{where}.id", "expected a non-empty string"))
        return None
    if ("secret" in entry) == ("secret_env" in entry):
        issues.append(Issue(where, "expected exactly one of secret or secret_env"))
        return None
    if "secret" in entry:
        field, secret = f"{where}.secret", entry["secret"]
        if not isinstance(secret, str):
            issues.append(Issue(field, "expected a string"))
            return None
    else:
        field, name = f"{where}.secret_env", entry["secret_env"]
        if not isinstance(name, str) or not name:
            issues.append(Issue(field, "expected the name of an environment variable"))
            return None
        secret = environ.get(name)
        if secret is None:
            issues.append(Issue(field, f"the environment variable {name} is not set"))
            return None
    size = len(secret.encode("utf-8"))
    if size < MIN_SECRET_BYTES:
        issues.append(
            Issue(field, f"the secret is {size} bytes; expected at least {MIN_SECRET_BYTES}")
        )
        return None
    try:
        return SigningKey(key_id, secret.encode("utf-8"))
    except ValueError as exc:  # only the id is left to refuse
        issues.append(Issue(f"{where}.id", str(exc)))
        return None


def _fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    raise SystemExit(EXIT_BAD_INPUT)


def _choose_key(
    config: Path | None, secret_env: str | None, key_id: str | None
) -> tuple[SigningKey, dict[str, Any]]:
    if (config is None) == (secret_env is None):
        raise click.UsageError("give exactly one of --config or --secret-env")
    if secret_env is not None:
        if key_id is None:
            raise click.UsageError("--secret-env needs --key-id (the id the proxy knows it by)")
        secret = os.environ.get(secret_env)
        if secret is None:
            _fail(f"--secret-env: the environment variable {secret_env} is not set")
        try:
            return SigningKey(key_id, secret.encode("utf-8")), {}
        except ValueError as exc:
            _fail(f"--secret-env {secret_env}: {exc}")
    assert config is not None  # noqa: S101 (exactly one of the two is set)
    try:
        keys, document = read_signing_keys(config)
    except ValidationError as exc:
        _fail(str(exc))
    if key_id is None:
        return keys[0], document
    for key in keys:
        if key.id == key_id:
            return key, document
    known = ", ".join(key.id for key in keys)
    _fail(f"--key-id: no signing key {key_id!r} in {config} (its keys: {known})")


def _service_names(document: Mapping[str, Any]) -> list[str] | None:
    services = document.get("services")
    if not isinstance(services, list):
        return None
    return [s["name"] for s in services if isinstance(s, dict) and isinstance(s.get("name"), str)]


def _curl_example(token: str, document: Mapping[str, Any]) -> str:
    listen = document.get("listen")
    url = f"http://{listen}/" if isinstance(listen, str) and listen else "http://PROXY_HOST:PORT/"
    header = shlex.quote(f"{ROUTE_HEADER.decode()}: {token}")
    cookie = shlex.quote(f"{ROUTE_COOKIE.decode()}={token}")
    return "\n".join(
        [
            "# send it as a header:",
            f"curl -H {header} {url}",
            "# or as a cookie (a browser keeps it for every request to the site):",
            f"curl --cookie {cookie} {url}",
            f'# in a browser console: document.cookie = "{ROUTE_COOKIE.decode()}={token}; path=/"',
        ]
    )


@click.command("tester-token")
@click.option(
    "--config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The proxy's YAML configuration (its signing_keys).",
)
@click.option(
    "--secret-env",
    metavar="NAME",
    help="Sign with the secret in this environment variable instead (needs --key-id).",
)
@click.option("--service", required=True, help="The service whose candidate the token opens.")
@click.option(
    "--class",
    "traffic_class",
    type=click.Choice(["tester", "synthetic"]),
    default="tester",
    show_default=True,
    help="How the proxy tags and counts the traffic.",
)
@click.option("--ttl", default=DEFAULT_TTL, show_default=True, help="Lifetime: 90s, 30m, 8h, 2d.")
@click.option("--subject", default="", help="Who or what the token is for (shown in logs).")
@click.option("--key-id", metavar="ID", help="Sign with this key (default: the first one).")
@click.option("--curl-example", is_flag=True, help="Also print how to send the token.")
def tester_token(  # noqa: PLR0913 (one parameter per option)
    config: Path | None,
    secret_env: str | None,
    service: str,
    traffic_class: str,
    ttl: str,
    subject: str,
    key_id: str | None,
    curl_example: bool,
) -> None:
    """Print a signed routing token that sends requests to SERVICE's candidate.

    Requests carrying it (header x-stageless-route or cookie stageless-route) go to the
    candidate whatever the split's weight, tagged as tester (or synthetic) traffic and kept out
    of the user metrics the canary analysis reads.
    """
    try:
        ttl_s = parse_duration(ttl)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--ttl") from exc
    if not 0 < ttl_s <= MAX_TTL_S:
        raise click.BadParameter(
            f"{ttl!r} is not between 1 second and {MAX_TTL_S // 86_400} days", param_hint="--ttl"
        )
    key, document = _choose_key(config, secret_env, key_id)
    names = _service_names(document)
    if names is not None and service not in names:
        click.echo(
            f"warning: {config} has no service {service!r} (it has: {', '.join(names) or '-'});"
            " the proxy will ignore this token",
            err=True,
        )
    now = time.time()
    try:
        token = issue_token(
            key,
            service=service,
            traffic_class=TrafficClass(traffic_class),
            subject=subject,
            ttl_s=ttl_s,
            now=now,
        )
    except ValueError as exc:
        _fail(str(exc))
    expires = datetime.fromtimestamp(math.floor(now + ttl_s), UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    click.echo(token)
    click.echo(
        f"{traffic_class} token for service {service!r}, key {key.id!r}, expires {expires}",
        err=True,
    )
    if curl_example:
        click.echo(_curl_example(token, document))
