"""Flag documents: decoding, whole-document validation with JSON paths, ``$ref``, warnings."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from stageless.errors import ValidationError
from stageless.flags import (
    ErrorCode,
    FlagSet,
    FlagState,
    FlagType,
    Reason,
    parse_flag_set,
)

TESTBED_FLAGS = Path(__file__).resolve().parents[3] / "shared" / "spec" / "flagd-testbed" / "flags"

CHECKOUT = {
    "state": "ENABLED",
    "variants": {"on": True, "off": False},
    "defaultVariant": "off",
}


def doc(**flags: Any) -> dict[str, Any]:
    return {"flags": flags}


def flag(**fields: Any) -> dict[str, Any]:
    return {**CHECKOUT, **fields}


def issues_of(source: Any, **options: Any) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        parse_flag_set(source, **options)
    return [str(issue) for issue in caught.value.issues]


# --- formats ------------------------------------------------------------------------------

JSON_TEXT = """{
  "$schema": "https://flagd.dev/schema/v0/flags.json",
  "metadata": {"flagSetId": "shop", "version": "7"},
  "flags": {
    "new-checkout": {"state": "ENABLED", "variants": {"on": true, "off": false},
                     "defaultVariant": "off", "metadata": {"owner": "payments"}},
    "theme": {"state": "DISABLED", "variants": {"light": "light", "dark": "dark"},
              "defaultVariant": "light"}
  }
}"""

YAML_TEXT = """
$schema: https://flagd.dev/schema/v0/flags.json
metadata: {flagSetId: shop, version: "7"}
flags:
  new-checkout:
    state: ENABLED
    variants:
      on: true
      off: false
    defaultVariant: off
    metadata: {owner: payments}
  theme:
    state: DISABLED
    variants: {light: light, dark: dark}
    defaultVariant: light
