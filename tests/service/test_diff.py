"""diff_documents: flag by flag, with JSON paths; properties over generated documents."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from stageless.service import diff_documents

scalars = st.one_of(st.booleans(), st.integers(-5, 5), st.text(max_size=3), st.none())
values = st.recursive(
    scalars, lambda inner: st.dictionaries(st.text(max_size=3), inner, max_size=3), max_leaves=6
)
flag_docs = st.fixed_dictionaries(
    {"flags": st.dictionaries(st.sampled_from(["a", "b", "c.d", "e"]), values, max_size=4)},
    optional={"metadata": st.dictionaries(st.text(max_size=2), scalars, max_size=2)},
)


def test_changed_values_are_named_by_path() -> None:
    before = {"flags": {"x": {"state": "ENABLED", "variants": {"on": 1}}, "gone": {}}}
    after = {"flags": {"x": {"state": "DISABLED", "variants": {"on": 1, "off": 0}}, "new": {}}}
    diff = diff_documents(before, after)
    assert diff.added == ("new",)
    assert diff.removed == ("gone",)
    assert [c.as_json() for c in diff.changed["x"]] == [
        {"path": "flags.x.state", "kind": "changed", "before": "ENABLED", "after": "DISABLED"},
        {"path": "flags.x.variants.off", "kind": "added", "after": 0},
    ]


def test_keys_with_dots_are_bracketed() -> None:
    diff = diff_documents({"flags": {"a.b": {"v": 1}}}, {"flags": {"a.b": {"v": 2}}})
    assert diff.changed["a.b"][0].path == 'flags["a.b"].v'


def test_a_boolean_replacing_an_integer_is_a_change() -> None:
    diff = diff_documents({"flags": {"x": {"v": [1]}}}, {"flags": {"x": {"v": [True]}}})
    assert [c.path for c in diff.changed["x"]] == ["flags.x.v"]


@given(flag_docs)
def test_a_document_does_not_differ_from_itself(doc: dict[str, Any]) -> None:
    assert diff_documents(doc, doc).empty


@given(flag_docs, flag_docs)
def test_diff_is_antisymmetric(first: dict[str, Any], second: dict[str, Any]) -> None:
    forward, backward = diff_documents(first, second), diff_documents(second, first)
    assert set(forward.added) == set(backward.removed)
    assert set(forward.removed) == set(backward.added)
    assert set(forward.changed) == set(backward.changed)
    assert forward.empty == (
        json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)
    )
