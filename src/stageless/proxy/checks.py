"""Value checks behind the proxy configuration's fields.

Each check raises ``ValueError`` with the message an :class:`~stageless.errors.Issue` carries
(``140 is not between 0 and 100``); the ``Annotated`` aliases attach them to fields. Pydantic's
errors become Issues with paths such as ``services[0].split.weight`` in
:func:`stageless.validation.issues_from`. No secret value is ever put in a message.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Annotated, TypeVar

from pydantic import AfterValidator

from stageless.errors import Issue, IssuesError, show_number

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 token
_KEY_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")  # as stageless.routing.tokens takes it
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_DOTTED_NUMBERS = re.compile(r"[0-9.]+")
_VISIBLE = re.compile(r"[\x21-\x7e]+")  # visible ASCII: no spaces, no CR/LF
_HOST_HEADER = re.compile(r"[A-Za-z0-9._\-\[\]:]+")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def between(low: float, high: float) -> Callable[[float], float]:
    """A check that a number lies in [low, high]: ``140 is not between 0 and 100``."""

    def check(value: float) -> float:
        if not low <= value <= high:
            raise ValueError(
                f"{show_number(value)} is not between {show_number(low)} and {show_number(high)}"
            )
        return value

    return check


def _positive(value: float) -> float:
    if not value > 0:
        raise ValueError(f"{show_number(value)} is not positive; expected a number of seconds > 0")
    return value


def _weight(value: float) -> float:
    between(0, 100)(value)
    units = value * 1000
    if abs(units - round(units)) > 1e-6:
        raise ValueError(f"{show_number(value)} is not a multiple of 0.001")
    return value


def _name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid name; expected 1-63 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return value


def _key_id(value: str) -> str:
    if not _KEY_ID.fullmatch(value):
        raise ValueError(f"{value!r} is not a valid key id; expected 1-64 of A-Z a-z 0-9 . _ : -")
    return value


def _check_host(host: str, text: str) -> None:
    if _DOTTED_NUMBERS.fullmatch(host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise ValueError(f"{text!r}: {host!r} is not a valid IPv4 address") from None
    elif len(host) > 253 or not _HOSTNAME.fullmatch(host):
        raise ValueError(f"{text!r}: {host!r} is not a valid hostname or IP address")


def parse_address(text: str, *, any_port: bool = False) -> tuple[str, int]:
    """``"127.0.0.1:8080"`` -> ``("127.0.0.1", 8080)``; ``"[::1]:80"`` -> ``("::1", 80)``.

    Raises ``ValueError`` saying what is wrong: no port, a port outside 1-65535 (0-65535 with
    ``any_port``: port 0 lets the OS pick one, for a listening address), a bad host, an IPv6
    address without brackets.
    """
    low = 0 if any_port else 1
    if not text:
        raise ValueError("is empty; expected host:port, e.g. 127.0.0.1:8080")
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or text[end + 1 : end + 2] != ":":
            raise ValueError(f"{text!r} is not [IPv6]:port, e.g. [::1]:8080")
        host, port_text = text[1:end], text[end + 2 :]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{text!r}: {host!r} is not a valid IPv6 address") from None
    else:
        host, colon, port_text = text.rpartition(":")
        if not colon:
            raise ValueError(f"{text!r} has no port; expected host:port, e.g. 127.0.0.1:8080")
        if ":" in host:
            raise ValueError(f"{text!r}: an IPv6 address goes in brackets, e.g. [::1]:8080")
        if not host:
            raise ValueError(f"{text!r} has no host; expected host:port, e.g. 127.0.0.1:8080")
        _check_host(host, text)
    if not port_text.isascii() or not port_text.isdigit() or not low <= int(port_text) <= 65535:
        raise ValueError(
            f"{text!r} has port {port_text!r}; expected a number between {low} and 65535"
        )
    return host, int(port_text)


def _address(text: str) -> str:
    parse_address(text)
    return text


def _listen_address(text: str) -> str:
    parse_address(text, any_port=True)
    return text


def _host(text: str) -> str:
    """A ``hosts`` entry: a Host header value without its port, normalised to lower case."""
    if text.startswith("["):
        if not text.endswith("]"):
            raise ValueError(
                f"{text!r} has a port or is malformed; hosts match the Host header without "
                "its port, e.g. [::1]"
            )
        try:
            ipaddress.IPv6Address(text[1:-1])
        except ValueError:
            raise ValueError(f"{text!r}: {text[1:-1]!r} is not a valid IPv6 address") from None
        return text.lower()
    if ":" in text:
        raise ValueError(
            f"{text!r} has a port; hosts match the Host header without its port "
            "(IPv6 addresses go in brackets)"
        )
    if not text:
        raise ValueError("is empty; expected a hostname or IP address")
    _check_host(text, text)
    return text.lower()


def _token(what: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if not _TOKEN.fullmatch(value):
            raise ValueError(f"{value!r} is not a valid {what}")
        return value

    return check


def _header_name(value: str) -> str:
    return _token("HTTP header name")(value).lower()


def _method(value: str) -> str:
    if not _TOKEN.fullmatch(value):
        raise ValueError(f"{value!r} is not an HTTP method token")
    if value != value.upper():
        raise ValueError(
            f"{value!r} is not upper-case (methods are case-sensitive); did you mean "
            f"{value.upper()!r}?"
        )
    if value == "CONNECT":
        raise ValueError("CONNECT requests cannot be shadowed")
    return value


def _request_path(what: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"{value!r} does not start with '/'")
        if not _VISIBLE.fullmatch(value):
            raise ValueError(f"{value!r} contains spaces or control characters; expected {what}")
        return value

    return check


def _prefix(value: str) -> str:
    _request_path("a path prefix")(value)
    if "?" in value or "#" in value:
        raise ValueError(f"{value!r} contains '?' or '#'; a prefix matches the path only")
    return value


def _host_header(value: str) -> str:
    if not _HOST_HEADER.fullmatch(value):
        raise ValueError(f"{value!r} is not a valid Host header value; expected host or host:port")
    return value


def _env_name(value: str) -> str:
    if not _ENV_NAME.fullmatch(value):
        raise ValueError(f"{value!r} is not an environment variable name")
    return value


def _non_empty(value: str) -> str:
    if not value:
        raise ValueError("is empty")
    return value


Percent = Annotated[float, AfterValidator(between(0, 100))]
Weight = Annotated[float, AfterValidator(_weight)]
Seconds = Annotated[float, AfterValidator(_positive)]
Name = Annotated[str, AfterValidator(_name)]
KeyId = Annotated[str, AfterValidator(_key_id)]
Address = Annotated[str, AfterValidator(_address)]
ListenAddress = Annotated[str, AfterValidator(_listen_address)]
Host = Annotated[str, AfterValidator(_host)]
HostHeader = Annotated[str, AfterValidator(_host_header)]
HeaderName = Annotated[str, AfterValidator(_header_name)]
CookieName = Annotated[str, AfterValidator(_token("cookie name"))]
Method = Annotated[str, AfterValidator(_method)]
RequestPath = Annotated[str, AfterValidator(_request_path("a request path"))]
Prefix = Annotated[str, AfterValidator(_prefix)]
EnvName = Annotated[str, AfterValidator(_env_name)]
NonEmpty = Annotated[str, AfterValidator(_non_empty)]

_T = TypeVar("_T")


def raise_issues(issues: list[Issue]) -> None:
    """Raise :class:`IssuesError` if there is any issue."""
    if issues:
        raise IssuesError(issues)


def duplicates(values: tuple[_T, ...], path: str, what: str = "") -> list[Issue]:
    """An issue for each repeat of an earlier value: ``hosts[2]: 'a' is used twice``."""
    seen: set[_T] = set()
    issues = []
    for index, value in enumerate(values):
        if value in seen:
            issues.append(Issue(f"{path}[{index}]{what}", f"{value!r} is used twice"))
        seen.add(value)
    return issues
