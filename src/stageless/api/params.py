"""Reading request parameters and headers the same way in every route."""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request

from stageless.errors import Issue, ValidationError

_ETAG_QUOTES = '"'


def int_param(value: str | None, field: str, *, default: int, low: int, high: int) -> int:
    """``value`` as an integer in [low, high] (``default`` if absent); else 422 naming ``field``."""
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        number = None
    if number is None or not low <= number <= high:
        raise ValidationError(
            [Issue(field, f"{value!r}; expected an integer from {low} to {high}")]
        )
    return number


def version_param(request: Request) -> int:
    """The ``{version}`` path parameter (a positive integer)."""
    raw = request.path_params["version"]
    return int_param(raw, "version", default=0, low=1, high=2**62)


def quote_etag(etag: str) -> str:
    """The ``ETag`` header value of a stored ETag (a strong validator)."""
    return f'"{etag}"'


def if_match(request: Request) -> str | None:
    """The ETag in ``If-Match`` (unquoted), ``"*"``, or ``None`` when the header is absent."""
    return _single_etag(request.headers.get("if-match"))


def if_none_match(request: Request) -> list[str]:
    """The ETags in ``If-None-Match`` (unquoted; ``["*"]`` for any)."""
    raw = request.headers.get("if-none-match")
    if raw is None:
        return []
    return [_unquote(part) for part in raw.split(",") if part.strip()]


def _single_etag(raw: str | None) -> str | None:
    if raw is None:
        return None
    values = [_unquote(part) for part in raw.split(",") if part.strip()]
    if len(values) != 1:
        raise ValidationError([Issue("If-Match", f"{raw!r}; expected one ETag or *")])
    return values[0]


def _unquote(value: str) -> str:
    value = value.strip()
    value = value.removeprefix("W/")
    return value.strip(_ETAG_QUOTES) if value != "*" else value


def timestamp(seconds: float) -> str:
    """RFC 3339 UTC time of Unix ``seconds`` (as the API shows times)."""
    return (
        datetime.fromtimestamp(seconds, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )
