"""Lifting responses into field paths: status, headers, JSON, text, binary, gzip, limits."""

from __future__ import annotations

import gzip
import json
import pickle
import tracemalloc
import zlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stageless.diff import CompareRules, Digest, lift
from stageless.diff.lift import (
    FALSE,
    MAX_DEPTH,
    NAN,
    OBJECT,
    TOO_DEEP,
    TRUE,
    element_fields,
)
from tests.diff.factories import JSON_HEADERS, documents, json_response

RULES = CompareRules()


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"a": 1}, {"body": OBJECT, "body.a": 1}),
        ({"user": {"name": "Ann"}}, {"body": OBJECT, "body.user": OBJECT, "body.user.name": "Ann"}),
        (
            {"t": True, "f": False, "n": None},
            {"body": OBJECT, "body.t": TRUE, "body.f": FALSE, "body.n": None},
        ),
        (
            {"a.b": 1, "": 2, 'q"': 3},
            {"body": OBJECT, 'body["a.b"]': 1, 'body[""]': 2, 'body["q\\""]': 3},
        ),
        ({"x[]": {"y": 1}}, {"body": OBJECT, 'body["x[]"]': OBJECT, 'body["x[]"].y': 1}),
        ([1, "a"], {"body": (1, "a")}),
        ("just a string", {"body": "just a string"}),
        (2.5, {"body": 2.5}),
    ],
)
def test_json_bodies_flatten_to_dotted_paths(document: Any, expected: dict[str, Any]) -> None:
    fields = json_response(document, CompareRules(unordered_arrays=False)).fields
    assert {k: v for k, v in fields.items() if k.startswith("body")} == expected


def test_array_elements_share_one_path_and_keep_their_fields() -> None:
    document = {"items": [{"id": 1, "tags": ["x"]}, {"id": 2}, 3]}
    fields = json_response(document, CompareRules(unordered_arrays=False)).fields
    items = fields["body.items"]
    assert isinstance(items, tuple)
    assert len(items) == 3
    first = element_fields(items[0], "body.items[]")
    assert first["body.items[].id"] == 1
    assert first["body.items[]"] is OBJECT
    assert first["body.items[].tags"] == ("x",)
    assert element_fields(items[2], "body.items[]") == {"body.items[]": 3}
    assert not any(path.startswith("body.items[]") for path in fields)


def test_status_and_selected_headers_multi_values_sorted() -> None:
    rules = CompareRules(headers=("Content-Type", "Vary", "X-Count"))
    headers = [
        (b"Content-Type", b"text/plain"),
        (b"vary", b"origin"),
        (b"VARY", b"accept"),
        (b"x-other", b"1"),
        (b"x-count", b" 7 "),
    ]
    fields = lift(404, headers, b"", rules).fields
    assert fields == {
        "status": 404,
        "headers.content-type": "text/plain",
        "headers.vary": "accept, origin",
        "headers.x-count": "7",
    }


def test_str_headers_are_accepted_too() -> None:
    fields = lift(200, [("Content-Type", "text/plain")], b"", RULES).fields
    assert fields["headers.content-type"] == "text/plain"


def test_star_selects_every_header_but_the_volatile_and_ignored_ones() -> None:
    rules = CompareRules(headers=("*",), ignore_headers=("X-Request-Id",))
    headers = [
        (b"date", b"Tue, 01 Jan 2030 00:00:00 GMT"),
        (b"connection", b"keep-alive"),
        (b"transfer-encoding", b"chunked"),
        (b"x-request-id", b"abc"),
        (b"etag", b'"v1"'),
    ]
    assert lift(200, headers, b"", rules).fields == {"status": 200, "headers.etag": '"v1"'}


def test_a_volatile_header_named_explicitly_is_compared() -> None:
    rules = CompareRules(headers=("date",))
    assert lift(200, [(b"date", b"d")], b"", rules).fields["headers.date"] == "d"


