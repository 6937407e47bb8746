"""Secrets redacted from proxy-config documents before they reach the audit log (pure)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from stageless.store.documents import REDACTED_PREFIX, compute_etag, fingerprint, redact_secrets

_KEYS = st.sampled_from(["secret", "id", "secret_env", "services", "x"])
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_KEYS, children, max_size=4),
    max_leaves=20,
)


def _secrets(value: Any) -> list[str]:
    if isinstance(value, dict):
        found = [v for k, v in value.items() if k == "secret" and isinstance(v, str)]
        return found + [s for v in value.values() for s in _secrets(v)]
    if isinstance(value, list):
        return [s for item in value for s in _secrets(item)]
    return []


def _shape(value: Any) -> Any:
    """``value`` with every string under a "secret" key blanked."""
    if isinstance(value, dict):
        return {
            k: "" if k == "secret" and isinstance(v, str) else _shape(v) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_shape(item) for item in value]
    return value


@given(_JSON)
def test_redaction_replaces_every_secret_and_nothing_else(document: Any) -> None:
    redacted = json.loads(redact_secrets(json.dumps(document)))
    assert _shape(redacted) == _shape(document)
    for secret, shown in zip(_secrets(document), _secrets(redacted), strict=True):
        assert shown == fingerprint(secret)
        assert shown.startswith(REDACTED_PREFIX)


def test_a_signing_key_is_redacted_and_text_that_is_not_json_is_kept() -> None:
    document = '{"signing_keys": [{"id": "k1", "secret": "0123456789abcdef0123456789abcdef"}]}'
    assert "0123456789abcdef0123456789abcdef" not in redact_secrets(document)
    assert '"id":"k1"' in redact_secrets(document)
    assert redact_secrets("not json {") == "not json {"


def test_etags_differ_with_name_version_or_document() -> None:
    base = compute_etag("edge", 1, "{}")
    assert len(base) == 32
    assert base not in {compute_etag("edge2", 1, "{}"), compute_etag("edge", 2, "{}")}
    assert base != compute_etag("edge", 1, "{ }")
