"""stageless.testing: flags from plain mappings and overrides in a with-block."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
from openfeature import api
from openfeature.exception import ErrorCode as OFErrorCode

from stageless.flags import ErrorCode, FlagType, Reason, parse_flag_set
from stageless.sdk import StagelessProvider
from stageless.testing import (
    OverriddenFlags,
    flag_overrides,
    flag_set_from_dict,
    provider_from_dict,
)

VALUES = {"new-checkout": False, "theme": "light", "max-items": 10, "limits": {"rpm": 60}}


@pytest.fixture
def provider() -> StagelessProvider:
    return provider_from_dict(VALUES)


@pytest.fixture
def openfeature_api() -> Iterator[None]:
    api.shutdown()
    yield
    api.shutdown()


def value(provider: StagelessProvider, key: str) -> object:
    return provider.evaluate(key).value


def test_flag_set_from_dict_resolves_each_value_statically() -> None:
    flags = flag_set_from_dict(VALUES)
    assert sorted(flags.keys()) == sorted(VALUES)
    for key, expected in VALUES.items():
        resolution = flags.evaluate(key)
        assert (resolution.value, resolution.reason) == (expected, Reason.STATIC)
    assert flags.evaluate("new-checkout").variant == "off"
    assert flags.evaluate("theme").variant == "light"
    assert flags.evaluate("max-items").variant == "value"


def test_provider_from_dict_works_through_openfeature(openfeature_api: None) -> None:
    api.set_provider_and_wait(provider_from_dict(VALUES))
    client = api.get_client()
    assert client.get_string_value("theme", "x") == "light"
    assert client.get_integer_value("max-items", 0) == 10
    assert client.get_object_value("limits", {}) == {"rpm": 60}


def test_override_by_value_and_restore(provider: StagelessProvider) -> None:
    with flag_overrides(provider, {"new-checkout": True, "max-items": 99}) as overridden:
        assert overridden is provider
        resolution = provider.evaluate("new-checkout", None, FlagType.BOOLEAN)
        assert (resolution.value, resolution.variant, resolution.reason) == (
            True,
            "on",
            Reason.STATIC,
        )
        assert value(provider, "max-items") == 99
        assert value(provider, "theme") == "light"  # untouched
    assert value(provider, "new-checkout") is False
    assert value(provider, "max-items") == 10
    assert provider._interceptor is None  # the fast path is back


def test_override_by_variant_name() -> None:
    flags = parse_flag_set(
        {
            "flags": {
                "color": {
                    "state": "ENABLED",
                    "variants": {"blue": "#00f", "red": "#f00"},
                    "defaultVariant": "blue",
                }
            }
        }
    )
    provider = StagelessProvider.from_flag_set(flags)
    with flag_overrides(provider, {"color": "red"}):
        resolution = provider.evaluate("color")
        assert (resolution.value, resolution.variant) == ("#f00", "red")
    with flag_overrides(provider, {"color": "#123"}):
        resolution = provider.evaluate("color")
        assert (resolution.value, resolution.variant) == ("#123", None)


def test_overriding_a_flag_that_does_not_exist(provider: StagelessProvider) -> None:
    assert provider.evaluate("brand-new").error_code is ErrorCode.FLAG_NOT_FOUND
    with flag_overrides(provider, {"brand-new": "yes"}):
        resolution = provider.evaluate("brand-new", None, FlagType.STRING)
        assert (resolution.value, resolution.error_code) == ("yes", None)


def test_an_override_of_the_wrong_type_is_a_type_mismatch(openfeature_api: None) -> None:
    provider = provider_from_dict(VALUES)
    api.set_provider_and_wait(provider)
    client = api.get_client()
    with flag_overrides(provider, {"new-checkout": "maybe"}):
        details = client.get_boolean_details("new-checkout", False)
        assert (details.value, details.error_code) == (False, OFErrorCode.TYPE_MISMATCH)


def test_float_calls_accept_whole_number_overrides(provider: StagelessProvider) -> None:
    with flag_overrides(provider, {"ratio": 1}):
        resolution = provider.evaluate("ratio", None, FlagType.FLOAT)
        assert resolution.value == 1.0
        assert type(resolution.value) is float


def test_blocks_nest_and_the_innermost_wins(provider: StagelessProvider) -> None:
    with flag_overrides(provider, {"theme": "dark", "max-items": 1}):
        with flag_overrides(provider, {"theme": "blue"}):
            assert value(provider, "theme") == "blue"
            assert value(provider, "max-items") == 1
        assert value(provider, "theme") == "dark"
    assert value(provider, "theme") == "light"


def test_overrides_are_restored_after_an_exception(provider: StagelessProvider) -> None:
    with pytest.raises(RuntimeError), flag_overrides(provider, {"theme": "dark"}):
        raise RuntimeError("boom")
    assert value(provider, "theme") == "light"
    assert provider._interceptor is None


def test_provider_scope_is_seen_by_other_threads(provider: StagelessProvider) -> None:
    seen: list[object] = []
    with flag_overrides(provider, {"theme": "dark"}):
        thread = threading.Thread(target=lambda: seen.append(value(provider, "theme")))
        thread.start()
        thread.join()
    assert seen == ["dark"]


def test_context_scope_is_private_to_the_current_context(provider: StagelessProvider) -> None:
    seen: list[object] = []
    with flag_overrides(provider, {"theme": "dark"}, scope="context"):
        assert value(provider, "theme") == "dark"
        thread = threading.Thread(target=lambda: seen.append(value(provider, "theme")))
        thread.start()
        thread.join()
    assert seen == ["light"]
    assert value(provider, "theme") == "light"


def test_context_scope_wins_over_provider_scope(provider: StagelessProvider) -> None:
    with (
        flag_overrides(provider, {"theme": "dark"}, scope="context"),
        flag_overrides(provider, {"theme": "blue"}),
    ):
        assert value(provider, "theme") == "dark"


async def test_context_scope_isolates_concurrent_tasks(provider: StagelessProvider) -> None:
    async def run(theme: str) -> object:
        with flag_overrides(provider, {"theme": theme}, scope="context"):
            await asyncio.sleep(0)  # let the other task enter its own block
            return value(provider, "theme")

    assert list(await asyncio.gather(run("dark"), run("blue"))) == ["dark", "blue"]
    assert value(provider, "theme") == "light"


def test_overrides_survive_a_reload(provider: StagelessProvider) -> None:
    with flag_overrides(provider, {"theme": "dark"}):
        provider.flags_loaded(
            flag_set_from_dict({"theme": "green", "extra": True}), ["theme", "extra"]
        )
        assert value(provider, "theme") == "dark"
        assert value(provider, "extra") is True
    assert value(provider, "theme") == "green"


def test_flag_set_target_yields_an_overridden_view() -> None:
    flags = flag_set_from_dict(VALUES)
    with flag_overrides(flags, {"theme": "dark", "brand-new": 1}) as view:
        assert isinstance(view, OverriddenFlags)
        assert view.evaluate("theme").value == "dark"
        assert view.evaluate("max-items").value == 10
        assert view.evaluate_all()["brand-new"].value == 1
        with flag_overrides(view, {"theme": "blue"}) as inner:
            assert inner.evaluate("theme").value == "blue"
        assert view.evaluate("theme").value == "dark"
    assert flags.evaluate("theme").value == "light"
