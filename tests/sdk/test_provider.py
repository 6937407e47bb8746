"""The provider through the real OpenFeature client: typed resolutions, reasons, error mapping."""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.evaluation_context import EvaluationContext
from openfeature.event import ProviderEvent
from openfeature.exception import ErrorCode, ParseError, ProviderNotReadyError
from openfeature.flag_evaluation import Reason
from openfeature.provider import ProviderStatus

from stageless.flags import parse_flag_set
from stageless.sdk import StagelessProvider
from tests.sdk.support import BOOL, Events, flag, write_json

DOCUMENT: dict[str, Any] = {
    "metadata": {"flagSetId": "shop", "version": "7"},
    "flags": {
        "kill-switch": flag(BOOL, "on", metadata={"owner": "payments"}),
        "theme": flag(
            {"light": "light", "dark": "dark"},
            "light",
            targeting={"if": [{"ends_with": [{"var": "email"}, "@example.com"]}, "dark", None]},
        ),
        "vip": flag(
            BOOL, "off", targeting={"if": [{"==": [{"var": "targetingKey"}, "user-1"]}, "on", None]}
        ),
        "max-items": flag({"few": 10, "many": 100}, "few"),
        "ratio": flag({"low": 0.25, "high": 0.75}, "high"),
        "whole-ratio": flag({"one": 1, "two": 2}, "one"),
        "limits": flag({"basic": {"rpm": 60, "burst": [1, 2]}}, "basic"),
        "retired": {"state": "DISABLED", "variants": BOOL, "defaultVariant": "on"},
        "no-default": flag(BOOL, None),
        "broken-rule": flag(BOOL, "off", targeting={"no-such-operator": [1]}),
    },
}


@pytest.fixture
def flags_file(tmp_path: Path) -> Path:
    path = tmp_path / "flags.json"
    write_json(path, DOCUMENT)
    return path


@pytest.fixture
def client(flags_file: Path, openfeature_api: None) -> OpenFeatureClient:
    api.set_provider_and_wait(StagelessProvider.from_file(flags_file, watch=False))
    return api.get_client()


def test_boolean_static(client: OpenFeatureClient) -> None:
    details = client.get_boolean_details("kill-switch", False)
    assert (details.value, details.variant, details.reason) == (True, "on", Reason.STATIC)
    assert details.error_code is None


def test_flag_metadata_merges_set_and_flag_metadata(client: OpenFeatureClient) -> None:
    metadata = client.get_boolean_details("kill-switch", False).flag_metadata
    assert metadata["owner"] == "payments"
    assert metadata["flagSetId"] == "shop"


def test_string_targeting_on_an_attribute(client: OpenFeatureClient) -> None:
    staff = EvaluationContext(attributes={"email": "ann@example.com"})
    details = client.get_string_details("theme", "none", staff)
    assert (details.value, details.variant, details.reason) == (
        "dark",
        "dark",
        Reason.TARGETING_MATCH,
    )
    other = client.get_string_details(
        "theme", "none", EvaluationContext(attributes={"email": "x@y.z"})
    )
    assert (other.value, other.reason) == ("light", Reason.DEFAULT)


def test_the_targeting_key_reaches_rules(client: OpenFeatureClient) -> None:
    assert client.get_boolean_value("vip", False, EvaluationContext("user-1")) is True
    assert client.get_boolean_value("vip", True, EvaluationContext("user-2")) is False


def test_integer_and_float_resolutions(client: OpenFeatureClient) -> None:
    integer = client.get_integer_details("max-items", 0)
    assert (integer.value, integer.variant, integer.error_code) == (10, "few", None)
    assert type(integer.value) is int
    ratio = client.get_float_details("ratio", 0.0)
    assert (ratio.value, ratio.error_code) == (0.75, None)


def test_float_call_on_whole_numbers_gives_a_float(client: OpenFeatureClient) -> None:
    details = client.get_float_details("whole-ratio", 0.0)
    assert details.error_code is None
    assert details.value == 1.0
    assert type(details.value) is float


def test_object_resolution(client: OpenFeatureClient) -> None:
    details = client.get_object_details("limits", {})
    assert details.value == {"rpm": 60, "burst": [1, 2]}
    assert details.variant == "basic"