def test_ignore_fields_drop_paths_and_everything_under_them() -> None:
    rules = CompareRules(ignore_fields=("body.meta", "body.items[].id", "body.*.secret", "status"))
    document = {
        "meta": {"at": 1},
        "items": [{"id": 1, "name": "a"}],
        "user": {"secret": "s", "name": "n"},
    }
    fields = json_response(document, rules).fields
    assert "status" not in fields
    assert not any(p.startswith("body.meta") for p in fields)
    assert "body.user.secret" not in fields
    assert fields["body.user.name"] == "n"
    items = fields["body.items"]
    assert isinstance(items, tuple)
    (element,) = items
    assert element_fields(element, "body.items[]") == {
        "body.items[]": OBJECT,
        "body.items[].name": "a",
    }


def test_double_star_crosses_segments() -> None:
    rules = CompareRules(ignore_fields=("body.**.at",))
    fields = json_response({"a": {"b": {"at": 1, "x": 2}}}, rules).fields
    assert "body.a.b.at" not in fields
    assert fields["body.a.b.x"] == 2


def test_unordered_arrays_are_kept_in_one_canonical_order() -> None:
    one = json_response({"xs": [3, "a", {"k": [1, 2]}, None]}).fields["body.xs"]
    two = json_response({"xs": [{"k": [2, 1]}, None, "a", 3]}).fields["body.xs"]
    assert one == two
    assert hash(one) == hash(two)
    ordered = CompareRules(unordered_arrays=False)
    assert json_response([2, 1], ordered).fields["body"] == (2, 1)


def test_ignoring_array_elements_keeps_the_count() -> None:
    rules = CompareRules(ignore_fields=("body.items[]",))
    a = json_response({"items": [1, 2]}, rules).fields["body.items"]
    b = json_response({"items": [3, 4]}, rules).fields["body.items"]
    c = json_response({"items": [3]}, rules).fields["body.items"]
    assert a == b
    assert a != c


def test_ignoring_the_body_or_headers_through_ignore_fields() -> None:
    rules = CompareRules(ignore_fields=("body", "headers.*"))
    fields = lift(200, JSON_HEADERS, b'{"a": 1}', rules).fields
    assert fields == {"status": 200}


def test_json_is_sniffed_without_a_content_type() -> None:
    assert lift(200, [], b' {"a": [1]}', RULES).fields["body.a"] == (1,)
    octet = [(b"content-type", b"application/octet-stream")]
    assert lift(200, octet, b"[true]", RULES).fields["body"] == (TRUE,)


def test_vendor_json_types_and_a_bom_are_read() -> None:
    headers = [(b"content-type", b"application/problem+json; charset=utf-8")]
    body = "\ufeff" + json.dumps({"title": "x"})
    assert lift(400, headers, body.encode("utf-8"), RULES).fields["body.title"] == "x"


def test_broken_json_is_compared_as_text() -> None:
    body = lift(200, JSON_HEADERS, b'{"a": ', RULES).fields["body"]
    assert isinstance(body, Digest)
    assert body.kind == "text"
    assert body.excerpt == '{"a": '


def test_nan_and_infinity_are_markers_that_equal_themselves() -> None:
    fields = lift(200, JSON_HEADERS, b'{"a": NaN, "b": Infinity}', RULES).fields
    assert fields["body.a"] is NAN
    assert lift(200, JSON_HEADERS, b'{"a": NaN, "b": Infinity}', RULES).fields == fields


def test_text_bodies_are_one_leaf_with_hash_length_and_excerpt() -> None:
    headers = [(b"content-type", b"text/html; charset=iso-8859-1")]
    body = lift(200, headers, "<p>café</p>".encode("latin-1") * 20, RULES).fields["body"]
    assert isinstance(body, Digest)
    assert body.kind == "text"
    assert body.length == 220
    assert body.excerpt.startswith("<p>café</p>")
    assert len(body.excerpt) == 60
    same = lift(200, headers, "<p>café</p>".encode("latin-1") * 20, RULES).fields["body"]
    other = lift(200, headers, "<p>cafe</p>".encode("latin-1") * 20, RULES).fields["body"]
    assert body == same
    assert body != other


