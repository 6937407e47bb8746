"""Responses and JSON documents for the diff tests: builders and Hypothesis strategies."""

from __future__ import annotations

import json
import random
from typing import Any

from hypothesis import strategies as st

from stageless.diff import CompareRules, Lifted, lift

JSON_HEADERS = [(b"content-type", b"application/json")]

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
keys = st.text(alphabet='ab.[]"_-1', max_size=4)
documents = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(keys, inner, max_size=5),
    max_leaves=25,
)


def json_response(
    document: Any, rules: CompareRules | None = None, status: int = 200, headers: Any = None
) -> Lifted:
    """The lift of a JSON response with this document as its body."""
    return lift(
        status,
        JSON_HEADERS if headers is None else headers,
        json.dumps(document).encode(),
        rules or CompareRules(),
    )


def shuffled(document: Any, rng: random.Random) -> Any:
    """The document with every array (at any depth) shuffled and every object's keys too."""
    if isinstance(document, list):
        items = [shuffled(item, rng) for item in document]
        rng.shuffle(items)
        return items
    if isinstance(document, dict):
        pairs = [(k, shuffled(v, rng)) for k, v in document.items()]
        rng.shuffle(pairs)
        return dict(pairs)
    return document