def test_unknown_flag_gives_the_default_and_flag_not_found(client: OpenFeatureClient) -> None:
    details = client.get_string_details("nope", "fallback")
    assert (details.value, details.reason) == ("fallback", Reason.ERROR)
    assert details.error_code == ErrorCode.FLAG_NOT_FOUND
    assert isinstance(details.error_code, ErrorCode)


def test_wrong_type_gives_type_mismatch(client: OpenFeatureClient) -> None:
    details = client.get_boolean_details("theme", False)
    assert (details.value, details.error_code) == (False, ErrorCode.TYPE_MISMATCH)


def test_disabled_flag_resolves_to_the_code_default(client: OpenFeatureClient) -> None:
    details = client.get_boolean_details("retired", False)
    assert (details.value, details.reason, details.error_code) == (False, Reason.DISABLED, None)


def test_no_default_variant_resolves_to_the_code_default(client: OpenFeatureClient) -> None:
    details = client.get_boolean_details("no-default", True)
    assert (details.value, details.variant, details.error_code) == (True, None, None)
    assert details.reason == Reason.DEFAULT


def test_uncompilable_targeting_is_a_parse_error_for_that_flag_only(
    client: OpenFeatureClient,
) -> None:
    details = client.get_boolean_details("broken-rule", True)
    assert (details.value, details.reason) == (True, Reason.ERROR)
    assert details.error_code == ErrorCode.PARSE_ERROR
    assert client.get_boolean_value("kill-switch", False) is True


async def test_async_resolution(client: OpenFeatureClient) -> None:
    assert await client.get_integer_value_async("max-items", 0) == 10


def test_yaml_files_by_suffix(tmp_path: Path, openfeature_api: None) -> None:
    path = tmp_path / "flags.yaml"
    path.write_text(
        'flags:\n  beta:\n    state: ENABLED\n    variants: {"on": true, "off": false}\n'
        '    defaultVariant: "on"\n'
    )
    api.set_provider_and_wait(StagelessProvider.from_file(path, watch=False))
    assert api.get_client().get_boolean_value("beta", False) is True


def test_provider_from_flag_set_needs_no_file(openfeature_api: None) -> None:
    flags = parse_flag_set({"flags": {"beta": flag(BOOL, "on")}})
    provider = StagelessProvider.from_flag_set(flags)
    assert provider.resolve_boolean_details("beta", False).value is True  # usable before init
    api.set_provider_and_wait(provider)
    assert api.get_client().get_boolean_value("beta", False) is True


def test_direct_resolution_before_initialize_is_not_ready(flags_file: Path) -> None:
    provider = StagelessProvider.from_file(flags_file, watch=False)
    with pytest.raises(ProviderNotReadyError):
        provider.resolve_boolean_details("kill-switch", False)
    provider.initialize(EvaluationContext())
    assert provider.resolve_boolean_details("kill-switch", False).value is True


def test_resolution_without_context(flags_file: Path) -> None:
    provider = StagelessProvider.from_file(flags_file, watch=False)
    provider.initialize(EvaluationContext())
    details = provider.resolve_string_details("theme", "none", None)
    assert (details.value, details.reason) == ("light", Reason.DEFAULT)


def test_ready_event_once_on_initialize(flags_file: Path, events: Events) -> None:
    api.set_provider_and_wait(StagelessProvider.from_file(flags_file, watch=False))
    events.wait_for(ProviderEvent.PROVIDER_READY)
    assert api.get_client().get_provider_status() is ProviderStatus.READY
    assert events.kinds() == [ProviderEvent.PROVIDER_READY]


def test_a_bad_file_fails_initialize_with_every_issue(tmp_path: Path, events: Events) -> None:
    path = tmp_path / "flags.json"
    write_json(path, {"flags": {"x": flag(BOOL, "blue")}})
    with pytest.raises(ParseError) as raised:
        api.set_provider_and_wait(StagelessProvider.from_file(path, watch=False))
    assert "flags.x.defaultVariant" in str(raised.value.error_message)
    error = events.wait_for(ProviderEvent.PROVIDER_ERROR)
    assert error.error_code == ErrorCode.PARSE_ERROR
    assert "flags.x.defaultVariant" in (error.message or "")
    details = api.get_client().get_boolean_details("x", False)
    assert (details.value, details.error_code) == (False, ErrorCode.PROVIDER_NOT_READY)