def test_an_unknown_charset_falls_back_to_utf8() -> None:
    headers = [(b"content-type", b"text/plain; charset=klingon")]
    body = lift(200, headers, b"hello", RULES).fields["body"]
    assert isinstance(body, Digest)
    assert body.excerpt == "hello"


def test_binary_bodies_compare_by_length_and_hash() -> None:
    png = [(b"content-type", b"image/png")]
    body = lift(200, png, b"\x89PNG\r\n\x00\x01", RULES).fields["body"]
    assert isinstance(body, Digest)
    assert body.kind == "binary"
    assert body.length == 8
    sniffed = lift(200, [], b"\xff\xfe\x00", RULES).fields["body"]
    assert isinstance(sniffed, Digest)
    assert sniffed.kind == "binary"
    nul = lift(200, [], b"a\x00b", RULES).fields["body"]
    assert isinstance(nul, Digest)
    assert nul.kind == "binary"
    assert lift(200, [], b"plain words", RULES).fields["body"] == Digest("text", b"plain words")


def test_an_empty_body_has_no_body_path() -> None:
    assert lift(204, JSON_HEADERS, b"", RULES).fields == {
        "status": 204,
        "headers.content-type": "application/json",
    }


@pytest.mark.parametrize("encoding", ["gzip", "x-gzip", "deflate", "raw-deflate"])
def test_compressed_bodies_are_decoded(encoding: str) -> None:
    raw = json.dumps({"a": [1, 2, 3]}).encode()
    if encoding == "raw-deflate":
        packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        body = packer.compress(raw) + packer.flush()
        encoding = "deflate"
    elif encoding == "deflate":
        body = zlib.compress(raw)
    else:
        body = gzip.compress(raw, mtime=12345)
    headers = [*JSON_HEADERS, (b"content-encoding", encoding.encode())]
    assert lift(200, headers, body, RULES).fields["body.a"] == (1, 2, 3)


def test_two_gzip_members_are_both_read() -> None:
    body = gzip.compress(b'{"a": ') + gzip.compress(b"1}")
    headers = [*JSON_HEADERS, (b"content-encoding", b"gzip")]
    assert lift(200, headers, body, RULES).fields["body.a"] == 1


def test_gzip_with_another_mtime_lifts_the_same() -> None:
    headers = [*JSON_HEADERS, (b"content-encoding", b"gzip")]
    a = lift(200, headers, gzip.compress(b'{"a": 1}', mtime=1), RULES)
    b = lift(200, headers, gzip.compress(b'{"a": 1}', mtime=2), RULES)
    assert a.fields == b.fields


@pytest.mark.parametrize(
    ("encoding", "body", "note"),
    [
        (b"gzip", b"not gzip at all", "gzip: corrupt or over max_body_bytes"),
        (b"gzip", gzip.compress(b'{"a": 1}')[:-12], "gzip: corrupt or over max_body_bytes"),
        (b"br", b"\x1b\x03\x00", "content-encoding br"),
    ],
)
def test_undecodable_bodies_are_opaque(encoding: bytes, body: bytes, note: str) -> None:
    headers = [*JSON_HEADERS, (b"content-encoding", encoding)]
    lifted = lift(200, headers, body, RULES).fields["body"]
    assert isinstance(lifted, Digest)
    assert lifted.kind == "opaque"
    assert lifted.note == note
    assert lifted.length == len(body)


def test_a_body_over_the_limit_is_opaque() -> None:
    rules = CompareRules(max_body_bytes=10)
    lifted = lift(200, JSON_HEADERS, b'{"a": "0123456789"}', rules).fields["body"]
    assert isinstance(lifted, Digest)
    assert lifted.note == "over max_body_bytes"


