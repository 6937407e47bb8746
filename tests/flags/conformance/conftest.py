"""Step definitions and collection rules for the flagd testbed, driving the Stageless engine.

The steps build no provider: "an evaluator" / "a stable flagd provider" pick a
:class:`~stageless.flags.FlagSet` parsed from the testbed's flag files, and "the flag was
evaluated with details" calls :meth:`FlagSet.evaluate` with the typed call the scenario names.
Scenarios tagged ``@fractional-v3`` run against flag sets built with ``fractional_version=3``;
all others with the default, 2.

Collection: every testbed tag is registered as a marker (pytest runs with
``--strict-markers``); scenarios matched by :data:`testbed.DESELECTED` are deselected through
pytest's own ``pytest_deselected`` hook, so they show up in the run's "deselected" count. With
``STAGELESS_TEST_CONFORMANCE_REPORT=path`` the per-feature counts are written as JSON (used by
``test_counts.py``).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

import pytest
from pytest_bdd import given, parsers, then, when
from pytest_bdd.scenario import scenario_wrapper_template_registry

from stageless.flags import FlagSet, FlagType, Resolution, parse_flag_set
from tests.flags.conformance.testbed import (
    DAEMON_FLAGS,
    EVALUATOR_FLAGS,
    SELECTOR_FLAG_FILES,
    TESTBED,
    deselection_for,
)

HERE = Path(__file__).resolve().parent
REPORT_ENV = "STAGELESS_TEST_CONFORMANCE_REPORT"
_TAG = re.compile(r"(?<![\w-])@([\w.-]+)")

# --- collection -------------------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    tags = set()
    for feature in sorted(TESTBED.rglob("*.feature")):
        for line in feature.read_text(encoding="utf-8").splitlines():
            if line.lstrip().startswith("@"):
                tags.update(_TAG.findall(line))
    for tag in sorted(tags):
        config.addinivalue_line("markers", f"{tag}: flagd testbed tag @{tag}")


def scenario_of(item: pytest.Item) -> tuple[str, str, frozenset[str]] | None:
    """(feature path relative to the testbed, scenario name, tags) of a testbed item."""
    function = getattr(item, "obj", None)
    template = scenario_wrapper_template_registry.get(function) if function else None
    if template is None:
        return None
    feature = Path(template.feature.filename).resolve().relative_to(TESTBED).as_posix()
    tags = frozenset(mark.name for mark in item.iter_markers())
    return feature, template.name, tags


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    report: dict[str, dict[str, Any]] = {}
    for item in items:
        if HERE not in Path(str(item.path)).resolve().parents:
            kept.append(item)
            continue
        found = scenario_of(item)
        if found is None:  # a plain test in this directory
            kept.append(item)
            continue
        feature, name, tags = found
        entry = report.setdefault(
            feature, {"executed": 0, "executed_v3": 0, "deselected": 0, "reasons": []}
        )
        rule = deselection_for(feature, name, tags)
        if rule is None:
            entry["executed"] += 1
            entry["executed_v3"] += "fractional-v3" in tags
            kept.append(item)
        else:
            entry["deselected"] += 1
            if rule.reason not in entry["reasons"]:
                entry["reasons"].append(rule.reason)
            dropped.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
    path = os.environ.get(REPORT_ENV)
    if path:
        Path(path).write_text(json.dumps(report, indent=2, sort_keys=True), encoding="utf-8")


# --- flag sets ----------------------------------------------------------------------------

Version = Literal[2, 3]


@cache
def evaluator_flags(version: Version) -> FlagSet:
    text = EVALUATOR_FLAGS.read_text(encoding="utf-8")
    return parse_flag_set(text, fractional_version=version, source_name=EVALUATOR_FLAGS.name)


@cache
def daemon_flags(version: Version) -> FlagSet:
    """The daemon's flags: every file of flags/ but the selector sources, merged into one
    document (flags and ``$evaluators``) as the testbed's flagd image does (its allFlags.json);
    zero-flags.json, for one, uses an evaluator defined in evaluator-refs.json."""
    merged: dict[str, dict[str, Any]] = {"flags": {}, "$evaluators": {}}
    for path in sorted(DAEMON_FLAGS.glob("*.json")):
        if path.name in SELECTOR_FLAG_FILES:
            continue
        document = json.loads(path.read_text(encoding="utf-8"))
        assert set(document) <= {"flags", "$evaluators"}, (path.name, set(document))
        for section in ("flags", "$evaluators"):
            for key, value in document.get(section, {}).items():
                assert key not in merged[section], f"{section}.{key} is defined twice"
                merged[section][key] = value
    return parse_flag_set(merged, fractional_version=version, source_name="flags/*.json")


# --- scenario state ---------------------------------------------------------------------


@dataclass
class Scenario:
    """What the steps of one scenario have set up."""

    version: Version
    flags: FlagSet | None = None
    key: str = ""
    flag_type: FlagType | None = None
    default: Any = None
    context: dict[str, Any] = field(default_factory=dict)
    resolution: Resolution | None = None

    @property
    def result(self) -> Resolution:
        assert self.resolution is not None, "the flag was not evaluated"
        return self.resolution


@pytest.fixture
def scenario(request: pytest.FixtureRequest) -> Scenario:
    version: Version = 3 if request.node.get_closest_marker("fractional-v3") else 2
    return Scenario(version)


FLAG_TYPES = {
    "Boolean": FlagType.BOOLEAN,
    "String": FlagType.STRING,
    "Integer": FlagType.INTEGER,
    "Float": FlagType.FLOAT,
    "Object": FlagType.OBJECT,
}


def typed(type_name: str, text: str) -> Any:
    """A table cell as a value of the testbed type ``type_name``."""
    if type_name == "Boolean":
        assert text in ("true", "false"), f"not a Boolean: {text!r}"
        return text == "true"
    if type_name == "Integer":
        return int(text)
    if type_name == "Float":
        return float(text)
    if type_name == "Object":
        # Cells write quotes as \" (a Gherkin cell has no such escape, so it arrives verbatim).
        return json.loads(text.replace('\\"', '"'))
    if type_name == "String":
        # Verbatim: cells such as A\u0000B are the literal backslash text. The testbed's expected
        # buckets were computed that way (unescaping them moves all three such rows).
        return text
    raise AssertionError(f"unknown testbed type {type_name!r}")


# --- steps: set-up ----------------------------------------------------------------------


@given("an evaluator")
def an_evaluator(scenario: Scenario) -> None:
    flags = evaluator_flags(scenario.version)
    scenario.flags = flags


@given("a stable flagd provider")
def a_stable_provider(scenario: Scenario) -> None:
    flags = daemon_flags(scenario.version)
    scenario.flags = flags


@given(
    parsers.re(
        r'an option "(?P<name>[^"]*)" of type "(?P<kind>[^"]*)" with value "(?P<value>[^"]*)"'
    )
)
def an_option(name: str, kind: str, value: str) -> None:
    # Only the provider cache option appears in the scenarios that run; it has no meaning
    # for in-process evaluation. Any other option (a selector) would need a daemon.
    assert (name, kind) == ("cache", "CacheType"), f"unsupported provider option {name!r}"


@given(
    parsers.re(
        r'an? (?P<type_name>\w+)-flag with key "(?P<key>[^"]*)" and a '
        r'(?:fallback|default) value "(?P<default>.*)"'
    )
)
def a_flag(scenario: Scenario, type_name: str, key: str, default: str) -> None:
    scenario.key = key
    scenario.flag_type = FLAG_TYPES[type_name]
    scenario.default = typed(type_name, default)


@given(
    parsers.re(
        r'a context containing a key "(?P<key>[^"]*)", with type "(?P<type_name>\w+)" '
        r'and with value "(?P<value>.*)"'
    )
)
def a_context_key(scenario: Scenario, key: str, type_name: str, value: str) -> None:
    scenario.context[key] = typed(type_name, value)


@given(
    parsers.re(
        r'a context containing a nested property with outer key "(?P<outer>[^"]*)" and inner '
        r'key "(?P<inner>[^"]*)", with value "(?P<value>.*)"'
    )
)
def a_nested_context_key(scenario: Scenario, outer: str, inner: str, value: str) -> None:
    scenario.context.setdefault(outer, {})[inner] = value


@given(parsers.re(r'a context containing a targeting key with value "(?P<value>.*)"'))
def a_targeting_key(scenario: Scenario, value: str) -> None:
    scenario.context["targetingKey"] = value


@when("the flag was evaluated with details")
def evaluated(scenario: Scenario) -> None:
    flags = scenario.flags
    assert flags is not None, "no evaluator or provider was set up"
    scenario.resolution = flags.evaluate(scenario.key, scenario.context, scenario.flag_type)


# --- steps: checks ----------------------------------------------------------------------


def same(actual: Any, expected: Any) -> bool:
    """Equal, and of the same JSON type (True is not 1, 1.0 is a float)."""
    if type(expected) is float:
        return type(actual) is float and actual == expected
    if isinstance(expected, Mapping | list):
        return bool(actual == expected)
    return type(actual) is type(expected) and actual == expected


@then(parsers.re(r'the resolved details value should be "(?P<expected>.*)"'))
def value_is(scenario: Scenario, expected: str) -> None:
    resolution = scenario.result
    # As an OpenFeature client does: no variant means the caller's default value.
    value = scenario.default if resolution.variant is None else resolution.value
    type_name = next(name for name, t in FLAG_TYPES.items() if t is scenario.flag_type)
    wanted = typed(type_name, expected)
    assert same(value, wanted), f"{value!r} != {wanted!r}; resolution: {resolution}"


@then(parsers.re(r'the reason should be "(?P<reason>[^"]*)"'))
def reason_is(scenario: Scenario, reason: str) -> None:
    assert scenario.result.reason == reason, scenario.result


@then(parsers.re(r'the error-code should be "(?P<code>[^"]*)"'))
def error_code_is(scenario: Scenario, code: str) -> None:
    assert scenario.result.error_code == (code or None), scenario.result


@then(parsers.re(r'the variant should be "(?P<variant>[^"]*)"'))
def variant_is(scenario: Scenario, variant: str) -> None:
    assert scenario.result.variant == variant, scenario.result


@then("the resolved metadata should contain")
def metadata_contains(scenario: Scenario, datatable: list[list[str]]) -> None:
    header, *rows = datatable
    assert header == ["key", "metadata_type", "value"], header
    metadata = scenario.result.metadata
    for key, type_name, text in rows:
        assert key in metadata, f"metadata has no {key!r}: {dict(metadata)}"
        assert same(metadata[key], typed(type_name, text)), (key, metadata[key], text)


@then("the resolved metadata is empty")
def metadata_is_empty(scenario: Scenario) -> None:
    assert dict(scenario.result.metadata) == {}, scenario.result
