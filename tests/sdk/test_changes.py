"""Which flags a new version of a document changes (PROVIDER_CONFIGURATION_CHANGED's list)."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from stageless.sdk.changes import changed_flags

BASE: dict[str, Any] = {
    "metadata": {"flagSetId": "shop"},
    "$evaluators": {"staff": {"ends_with": [{"var": "email"}, "@example.com"]}},
    "flags": {
        "a": {"state": "ENABLED", "variants": {"on": True}, "defaultVariant": "on"},
        "b": {
            "state": "ENABLED",
            "variants": {"on": True, "off": False},
            "defaultVariant": "off",
            "targeting": {"if": [{"$ref": "staff"}, "on", None]},
        },
    },
}


def edited(**changes: Any) -> dict[str, Any]:
    document = copy.deepcopy(BASE)
    for key, value in changes.items():
        document[key] = value
    return document


def test_identical_documents_change_nothing() -> None:
    assert changed_flags(BASE, copy.deepcopy(BASE)) == []


def test_a_changed_flag_definition() -> None:
    document = copy.deepcopy(BASE)
    document["flags"]["a"]["state"] = "DISABLED"
    assert changed_flags(BASE, document) == ["a"]


def test_added_and_removed_flags() -> None:
    document = copy.deepcopy(BASE)
    del document["flags"]["a"]
    document["flags"]["c"] = BASE["flags"]["a"]
    assert changed_flags(BASE, document) == ["a", "c"]


def test_an_evaluator_change_touches_only_the_flags_that_refer_to_it() -> None:
    document = edited(**{"$evaluators": {"staff": {"ends_with": [{"var": "email"}, "@corp.io"]}}})
    assert changed_flags(BASE, document) == ["b"]


def test_set_metadata_is_inherited_by_every_flag() -> None:
    assert changed_flags(BASE, edited(metadata={"flagSetId": "other"})) == ["a", "b"]


def test_flags_given_as_an_array_with_keys() -> None:
    array = edited(flags=[{"key": name, **flag} for name, flag in BASE["flags"].items()])
    assert changed_flags(BASE, array) == []


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=10,
)
documents = st.fixed_dictionaries(
    {
        "flags": st.dictionaries(
            st.sampled_from("abcde"), st.dictionaries(st.text(max_size=3), json_values, max_size=3)
        )
    }
)


@given(documents, documents)
def test_changes_are_symmetric_and_exact(old: dict[str, Any], new: dict[str, Any]) -> None:
    changed = changed_flags(old, new)
    assert changed == changed_flags(new, old)
    assert changed == sorted(set(changed))
    for key in old["flags"].keys() | new["flags"].keys():
        differs = old["flags"].get(key) != new["flags"].get(key)
        assert (key in changed) == differs


@given(documents)
def test_a_document_never_differs_from_itself(document: dict[str, Any]) -> None:
    assert changed_flags(document, copy.deepcopy(document)) == []
