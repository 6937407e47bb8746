"""OFREP single-flag evaluation through the PyPI ``openfeature-provider-ofrep`` client.

The real client, through the real OpenFeature SDK, against a real ``stageless serve`` on a
loopback port: typed reads of each flag type, targeting, metadata, and the errors a client
sees (unknown flag, bad token, a token bound to another flag set, a rule that fails).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason

from tests.api.ofrep_server import OfrepServer, ofrep_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OfrepServer]:
    with ofrep_server(tmp_path_factory.mktemp("ofrep-python")) as running:
        yield running


def client_for(server: OfrepServer, token: str, domain: str) -> OpenFeatureClient:
    provider = OFREPProvider(
        server.url, headers_factory=lambda: {"Authorization": f"Bearer {token}"}
    )
    api.set_provider(provider, domain)
    return api.get_client(domain)


@pytest.fixture
def client(server: OfrepServer) -> Iterator[OpenFeatureClient]:
    yield client_for(server, server.tokens["sdk"], "ofrep-sdk")
    api.clear_providers()


def test_boolean_flag_follows_targeting(client: OpenFeatureClient) -> None:
    staff = EvaluationContext("user-1", {"email": "ann@example.com"})
    guest = EvaluationContext("user-2", {"email": "bob@elsewhere.org"})

    matched = client.get_boolean_details("new-checkout", False, staff)
    default = client.get_boolean_details("new-checkout", True, guest)

    assert (matched.value, matched.variant, matched.reason) == (True, "on", Reason.TARGETING_MATCH)
    assert (default.value, default.variant, default.reason) == (False, "off", Reason.DEFAULT)
    assert matched.error_code is None


def test_string_number_and_object_flags_with_metadata(client: OpenFeatureClient) -> None:
    headline = client.get_string_details("headline", "fallback")
    discount = client.get_float_details("discount", 0.0)
    max_items = client.get_integer_details("max-items", 1)
    theme = client.get_object_details("theme", {})

    assert (headline.value, headline.reason) == ("Hello", Reason.STATIC)
    assert discount.value == pytest.approx(0.15)
    assert max_items.value == 30
    assert theme.value == {"background": "#fff", "accent": ["blue", "teal"]}
    assert theme.flag_metadata == {"flagSetId": "web", "team": "growth", "owner": "design"}


def test_unknown_flag_is_flag_not_found_with_the_default(client: OpenFeatureClient) -> None:
    details = client.get_string_details("no-such-flag", "fallback")

    assert details.value == "fallback"
    assert details.reason == Reason.ERROR
    assert details.error_code == ErrorCode.FLAG_NOT_FOUND
    assert "no-such-flag" in (details.error_message or "")


def test_type_is_checked_by_the_client(client: OpenFeatureClient) -> None:
    details = client.get_boolean_details("headline", False)

    assert (details.value, details.error_code) == (False, ErrorCode.TYPE_MISMATCH)


def test_a_failing_rule_is_a_general_error_naming_the_variant(client: OpenFeatureClient) -> None:
    details = client.get_string_details("broken", "fallback")

    assert (details.value, details.error_code) == ("fallback", ErrorCode.GENERAL)
    assert "'c'" in (details.error_message or "")


def test_bad_token_gives_defaults_and_an_error(server: OfrepServer) -> None:
    client = client_for(server, "stl_not-a-token", "ofrep-bad")
    try:
        details = client.get_boolean_details("new-checkout", True)
    finally:
        api.clear_providers()

    assert details.value is True
    assert details.reason == Reason.ERROR
    assert details.error_code == ErrorCode.GENERAL
    assert details.error_message == "unauthorized"


def test_token_bound_to_another_flag_set_sees_none_of_these_flags(server: OfrepServer) -> None:
    token = server.tokens["other"]  # bound to flag set "other", which does not exist
    client = client_for(server, token, "ofrep-other")
    provider = OFREPProvider(
        server.url,
        headers_factory=lambda: {"Authorization": f"Bearer {token}", "X-Stageless-Flag-Set": "web"},
    )
    api.set_provider(provider, "ofrep-other-names-web")
    try:
        own = client.get_string_details("headline", "fallback")
        named = api.get_client("ofrep-other-names-web").get_string_details("headline", "fallback")
    finally:
        api.clear_providers()

    assert (own.value, own.error_code) == ("fallback", ErrorCode.FLAG_NOT_FOUND)
    assert own.error_message == "flag set 'other' does not exist"
    assert (named.value, named.error_message) == ("fallback", "forbidden")


def test_read_token_evaluates_the_set_it_names(server: OfrepServer) -> None:
    token = server.tokens["read"]
    provider = OFREPProvider(
        server.url,
        headers_factory=lambda: {
            "Authorization": f"Bearer {token}",
            "X-Stageless-Flag-Set": "web",
        },
    )
    api.set_provider(provider, "ofrep-read")
    try:
        details = api.get_client("ofrep-read").get_string_details("headline", "fallback")
    finally:
        api.clear_providers()

    assert (details.value, details.variant) == ("Hello", "short")


def test_flag_without_a_value_gives_the_code_default(client: OpenFeatureClient) -> None:
    # OFREP omits value and variant here (ADR-0006). openfeature-provider-ofrep 0.3.0 reads
    # "variant" unconditionally and reports a GENERAL error; either way the default applies.
    details = client.get_boolean_details("retired", True)

    assert details.value is True
    assert details.variant is None