def test_a_missing_file_fails_initialize_plainly(tmp_path: Path, events: Events) -> None:
    missing = tmp_path / "missing.json"
    provider = StagelessProvider.from_file(missing, watch=False)
    with pytest.raises(Exception, match="cannot read flag file"):
        api.set_provider_and_wait(provider)
    assert events.wait_for(ProviderEvent.PROVIDER_ERROR).error_code == ErrorCode.GENERAL
    assert provider.last_error is not None


def test_metadata_name() -> None:
    flags = parse_flag_set({"flags": {}})
    assert StagelessProvider.from_flag_set(flags).get_metadata().name == "stageless"


# --- the context conversion, the same in every typed method ------------------------------------

PRO_USER_1 = {
    "and": [{"==": [{"var": "targetingKey"}, "user-1"]}, {"==": [{"var": "plan"}, "pro"]}]
}

# (method, matched value, default value): each flag matches only user-1 on the pro plan.
TYPED: list[tuple[str, Any, Any]] = [
    ("resolve_boolean_details", True, False),
    ("resolve_string_details", "gold", "plain"),
    ("resolve_integer_details", 100, 10),
    ("resolve_float_details", 0.75, 0.25),
    ("resolve_object_details", {"tier": "gold"}, {"tier": "plain"}),
]


@pytest.fixture
def typed_provider() -> StagelessProvider:
    flags = {
        method: flag(
            {"hit": hit, "miss": miss}, "miss", targeting={"if": [PRO_USER_1, "hit", None]}
        )
        for method, hit, miss in TYPED
    }
    return StagelessProvider.from_flag_set(parse_flag_set({"flags": flags}))


@pytest.mark.parametrize(("method", "hit", "miss"), TYPED)
def test_every_typed_method_sees_the_context_as_it_is_at_each_call(
    typed_provider: StagelessProvider, method: str, hit: Any, miss: Any
) -> None:
    resolve = getattr(typed_provider, method)
    attributes: dict[str, Any] = {"plan": "pro"}
    context = EvaluationContext("user-1", attributes)
    first = resolve(method, miss, context)
    assert (first.value, first.variant, first.reason) == (hit, "hit", Reason.TARGETING_MATCH)
    assert attributes == {"plan": "pro"}  # targetingKey was added to a copy only

    attributes["plan"] = "free"  # the same objects, mutated between calls
    assert resolve(method, miss, context).variant == "miss"
    assert attributes == {"plan": "free"}
    attributes["plan"] = "pro"
    context.targeting_key = "user-2"
    assert resolve(method, miss, context).variant == "miss"
    context.targeting_key = "user-1"
    assert resolve(method, miss, context).variant == "hit"
    assert resolve(method, miss, None).variant == "miss"


@pytest.mark.parametrize(("method", "hit", "miss"), TYPED)
def test_the_targeting_key_wins_over_an_attribute_of_that_name(
    typed_provider: StagelessProvider, method: str, hit: Any, miss: Any
) -> None:
    resolve = getattr(typed_provider, method)
    overridden = EvaluationContext("user-1", {"targetingKey": "user-2", "plan": "pro"})
    assert resolve(method, miss, overridden).value == hit
    assert overridden.attributes["targetingKey"] == "user-2"
    as_attribute = EvaluationContext(None, {"targetingKey": "user-1", "plan": "pro"})
    assert resolve(method, miss, as_attribute).value == hit
    ignored = EvaluationContext("user-2", {"targetingKey": "user-1", "plan": "pro"})
    assert resolve(method, miss, ignored).value == miss


@pytest.mark.parametrize("key", ["user-1", None])
def test_attributes_may_be_any_mapping(typed_provider: StagelessProvider, key: str | None) -> None:
    attributes = MappingProxyType({"plan": "pro", "targetingKey": "user-1"})
    details = typed_provider.resolve_string_details(
        "resolve_string_details", "none", EvaluationContext(key, attributes)
    )
    assert (details.value, details.reason) == ("gold", Reason.TARGETING_MATCH)


def test_a_reused_context_object_mutated_between_client_calls(
    typed_provider: StagelessProvider, openfeature_api: None
) -> None:
    api.set_provider_and_wait(typed_provider)
    client = api.get_client()
    attributes: dict[str, Any] = {}
    context = EvaluationContext("user-1", attributes)
    answers = []
    for plan in ("pro", "free", "pro"):
        attributes["plan"] = plan
        answers.append(client.get_string_value("resolve_string_details", "none", context))
    assert answers == ["gold", "plain", "gold"]
    assert attributes == {"plan": "pro"}
