"""Lifting: a response (status, headers, body bytes) turned into flat field paths.

Paths:

- ``status``: the status code (an int).
- ``headers.<name>``: each compared header (lower-case name); several values of one header are
  sorted and joined with ``", "``.
- ``body``: a JSON body is flattened. An object puts a marker at its own path and its fields at
  ``<path>.<key>``; an array is one leaf at its path (an :data:`Array` tuple) whose elements
  are lifted under ``<path>[]`` (every element shares that path: ``body.items[].id``). A key
  that holds ``.``, ``[``, ``]`` or ``"``, or is empty, is written as a JSON string in
  brackets: ``body["a.b"]``. Numbers compare by value (``1`` equals ``1.0``);
  ``true``/``false`` are neither numbers nor strings. A text body is one ``body`` leaf (hash,
  length, a short excerpt); a binary body, an unreadable gzip/deflate body, a body in another
  content-encoding and a body over ``max_body_bytes`` are one ``body`` leaf compared by length
  and hash. An empty body has no ``body`` path.

Lifting is pure and bounded: gzip/deflate are decoded with zlib up to ``max_body_bytes`` (a
zip bomb stops there), JSON nesting deeper than :data:`MAX_DEPTH` is cut off with a marker.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import re
import zlib
from collections.abc import Hashable, Sequence
from typing import TypeAlias

from stageless.diff.rules import CompareRules, PathMatcher

MAX_DEPTH = 64
EXCERPT_CHARS = 60
_DIGEST_BYTES = 8


class Marker:
    """A leaf that stands for itself: ``true``, ``false``, ``NaN``, an object, a cut-off."""

    __slots__ = ("group", "text")

    def __init__(self, text: str, group: str) -> None:
        self.text = text
        self.group = group

    def __repr__(self) -> str:
        return self.text

    def __reduce__(self) -> str:
        return _MARKER_NAMES[self.text]


TRUE = Marker("true", "boolean")
FALSE = Marker("false", "boolean")
OBJECT = Marker("{…}", "object")
TOO_DEEP = Marker("(nested too deep)", "deep")
IGNORED = Marker("(ignored)", "ignored")
NAN = Marker("NaN", "number")
INFINITY = Marker("Infinity", "number")
NEGATIVE_INFINITY = Marker("-Infinity", "number")
_CONSTANTS = {"NaN": NAN, "Infinity": INFINITY, "-Infinity": NEGATIVE_INFINITY}
_MARKER_NAMES = {
    m.text: name
    for name, m in {
        "TRUE": TRUE,
        "FALSE": FALSE,
        "OBJECT": OBJECT,
        "TOO_DEEP": TOO_DEEP,
        "IGNORED": IGNORED,
        "NAN": NAN,
        "INFINITY": INFINITY,
        "NEGATIVE_INFINITY": NEGATIVE_INFINITY,
    }.items()
}


class Digest:
    """A body compared as a whole: ``kind`` is ``text``, ``binary`` or ``opaque`` (not analysed:
    too large, undecodable or in an unsupported content-encoding)."""

    __slots__ = ("digest", "excerpt", "kind", "length", "note")

    def __init__(self, kind: str, data: bytes, excerpt: str = "", note: str = "") -> None:
        self.kind = kind
        self.length = len(data)
        self.digest = hashlib.blake2b(data, digest_size=_DIGEST_BYTES).hexdigest()
        self.excerpt = excerpt
        self.note = note

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Digest)
            and self.digest == other.digest
            and self.length == other.length
            and self.kind == other.kind
        )

    def __hash__(self) -> int:
        return hash((self.kind, self.length, self.digest))

    def __repr__(self) -> str:
        note = f", {self.note}" if self.note else ""
        excerpt = f" {json.dumps(self.excerpt)}" if self.excerpt else ""
        return f"({self.kind}, {self.length} bytes{note}, #{self.digest}){excerpt}"


Fields: TypeAlias = "dict[str, Leaf]"


Array: TypeAlias = "tuple[Hashable, ...]"
"""A JSON array: one hashable key per element, the scalar itself or, for an object or array
element, the frozenset of its fields' items (:func:`element_fields` turns it back). With
``unordered_arrays`` the keys are kept in a canonical order (by hash), so equal multisets are
equal tuples, which compare and hash in C, nested arrays included; otherwise in the response's
order."""


def element_fields(key: Hashable, element_path: str) -> Fields:
    """The fields of one array element, from its key."""
    if type(key) is frozenset:
        return dict(key)
    return {element_path: key}  # type: ignore[dict-item]


Leaf: TypeAlias = "str | int | float | Marker | Array | Digest | None"


class Lifted:
    """A lifted response: its field paths (``fields``: path -> leaf) and the rules it was lifted
    with.

    The body is flattened lazily, on the first read of ``fields``: two responses with the same
    status, the same compared headers and the same body bytes cannot differ, so
    :meth:`same_bytes` settles the common case of a candidate that answers exactly as stable
    without parsing anything.
    """

    __slots__ = ("_body", "_content_type", "_encoding", "_fields", "head", "rules")

    def __init__(
        self, head: Fields, body: bytes, content_type: str, encoding: str, rules: CompareRules
    ) -> None:
        self.head = head
        self._body = body
        self._content_type = content_type
        self._encoding = encoding
        self._fields: Fields | None = None
        self.rules = rules

    @property
    def fields(self) -> Fields:
        """Every field path and its leaf: status, compared headers, the flattened body."""
        if self._fields is None:
            fields = dict(self.head)
            body, rules = self._body, self.rules
            ignored = rules.ignored
            if body and (ignored is None or not ignored("body")):
                lifted = _lift_body(body, self._content_type, self._encoding, rules)
                if isinstance(lifted, tuple):
                    _flatten(lifted[0], "body", fields, ignored, rules.unordered_arrays, 0)
                else:
                    fields["body"] = lifted  # type: ignore[assignment]
            self._fields = fields
        return self._fields

    @property
    def flattened(self) -> bool:
        """Whether ``fields`` has been built (the body parsed and flattened) yet."""
        return self._fields is not None

    def same_bytes(self, other: Lifted) -> bool:
        """Whether both responses are byte for byte the same where it matters (then they do not
        differ)."""
        return (
            self._body == other._body
            and self.head == other.head
            and self._content_type == other._content_type
            and self._encoding == other._encoding
            and (self.rules is other.rules or self.rules == other.rules)
        )

    def __repr__(self) -> str:
        return f"Lifted({self.fields!r})"


_UNPLAIN = re.compile(r'[.\[\]"]').search
_SEGMENTS: dict[str, str] = {}  # key -> path segment; a bounded memo (JSON keys repeat a lot)
_MAX_SEGMENTS = 4096


def _segment(key: str) -> str:
    segment = f"[{json.dumps(key)}]" if not key or _UNPLAIN(key) else f".{key}"
    if len(_SEGMENTS) < _MAX_SEGMENTS:
        _SEGMENTS[key] = segment
    return segment


def flatten(
    value: object, path: str, out: Fields, ignored: PathMatcher | None, unordered: bool
) -> None:
    """Flatten a parsed JSON value at ``path`` into ``out`` (public for tests and tools)."""
    _flatten(value, path, out, ignored, unordered, 0)


def _flatten(
    value: object,
    path: str,
    out: Fields,
    ignored: PathMatcher | None,
    unordered: bool,
    depth: int,
) -> None:
    kind = type(value)
    if kind is dict:
        if depth >= MAX_DEPTH:
            out[path] = TOO_DEEP
            return
        out[path] = OBJECT
        items: dict[str, object] = value  # type: ignore[assignment]
        segments = _SEGMENTS
        for key, child in items.items():
            child_path = path + (segments.get(key) or _segment(key))
            if ignored is not None and ignored(child_path):
                continue
            child_kind = type(child)
            if child_kind is str or child_kind is int or child_kind is float or child is None:
                out[child_path] = child  # type: ignore[assignment]
            elif child_kind is bool:
                out[child_path] = TRUE if child else FALSE
            elif child_kind is list:
                out[child_path] = _array(child, child_path, ignored, unordered, depth + 1)  # type: ignore[arg-type]
            else:
                _flatten(child, child_path, out, ignored, unordered, depth + 1)
    elif kind is list:
        out[path] = _array(value, path, ignored, unordered, depth)  # type: ignore[arg-type]
    elif kind is bool:
        out[path] = TRUE if value else FALSE
    else:
        out[path] = value  # type: ignore[assignment]


def _array(
    members: list[object], path: str, ignored: PathMatcher | None, unordered: bool, depth: int
) -> Leaf:
    if depth >= MAX_DEPTH:
        return TOO_DEEP
    element_path = path + "[]"
    if ignored is not None and ignored(element_path):
        return (IGNORED,) * len(members)
    keys: list[Hashable] = []
    for member in members:
        member_kind = type(member)
        if member_kind is str or member_kind is int or member_kind is float or member is None:
            keys.append(member)
        elif member_kind is bool:
            keys.append(TRUE if member else FALSE)
        else:
            element: Fields = {}
            _flatten(member, element_path, element, ignored, unordered, depth + 1)
            keys.append(frozenset(element.items()) if len(element) > 1 else element[element_path])
    if unordered and len(keys) > 1:
        # The canonical order, so that equal multisets become equal tuples: by hash, and when
        # unequal keys share a hash (-1 and -2 do), by hash and text.
        keys.sort(key=hash)
        hashes = len(set(map(hash, keys)))
        if hashes != len(keys) and hashes != len(set(keys)):
            keys.sort(key=_tie_order)
    return tuple(keys)


def _tie_order(key: Hashable) -> tuple[int, str]:
    return hash(key), repr(key)


def _media_type(content_type: str) -> tuple[str, str | None]:
    media, _, params = content_type.partition(";")
    charset = None
    for param in params.split(";"):
        name, _, val = param.partition("=")
        if name.strip().lower() == "charset":
            charset = val.strip().strip('"') or None
    return media.strip().lower(), charset


def _is_json(media: str) -> bool:
    return media in ("application/json", "text/json") or media.endswith("+json")


def _is_text(media: str, charset: str | None) -> bool:
    return (
        media.startswith("text/")
        or media.endswith("+xml")
        or media
        in (
            "application/xml",
            "application/javascript",
            "application/x-www-form-urlencoded",
            "application/x-ndjson",
        )
        or charset is not None
    )


def _decode_text(data: bytes, charset: str | None) -> str:
    try:
        codec = codecs.lookup(charset or "utf-8").name
    except LookupError:
        codec = "utf-8"
    return data.decode(codec, errors="replace")


def _inflate(data: bytes, encoding: str, limit: int) -> bytes | None:
    """The decoded body, or None when it is corrupt, cut short or over ``limit`` bytes.

    zlib's ``max_length`` bounds every step, so a zip bomb costs at most ``limit`` bytes.
    """
    choices = (zlib.MAX_WBITS | 32,) if "gzip" in encoding else (zlib.MAX_WBITS, -zlib.MAX_WBITS)
    for wbits in choices:
        output = b""
        remaining = data
        try:
            while True:  # one round per gzip member
                decoder = zlib.decompressobj(wbits)
                output += decoder.decompress(remaining, limit + 1 - len(output))
                if len(output) > limit or decoder.unconsumed_tail or not decoder.eof:
                    return None
                remaining = decoder.unused_data
                if not remaining:
                    return output
        except zlib.error:
            continue
    return None


def _lift_body(body: bytes, content_type: str, encoding: str, rules: CompareRules) -> object:
    """The body as a parsed JSON value (wrapped in a 1-tuple) or a :class:`Digest`."""
    limit = rules.max_body_bytes
    if len(body) > limit:
        return Digest("opaque", body, note="over max_body_bytes")
    if encoding and encoding != "identity":
        if encoding in ("gzip", "x-gzip", "deflate"):
            inflated = _inflate(body, encoding, limit)
            if inflated is None:
                return Digest("opaque", body, note=f"{encoding}: corrupt or over max_body_bytes")
            body = inflated
        else:
            return Digest("opaque", body, note=f"content-encoding {encoding}")
    media, charset = _media_type(content_type)
    sniff = media in ("", "application/octet-stream")
    if _is_json(media) or (sniff and body.lstrip()[:1] in (b"{", b"[")):
        try:
            return (json.loads(body, parse_constant=_CONSTANTS.__getitem__),)
        except (ValueError, RecursionError):
            try:
                return (
                    json.loads(body.decode("utf-8-sig"), parse_constant=_CONSTANTS.__getitem__),
                )
            except (ValueError, RecursionError):
                pass  # not JSON after all: compared as text below
    if _is_text(media, charset) or _is_json(media):
        text = _decode_text(body, charset)
        return Digest("text", body, excerpt=text[:EXCERPT_CHARS])
    if sniff:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return Digest("binary", body)
        if "\x00" not in text:
            return Digest("text", body, excerpt=text[:EXCERPT_CHARS])
    return Digest("binary", body)


def _text(value: bytes | str) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value


def lift(
    status: int,
    headers: Sequence[tuple[bytes | str, bytes | str]],
    body: bytes,
    rules: CompareRules,
) -> Lifted:
    """Lift one response into field paths (see the module docstring; the body is read lazily,
    see :class:`Lifted`)."""
    fields: Fields = {}
    ignored = rules.ignored
    if ignored is None or not ignored("status"):
        fields["status"] = status
    content_type = ""
    encoding = ""
    selected: dict[str, list[str]] = {}
    wanted = rules.read_headers
    for raw_name, raw_value in headers:
        if wanted is None:
            name = _text(raw_name).lower()
        else:
            # the other headers are never looked at: skipped before anything is decoded
            lowered = raw_name.lower()
            if lowered not in wanted:
                continue
            name = _text(lowered)
        value = _text(raw_value).strip()
        if name == "content-type":
            content_type = value
        elif name == "content-encoding":
            encoding = value.lower()
        if rules.compares_header(name):
            selected.setdefault(name, []).append(value)
    for name, values in selected.items():
        path = f"headers.{name}"
        if ignored is None or not ignored(path):
            fields[path] = values[0] if len(values) == 1 else ", ".join(sorted(values))
    return Lifted(fields, body, content_type, encoding, rules)


__all__ = [
    "EXCERPT_CHARS",
    "FALSE",
    "IGNORED",
    "INFINITY",
    "MAX_DEPTH",
    "NAN",
    "NEGATIVE_INFINITY",
    "OBJECT",
    "TOO_DEEP",
    "TRUE",
    "Array",
    "Digest",
    "Fields",
    "Leaf",
    "Lifted",
    "Marker",
    "element_fields",
    "flatten",
    "lift",
]
