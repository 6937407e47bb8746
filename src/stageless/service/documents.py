"""Flag documents at the service boundary: decode, validate, store as canonical JSON.

The store keeps text as given; the service hands it JSON only (YAML input is converted), so
every reader (the REST API, streams, SDKs) gets one format back and ETags do not depend on
formatting quirks of a particular upload.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from stageless.errors import Issue, ValidationError
from stageless.flags import FlagSet, parse_flag_set
from stageless.flags.decode import DocumentFormat, decode_document


@dataclass(frozen=True, slots=True)
class Checked:
    """A validated document: the parsed object, its canonical JSON text and the compiled set."""

    document: dict[str, Any]
    text: str
    flags: FlagSet

    @property
    def warnings(self) -> tuple[Issue, ...]:
        return self.flags.warnings


def check_document(
    source: str | bytes,
    *,
    format: DocumentFormat | None = None,  # noqa: A002  # as flags names it
) -> Checked:
    """Decode and validate ``source``; raise ``ValidationError`` listing every bad path."""
    document = decode_document(source, format)
    flags = parse_flag_set(document)  # a non-mapping document is reported here, with its path
    try:
        text = canonical_json(document)
    except (TypeError, ValueError) as exc:  # a YAML date, .nan: valid YAML but not JSON
        raise ValidationError([Issue("", f"not representable as JSON: {exc}")]) from exc
    return Checked(document, text, flags)


def canonical_json(document: Any) -> str:
    """Compact JSON, keys in document order, non-ASCII kept (the form the store keeps)."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def load_stored(text: str) -> dict[str, Any]:
    """The object of a stored document."""
    loaded: dict[str, Any] = json.loads(text)
    return loaded