def test_a_zip_bomb_stops_at_the_limit_without_blowing_memory() -> None:
    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    chunk = b"\x00" * 1_048_576
    bomb = b"".join(packer.compress(chunk) for _ in range(64)) + packer.flush()  # 64 MiB inside
    assert len(bomb) < 100_000
    rules = CompareRules(max_body_bytes=1_048_576)
    headers = [*JSON_HEADERS, (b"content-encoding", b"gzip")]
    tracemalloc.start()
    try:
        lifted = lift(200, headers, bomb, rules).fields["body"]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(lifted, Digest)
    assert lifted.kind == "opaque"
    assert peak < 4 * 1_048_576, peak


def test_a_body_exactly_at_the_limit_is_decoded() -> None:
    raw = b'{"a": "' + b"x" * 100 + b'"}'
    rules = CompareRules(max_body_bytes=len(raw))
    headers = [*JSON_HEADERS, (b"content-encoding", b"gzip")]
    assert lift(200, headers, gzip.compress(raw), rules).fields["body.a"] == "x" * 100
    smaller = CompareRules(max_body_bytes=len(raw) - 1)
    assert isinstance(lift(200, headers, gzip.compress(raw), smaller).fields["body"], Digest)


def test_nesting_deeper_than_the_limit_is_cut_off() -> None:
    document: Any = 1
    for _ in range(MAX_DEPTH + 5):
        document = {"a": document}
    fields = json_response(document).fields
    deepest = max(fields, key=len)
    assert fields[deepest] is TOO_DEEP
    assert deepest.count(".a") == MAX_DEPTH
    arrays: Any = 1
    for _ in range(MAX_DEPTH + 5):
        arrays = [arrays]
    assert json_response(arrays).fields["body"] is not TOO_DEEP


def test_nesting_beyond_the_json_parser_is_text() -> None:
    body = b"[" * 100_000 + b"]" * 100_000
    lifted = lift(200, JSON_HEADERS, body, CompareRules(max_body_bytes=300_000)).fields["body"]
    assert isinstance(lifted, Digest)
    assert lifted.kind == "text"


@given(documents)
def test_lifting_is_deterministic(document: Any) -> None:
    assert json_response(document).fields == json_response(document).fields


def test_markers_survive_pickling_as_themselves() -> None:
    for marker in (TRUE, FALSE, OBJECT, TOO_DEEP, NAN):
        assert pickle.loads(pickle.dumps(marker)) is marker  # noqa: S301 - our own data


# -- headers a lift skips ------------------------------------------------------------------------

header_names = st.sampled_from(
    [
        b"Content-Type",
        b"content-encoding",
        b"X-Trace",
        b"Date",
        b"x-\xc9t\xc9",
        b"ETag",
        "X-Trace",
        "Content-Type",
        "\u212aey",
        b"SERVER",
    ]
)
rule_sets = st.sampled_from(
    [
        CompareRules(),
        CompareRules(headers=("content-type", "x-trace")),
        CompareRules(headers=("etag",), ignore_headers=("content-type",)),
        CompareRules(headers=("x-\xe9t\xe9", "kEy")),
    ]
)


@given(
    st.lists(st.tuples(header_names, st.sampled_from([b"a", b" b ", "c", b"gzip"])), max_size=8),
    rule_sets,
)
def test_skipping_unread_headers_changes_nothing(
    headers: list[tuple[bytes | str, bytes | str]], rules: CompareRules
) -> None:
    reads_all = CompareRules(rules.headers, rules.ignore_fields, rules.ignore_headers)
    object.__setattr__(reads_all, "read_headers", None)
    skipping = lift(200, headers, b"{}", rules)
    reading = lift(200, headers, b"{}", reads_all)
    assert skipping.fields == reading.fields
    assert (skipping._content_type, skipping._encoding) == (
        reading._content_type,
        reading._encoding,
    )


def test_rules_read_every_header_for_a_star_or_a_name_beyond_ascii() -> None:
    assert CompareRules(headers=("*",)).read_headers is None
    assert CompareRules(headers=("x-\xe9t\xe9",)).read_headers is None
    expected: frozenset[str | bytes] | None = frozenset(
        {
            "content-type",
            "content-encoding",
            b"content-type",
            b"content-encoding",
        }
    )
    assert CompareRules().read_headers == expected
