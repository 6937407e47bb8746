"""The router's own readings of a request against the pure core's (end to end: test_routing_e2e)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stageless.proxy.router import cookie_key, path_of
from stageless.routing.headers import cookie_value

# Token names (what the configuration accepts), among them prefixes and extensions of each other.
names = st.sampled_from([b"k", b"key", b"stageless-key", b"stageless-key2", b"a-b"])
# Pieces that make plain and awkward headers alike: names, separators, spaces, quotes.
pieces = st.sampled_from(
    [b"k", b"key", b"stageless-key", b"=", b";", b"; ", b" ", b"\t", b'"', b"v", b"x=1", b""]
)


@settings(max_examples=1000)
@given(st.lists(pieces, max_size=14).map(b"".join), names)
def test_cookie_key_reads_any_header_as_cookie_value(header: bytes, name: bytes) -> None:
    assert cookie_key(header, name) == cookie_value(header, name)


def pair_of(parts: tuple[bytes, ...]) -> bytes:
    return b"".join(parts)


# One "name=value" pair with whitespace and quotes where a header may have them.
pairs = st.tuples(
    st.sampled_from([b"", b" ", b"  ", b"\t"]),
    names,
    st.sampled_from([b"", b" "]),
    st.sampled_from([b"=", b"=", b""]),
    st.sampled_from([b"", b" ", b'"', b"\t"]),
    st.sampled_from([b"", b"u1", b"a b", b"x=1", b"k"]),
    st.sampled_from([b"", b" ", b'"', b"\t"]),
).map(pair_of)


@settings(max_examples=1000)
@given(st.lists(pairs, max_size=4), st.sampled_from([b";", b"; ", b" ;"]), names)
def test_cookie_key_reads_cookie_lists_as_cookie_value(
    cookies: list[bytes], separator: bytes, name: bytes
) -> None:
    header = separator.join(cookies)
    assert cookie_key(header, name) == cookie_value(header, name)


@pytest.mark.parametrize(
    ("header", "key"),
    [
        (b"session=abc; stageless-key=u1", b"u1"),
        (b"stageless-key=u1;session=abc", b"u1"),
        (b"a=1;stageless-key=u1", b"u1"),
        (b"stageless-key=", b""),
        (b"stageless-key= u1", b"u1"),  # whitespace at either end: read by cookie_value
        (b"stageless-key=u1 ; a=1", b"u1"),
        (b"stageless-key=\tu1", b"u1"),
        (b"stageless-key=u1\t", b"u1"),
        (b'stageless-key="u1', b'"u1'),
        (b'stageless-key="u1"', b"u1"),  # quoted: read by cookie_value
        (b"x=stageless-key; stageless-key=u2", b"u2"),  # first mention inside a value
        (b"x=stageless-key=u3", None),  # inside another cookie's value, after its "="
        (b"x=u0 stageless-key=u4", None),  # inside another cookie's value, after a space
        (b"stageless-key2=no", None),
        (b"session=abc", None),
    ],
)
def test_cookie_key_examples(header: bytes, key: bytes | None) -> None:
    assert cookie_key(header, b"stageless-key") == key


@given(st.lists(st.sampled_from([b"/", b"a", b"?", b"=", b"%3F", b"x" * 100]), max_size=8))
def test_path_of_is_the_target_up_to_its_first_question_mark(pieces: list[bytes]) -> None:
    target = b"".join(pieces)  # up to 800 bytes: both the scan and the split
    assert path_of(target) == target.split(b"?", 1)[0]
