"""The tester tokens a data plane may honour: only those that verify for the service with the
configured keys and have not expired, at most MAX_TOKENS (those expiring last); a missing key
variable, a short secret or an unreadable file is a DriverError naming the setting."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from stageless.analysis.batch import TrafficClass
from stageless.drivers.base import DriverError
from stageless.drivers.testers import MAX_TOKENS, current_tokens
from stageless.rollout.dataplanes import SigningKeyRef, TesterTokens
from stageless.routing.tokens import SigningKey, issue_token
from tests.drivers.dataplane import ENVIRON, SECRET, tokens_file


def settings(path: Path) -> TesterTokens:
    return TesterTokens(
        tokens_file=str(path),
        signing_keys=(SigningKeyRef(id="k1", secret_env="SHOP_KEY"),),  # noqa: S106 - a name
    )


def test_only_valid_unexpired_tokens_for_the_service_pass(tmp_path: Path) -> None:
    now = time.time()
    tokens = tokens_file(tmp_path, now)
    assert current_tokens(settings(tokens.file), "shop", now, ENVIRON) == (tokens.valid,)
    assert current_tokens(settings(tokens.file), "cart", now, ENVIRON) == (tokens.other_service,)
    assert current_tokens(settings(tokens.file), "shop", now + 7200, ENVIRON) == ()


def test_at_most_max_tokens_pass_those_expiring_last(tmp_path: Path) -> None:
    now = time.time()
    key = SigningKey("k1", SECRET.encode())
    made = [
        issue_token(
            key,
            service="shop",
            traffic_class=TrafficClass.TESTER,
            subject=f"t{i}",
            ttl_s=600 + i,
            now=now,
        )
        for i in range(MAX_TOKENS + 5)
    ]
    (tmp_path / "tokens").write_text("\n".join(made))
    kept = current_tokens(settings(tmp_path / "tokens"), "shop", now, ENVIRON)
    assert len(kept) == MAX_TOKENS
    assert set(kept) == set(made[5:])


def test_problems_name_the_setting(tmp_path: Path) -> None:
    tokens = tokens_file(tmp_path, time.time())
    with pytest.raises(DriverError, match=r"SHOP_KEY .* is not set"):
        current_tokens(settings(tokens.file), "shop", time.time(), {})
    with pytest.raises(DriverError, match=r"holds 5 bytes; expected at least 32"):
        current_tokens(settings(tokens.file), "shop", time.time(), {"SHOP_KEY": "short"})
    with pytest.raises(DriverError, match=r"testers\.tokens_file: cannot read"):
        current_tokens(settings(tmp_path / "missing"), "shop", time.time(), ENVIRON)