"""


def summary(flags: FlagSet) -> dict[str, Any]:
    return {
        key: (
            flags.flag(key).state,
            dict(flags.flag(key).variants),
            flags.flag(key).default_variant,
            dict(flags.flag(key).metadata),
        )
        for key in flags
    }


def test_json_and_yaml_of_the_same_structure_load_the_same_flags() -> None:
    from_json = parse_flag_set(JSON_TEXT)
    from_yaml = parse_flag_set(YAML_TEXT)
    assert summary(from_json) == summary(from_yaml)
    assert dict(from_json.metadata) == {"flagSetId": "shop", "version": "7"}
    assert from_json.flag("new-checkout").metadata["owner"] == "payments"


def test_yaml_on_and_off_stay_variant_names_not_booleans() -> None:
    flags = parse_flag_set(YAML_TEXT, format="yaml")
    assert list(flags.flag("new-checkout").variants) == ["on", "off"]
    assert flags.flag("new-checkout").default_variant == "off"


def test_bytes_and_mappings_are_accepted() -> None:
    assert summary(parse_flag_set(JSON_TEXT.encode())) == summary(parse_flag_set(JSON_TEXT))
    mapping = MappingProxyType({"flags": MappingProxyType({"x": MappingProxyType(CHECKOUT)})})
    assert parse_flag_set(mapping).evaluate("x").value is False


def test_flags_may_be_an_array_with_keys() -> None:
    flags = parse_flag_set({"flags": [{"key": "a", **CHECKOUT}, {"key": "b", **CHECKOUT}]})
    assert list(flags.keys()) == ["a", "b"]
    assert flags.warnings == ()


@pytest.mark.parametrize(
    ("variants", "expected"),
    [
        ({"on": True, "off": False}, FlagType.BOOLEAN),
        ({"a": "x"}, FlagType.STRING),
        ({"one": 1, "ten": 10}, FlagType.INTEGER),
        ({"zero": 0.0, "one": 1}, FlagType.FLOAT),
        ({"empty": {}, "full": {"a": [1]}}, FlagType.OBJECT),
        ({"list": [1, 2]}, FlagType.OBJECT),
    ],
)
def test_flag_type_follows_the_variant_values(variants: dict[str, Any], expected: FlagType) -> None:
    flags = parse_flag_set(doc(f={"state": "ENABLED", "variants": variants}))
    assert flags.flag("f").flag_type is expected
    assert flags.flag("f").state is FlagState.ENABLED


# --- rejected documents -------------------------------------------------------------------

REJECTED: list[tuple[str, Any, list[str]]] = [
    (
        "default variant not a variant",
        doc(**{"new-checkout": flag(variants={"on": True, "off": False}, defaultVariant="blue")}),
        ["flags.new-checkout.defaultVariant: 'blue' is not one of the variants ['on', 'off']"],
    ),
    (
        "bad state",
        doc(x=flag(state="ON")),
        ["flags.x.state: expected 'ENABLED' or 'DISABLED', got 'ON'"],
    ),
    (
        "missing state",
        doc(x={"variants": {"a": 1}}),
        ["flags.x.state: is required ('ENABLED' or 'DISABLED')"],
    ),
    (
        "missing variants",
        doc(x={"state": "ENABLED"}),
        ["flags.x.variants: expected an object of variant names to values, got nothing"],
    ),
    (
        "no variants",
        doc(x={"state": "ENABLED", "variants": {}}),
        ["flags.x.variants: expected at least one variant, got none"],
    ),
    (
        "mixed variant types",
        doc(x={"state": "ENABLED", "variants": {"a": True, "b": "b"}}),
        ["flags.x.variants: variants must all have one type, got boolean: ['a']; string: ['b']"],
    ),
    (
        "null variant",
        doc(x={"state": "ENABLED", "variants": {"a": None}}),
        ["flags.x.variants.a: expected a boolean, string, number or object, got null"],
    ),
    (
        "default variant not a string",
        doc(x=flag(defaultVariant=1)),
        ["flags.x.defaultVariant: expected a variant name or null, got a number"],
    ),
    (
        "targeting not an object",
        doc(x=flag(targeting="on")),
        ["flags.x.targeting: expected a JSON Logic rule (an object), got a string"],
    ),
    (
        "nested metadata",
        doc(x=flag(metadata={"team": {"name": "a"}})),
        ["flags.x.metadata.team: expected a string, number or boolean, got an object"],
    ),
    (
        "set metadata not an object",
        {"flags": {}, "metadata": [1]},
        ["metadata: expected an object of string, number or boolean values, got an array"],
    ),
    ("no flags", {"metadata": {}}, ["flags: is required (an object of flags)"]),
    (
        "flags of the wrong type",
        {"flags": "x"},
        ["flags: expected an object of flags (or an array of flags), got a string"],
    ),
    ("not an object", "[1, 2]", ["expected an object with a 'flags' key, got an array"]),
    ("flag not an object", doc(x=3), ["flags.x: expected a flag object, got a number"]),
    (
        "array flag without key",
        {"flags": [CHECKOUT]},
        ["flags[0].key: expected the flag's key, a non-empty string"],
    ),
    (
        "array flags with the same key",
        {"flags": [{"key": "a", **CHECKOUT}, {"key": "a", **CHECKOUT}]},
        ["flags[1].key: duplicate flag key 'a' (also flags[0])"],
    ),
    (
        "odd key in a path",
        doc(**{"a.b": flag(state="on")}),
        ["flags[\"a.b\"].state: expected 'ENABLED' or 'DISABLED', got 'on'"],
    ),
    (
        "not JSON",
        doc(x=flag(variants={"a": (1, 2)})),
        [
            "flags.x.variants.a: expected a boolean, string, number or object, got a tuple (not a "
            "JSON value)"
        ],
    ),
    (
        "infinite number",
        doc(x={"state": "ENABLED", "variants": {"a": float("inf")}}),
        ["flags.x.variants.a: expected a finite number, got inf"],
    ),
    (
        "evaluators not an object",
        {"flags": {}, "$evaluators": []},
        ["$evaluators: expected an object of named rules, got an array"],
    ),
]


@pytest.mark.parametrize(("source", "expected"), [(s, e) for _, s, e in REJECTED],
                         ids=[name for name, _, _ in REJECTED])  # fmt: skip
def test_a_document_that_breaks_the_schema_is_rejected_with_paths(
    source: Any, expected: list[str]
) -> None:
    assert issues_of(source) == expected


def test_every_issue_of_a_document_is_listed_at_once() -> None:
    source = doc(
        a=flag(defaultVariant="blue"),
        b=flag(state="maybe"),
        c={"state": "ENABLED", "variants": {"x": 1, "y": "y"}, "metadata": {"m": [1]}},
    )
    issues = issues_of(source)
    assert [issue.split(":")[0] for issue in issues] == [
        "flags.a.defaultVariant",
        "flags.b.state",
        "flags.c.variants",
        "flags.c.metadata.m",
    ]


def test_the_error_message_names_the_source_and_counts_problems() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_flag_set(doc(x=flag(state="ON")), source_name="flags.yaml")
    assert str(caught.value).startswith("flags.yaml: 1 problem\n  flags.x.state:")
    assert caught.value.source == "flags.yaml"


TEXT_ERRORS: list[tuple[str, str | bytes, str]] = [
    ("json syntax", '{"flags": {', "invalid JSON at line 1, column 12"),
    ("json duplicate key", '{"flags": {}, "flags": {}}', "invalid JSON: duplicate key 'flags'"),
    ("json NaN", '{"flags": {"x": {"state": NaN}}}', "invalid JSON: NaN is not a JSON number"),
    ("yaml syntax", "flags: [\n", "invalid YAML at line 2"),
    ("yaml duplicate key", "flags: {}\nflags: {}\n", "invalid YAML: line 2: duplicate key"),
    ("not utf-8", b'{"flags": "\xff"}', "not UTF-8 text: byte 11 is invalid"),
    ("too deep", "[" * 100_000 + "]" * 100_000, "document is nested too deeply to parse"),
]


@pytest.mark.parametrize(("text", "start"), [(t, s) for _, t, s in TEXT_ERRORS],
                         ids=[name for name, _, _ in TEXT_ERRORS])  # fmt: skip
def test_text_that_does_not_parse_is_one_clear_issue(text: str | bytes, start: str) -> None:
    (issue,) = issues_of(text)
    assert issue.startswith(start), issue


def test_yaml_dates_and_non_string_keys_are_not_json() -> None:
    text = "flags:\n  x:\n    state: ENABLED\n    variants: {a: 2024-01-01}\n  1: {}\n"
    issues = issues_of(text)
    assert "flags: flag key 1 is not a non-empty string" in issues
    assert any(issue.startswith("flags.x.variants.a: expected a boolean") for issue in issues)


def test_values_nested_beyond_the_document_limit_are_rejected() -> None:
    deep: Any = {}
    for _ in range(200):
        deep = {"k": deep}
    issues = issues_of(doc(x={"state": "ENABLED", "variants": {"a": deep}}))
    assert len(issues) == 1
    assert issues[0].endswith("nested deeper than 128 levels")


def test_fractional_version_must_be_2_or_3() -> None:
    with pytest.raises(ValueError, match="fractional_version must be 2 or 3"):
        parse_flag_set(doc(), fractional_version=1)  # type: ignore[arg-type]


# --- warnings: loads, but not everything works ----------------------------------------------


def test_unknown_keys_load_with_a_warning() -> None:
    flags = parse_flag_set({"flags": {"x": flag(defaultVarient="on")}, "extra": 1})
    assert [str(w) for w in flags.warnings] == [
        "flags.x.defaultVarient: unknown key, ignored",
        "extra: unknown key, ignored",
    ]


UNCOMPILABLE: list[tuple[str, dict[str, Any], str]] = [
    (
        "unknown operator",
        {"if": [{"nope": [1]}, "on", "off"]},
        "flags.broken.targeting.if[0]: targeting cannot be compiled: unknown operator 'nope'",
    ),
    (
        "missing evaluator",
        {"if": [{"$ref": "gone"}, "on", "off"]},
        "flags.broken.targeting.if[0]: targeting cannot be compiled: $ref to unknown evaluator "
        "'gone' (defined: ['is_staff', 'nested'])",
    ),
    (
        "nested ref",
        {"$ref": "nested"},
        "flags.broken.targeting: targeting cannot be compiled: evaluator 'nested' contains a "
        "$ref; nested references are not supported",
    ),
    (
        "ref to a non-name",
        {"if": [{"$ref": 3}, "on", "off"]},
        "flags.broken.targeting.if[0]: targeting cannot be compiled: $ref must name an "
        "evaluator (a string), got 3",
    ),
]


@pytest.mark.parametrize(("rule", "warning"), [(r, w) for _, r, w in UNCOMPILABLE],
                         ids=[name for name, _, _ in UNCOMPILABLE])  # fmt: skip
def test_uncompilable_targeting_loads_with_a_warning_and_evaluates_to_parse_error(
    rule: dict[str, Any], warning: str
) -> None:
    source = {
        "$evaluators": {
            "is_staff": {"ends_with": [{"var": "email"}, "@example.com"]},
            "nested": {"$ref": "is_staff"},
        },
        "flags": {"broken": flag(targeting=rule), "fine": flag()},
    }
    flags = parse_flag_set(source)
    assert [str(w) for w in flags.warnings] == [warning]
    broken = flags.evaluate("broken", {"email": "a@example.com"}, FlagType.BOOLEAN)
    assert (broken.reason, broken.error_code, broken.value) == (
        Reason.ERROR,
        ErrorCode.PARSE_ERROR,
        None,
    )
    assert broken.error_message == warning
    assert flags.evaluate("fine").value is False
    assert flags.flag("broken").targeting_error == warning


def test_refs_are_substituted_at_load_time() -> None:
    source = {
        "$evaluators": {"is_staff": {"ends_with": [{"var": "email"}, "@example.com"]}},
        "flags": {"x": flag(targeting={"if": [{"$ref": "is_staff"}, "on", "off"]})},
    }
    flags = parse_flag_set(source)
    assert flags.flag("x").targeting == {
        "if": [{"ends_with": [{"var": "email"}, "@example.com"]}, "on", "off"]
    }
    assert flags.evaluate("x", {"email": "ada@example.com"}).variant == "on"
    assert flags.evaluate("x", {"email": "ada@example.org"}).variant == "off"


def test_empty_targeting_means_none() -> None:
    flags = parse_flag_set(doc(x=flag(targeting={})))
    assert flags.flag("x").targeting is None
    assert flags.evaluate("x").reason is Reason.STATIC


# --- metadata --------------------------------------------------------------------------------


def test_flag_metadata_is_merged_over_set_metadata_as_in_the_testbed() -> None:
    # The tables of flagd-testbed gherkin/metadata.feature's @metadata-provider scenarios,
    # which need a flagd selector to run there.
    text = (TESTBED_FLAGS / "selector-flag-combined-metadata.json").read_text(encoding="utf-8")
    flags = parse_flag_set(text)
    set_part = {
        "flag-set-string": "c",
        "flag-set-integer": 3,
        "flag-set-float": 3.2,
        "flag-set-boolean": False,
    }
    only_set = flags.evaluate("only-set-metadata-flag", None, FlagType.BOOLEAN).metadata
    assert dict(only_set) == {
        "string": "b",
        "integer": 2,
        "float": 2.2,
        "boolean": False,
        **set_part,
    }
    combined = flags.evaluate("combined-metadata-flag", None, FlagType.BOOLEAN).metadata
    assert dict(combined) == {
        "string": "a",
        "integer": 1,
        "float": 1.2,
        "boolean": True,
        **set_part,
    }
    assert type(combined["integer"]) is int
    assert type(combined["boolean"]) is bool


# --- immutability ----------------------------------------------------------------------------


def test_object_values_are_shared_read_only_and_still_json() -> None:
    template = {"title": "Hi", "sizes": [1, 2], "nested": {"a": 1}}
    flags = parse_flag_set(
        doc(x={"state": "ENABLED", "variants": {"t": template}, "defaultVariant": "t"})
    )
    value = flags.evaluate("x", None, FlagType.OBJECT).value
    assert value == template
    assert json.loads(json.dumps(value)) == template
    assert isinstance(value, dict)
    for mutate in (
        lambda: value.__setitem__("title", "x"),
        lambda: value["sizes"].append(3),
        lambda: value["nested"].update(b=2),
        lambda: value.pop("title"),
    ):
        with pytest.raises(TypeError, match="read-only"):
            mutate()
    mutable = copy.deepcopy(value)
    mutable["sizes"].append(3)
    assert type(mutable) is dict
    assert flags.evaluate("x").value == template


def test_the_source_document_is_not_aliased() -> None:
    source = doc(x={"state": "ENABLED", "variants": {"t": {"a": [1]}}, "defaultVariant": "t"})
    flags = parse_flag_set(source)
    source["flags"]["x"]["variants"]["t"]["a"].append(2)
    assert flags.evaluate("x").value == {"a": [1]}


def test_a_flag_set_cannot_be_changed() -> None:
    flags = parse_flag_set(doc(x=flag()))
    with pytest.raises(AttributeError, match="immutable"):
        flags.source_name = "other"
    with pytest.raises(TypeError):
        flags.flag("x").variants["on"] = False  # type: ignore[index]
    assert "x" in flags
    assert len(flags) == 1
    with pytest.raises(KeyError):
        flags.flag("missing")


# --- the shipped example and the docs --------------------------------------------------------

EXAMPLE = Path(__file__).resolve().parents[2] / "src" / "stageless" / "examples" / "flags.yaml"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "flags.md"


def test_the_example_flags_load_cleanly_and_behave_as_the_docs_say() -> None:
    flags = parse_flag_set(EXAMPLE.read_text(encoding="utf-8"), source_name="flags.yaml")
    assert flags.warnings == ()
    staff = flags.evaluate(
        "checkout-flow", {"targetingKey": "user-7", "email": "ann@example.com"}, FlagType.STRING
    )
    assert (staff.value, staff.variant, staff.reason) == (
        "one-page",
        "one-page",
        Reason.TARGETING_MATCH,
    )
    assert dict(staff.metadata) == {
        "flagSetId": "demo-shop",
        "version": "1",
        "owner": "checkout-team",
    }
    assert flags.flag("payments-enabled").flag_type is FlagType.BOOLEAN
    assert flags.flag("search-settings").flag_type is FlagType.OBJECT
    assert flags.evaluate("dark-mode").reason is Reason.DISABLED


def test_the_validation_example_in_the_docs_is_real() -> None:
    source = doc(
        **{
            "new-checkout": flag(variants={"on": True, "off": False}, defaultVariant="blue"),
            "theme": flag(state="ON"),
            "price": {"state": "ENABLED", "variants": {"a": 1, "b": "b"}},
        }
    )
    with pytest.raises(ValidationError) as caught:
        parse_flag_set(source, source_name="flags.yaml")
    assert str(caught.value) in DOCS.read_text(encoding="utf-8")
