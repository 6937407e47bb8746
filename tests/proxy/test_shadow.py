"""shadow.same_lift: the check that spares lifting answers that cannot differ; the endpoint
names of the diff report (``endpoint_of``, remembered by ``EndpointNames``)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stageless.diff import CompareRules, compare, lift
from stageless.proxy.shadow import (
    ENDPOINT_NAMES,
    ENDPOINT_PATH_BYTES,
    NOISE_FIRST_ENDPOINTS,
    Answer,
    EndpointNames,
    FirstCopies,
    endpoint_of,
    same_lift,
)

# Few values, so that equal answers and near-misses are both drawn often.
NAMES = st.sampled_from([b"content-type", b"date", b"etag", b"x-version", b"content-encoding"])
VALUES = st.sampled_from([b"application/json", b"text/plain", b"1", b"2", b"gzip", b" 1"])
BODIES = st.sampled_from([b"", b'{"a":1}', b'{"a":1.0}', b'{"a": 1}', b"[1,2]", b"[2,1]", b"x"])
RULES = st.builds(
    CompareRules,
    headers=st.lists(st.sampled_from(["content-type", "etag", "x-version", "*"]), max_size=3).map(
        tuple
    ),
    ignore_headers=st.lists(st.sampled_from(["etag", "date"]), max_size=1).map(tuple),
    unordered_arrays=st.booleans(),
)


@st.composite
def answers(draw: st.DrawFn) -> Answer:
    answer = Answer()
    status = draw(st.sampled_from([200, 404]))
    headers = draw(st.lists(st.tuples(NAMES, VALUES), max_size=4))
    if draw(st.booleans()):  # parsed: the fields as httptools gave them
        answer.status, answer.headers = status, headers
    else:  # read without a parser: the head as it came
        answer.take_head(
            status, b"HTTP/1.1 %d X" % status + b"".join(b"\r\n%s: %s" % h for h in headers)
        )
    body = draw(BODIES)
    cut = draw(st.integers(0, len(body)))
    for chunk in (body[:cut], body[cut:]):  # chunk boundaries must not matter
        if chunk:
            answer.add_body(chunk, 1 << 20)
    return answer


def lifted(answer: Answer, rules: CompareRules) -> dict[str, object]:
    return dict(lift(answer.status, answer.fields(), b"".join(answer.body), rules).fields)


@given(answers(), answers(), RULES)
def test_answers_that_read_the_same_lift_the_same(
    a: Answer, b: Answer, rules: CompareRules
) -> None:
    if same_lift(a, b, rules.read_headers):
        assert lifted(a, rules) == lifted(b, rules)
        assert compare(a.lifted(rules), b.lifted(rules)) == {}


@given(answers(), RULES)
def test_an_answer_reads_the_same_as_itself_whatever_the_unread_headers(
    a: Answer, rules: CompareRules
) -> None:
    b = Answer()
    b.status, b.body, b.size = a.status, [b"".join(a.body)], a.size
    b.headers = [*a.fields(), (b"x-request-id", b"unread")]
    # an extra header that the rules do not read leaves the reads equal; one they read does not
    read = rules.read_headers
    assert same_lift(a, b, read) == (read is not None and b"x-request-id" not in read)


def test_a_different_status_body_or_compared_header_reads_differently() -> None:
    rules = CompareRules(headers=("content-type",))
    base = Answer()
    base.status, base.headers = 200, [(b"content-type", b"application/json"), (b"date", b"1")]
    base.add_body(b'{"a":1}', 100)
    other = Answer()
    other.status, other.headers = 200, [(b"content-type", b"application/json"), (b"date", b"2")]
    other.add_body(b'{"a":1}', 100)
    assert same_lift(base, other, rules.read_headers)  # the date is not read
    other.status = 500
    assert not same_lift(base, other, rules.read_headers)
    other.status = 200
    other.headers[0] = (b"content-type", b"text/plain")
    assert not same_lift(base, other, rules.read_headers)
    other.headers[0] = (b"content-type", b"application/json")
    other.body, other.size = [], 0
    other.add_body(b'{"a":2}', 100)
    assert not same_lift(base, other, rules.read_headers)


def test_a_head_read_without_a_parser_compares_as_its_fields() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Type:  application/json\r\nDate: 1"
    plain = Answer()
    plain.take_head(200, head)
    parsed = Answer()
    parsed.status = 200
    parsed.headers = [(b"content-type", b"application/json"), (b"date", b"1")]
    rules = CompareRules()
    assert same_lift(plain, parsed, rules.read_headers)
    assert plain.fields() == parsed.headers  # names in lower case, values as httptools has them
    later = Answer()
    later.take_head(200, head.replace(b"Date: 1", b"Date: 2"))
    assert same_lift(plain, later, rules.read_headers)  # the date is not read
    assert not same_lift(plain, later, CompareRules(headers=("date",)).read_headers)


@pytest.mark.parametrize(
    ("path", "name"),
    [
        (b"/api/orders/1234", b"GET /api/orders/{id}"),
        (b"/api/orders/1234/items/7", b"GET /api/orders/{id}/items/{id}"),
        (b"/u/123e4567-e89b-12d3-a456-426614174000", b"GET /u/{id}"),
        (b"/blob/0123456789abcdefABCDEF", b"GET /blob/{id}"),
        (b"/blob/0123456789abcde", b"GET /blob/0123456789abcde"),  # 15 characters: a word
        (b"/api/cart", b"GET /api/cart"),
        (b"/api/v2/", b"GET /api/v2/"),
        (b"/", b"GET /"),
    ],
)
def test_endpoint_names_replace_ids(path: bytes, name: bytes) -> None:
    assert endpoint_of(b"GET", path) == name
    assert EndpointNames().name("shop", b"GET", path) == "shop " + name.decode()


PATHS = st.lists(
    st.sampled_from([b"/a", b"/a/1", b"/a/22", b"/b/" + b"f" * 16, b"/c" * 200]), max_size=30
)


@given(PATHS, st.sampled_from(["shop", "search"]), st.sampled_from([b"GET", b"HEAD"]))
def test_remembered_names_are_the_names(paths: list[bytes], service: str, method: bytes) -> None:
    names = EndpointNames()
    for path in paths * 2:
        expected = f"{service} {endpoint_of(method, path).decode()}"
        assert names.name(service, method, path) == expected
    assert names.name(service, method, b"/a") == f"{service} {method.decode()} /a"
    assert names.name("other", method, b"/a") == f"other {method.decode()} /a"
    assert names.name(service, b"POST", b"/a") == f"{service} POST /a"


def test_names_are_remembered_within_bounds() -> None:
    names = EndpointNames()
    long_path = b"/x" * (ENDPOINT_PATH_BYTES // 2 + 1)
    assert names.name("shop", b"GET", long_path) == "shop GET " + long_path.decode()
    assert len(names) == 0  # too long to keep
    for n in range(ENDPOINT_NAMES):
        names.name("shop", b"GET", b"/orders/%d" % n)
    assert len(names) == ENDPOINT_NAMES
    assert names.name("shop", b"GET", b"/orders/new") == "shop GET /orders/new"
    assert len(names) == 1  # full: forgotten all at once, then the new one kept


@given(st.lists(st.sampled_from(["a", "b", "c"]), max_size=40), st.integers(0, 5))
def test_each_endpoints_first_copies_are_taken(endpoints: list[str], first: int) -> None:
    copies = FirstCopies()
    seen: dict[str, int] = {}
    for endpoint in endpoints:
        seen[endpoint] = seen.get(endpoint, 0) + 1
        assert copies.take(endpoint, first) is (seen[endpoint] <= first)


def test_first_copies_are_counted_within_bounds() -> None:
    copies = FirstCopies()
    for n in range(NOISE_FIRST_ENDPOINTS):
        assert copies.take(f"GET /e{n}", 2)
    assert len(copies) == NOISE_FIRST_ENDPOINTS
    assert copies.take("GET /e0", 2)  # known: counted, nothing forgotten
    assert not copies.take("GET /e0", 2)
    assert len(copies) == NOISE_FIRST_ENDPOINTS
    assert copies.take("GET /new", 2)  # full: all forgotten at once, then the new one counted
    assert len(copies) == 1
    assert copies.take("GET /e0", 2)  # forgotten: its next copies count as first ones again
