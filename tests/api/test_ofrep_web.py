"""OFREP bulk evaluation, 304 and eventStreams through ``@openfeature/ofrep-web-provider``.

The npm provider and ``@openfeature/web-sdk`` run under the machine's Node.js
(``tests/api/js/web_provider.mjs``) against a real server on a loopback port. Node and npm are
required: a missing one fails the test (it is not skipped). ``npm ci`` installs the locked
packages into tests/api/js/node_modules when they are missing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.ofrep_server import DOCUMENT, FLAG_SET, OfrepServer, document_with, ofrep_server

JS_DIR = Path(__file__).parent / "js"
SCRIPT = JS_DIR / "web_provider.mjs"
DEFAULTS: dict[str, Any] = {
    "new-checkout": False,
    "headline": "fallback",
    "discount": 0,
    "max-items": 0,
    "theme": {},
    "retired": True,
    "broken": "fallback",
}


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: the OFREP web-provider test needs Node.js and npm")
    return path


def ensure_node_modules() -> None:
    """``npm ci`` once: installs exactly the lockfile's packages (idempotent)."""
    if (JS_DIR / "node_modules" / "@openfeature" / "ofrep-web-provider").is_dir():
        return
    completed = subprocess.run(  # noqa: S603  # a fixed command
        [tool("npm"), "ci", "--no-audit", "--no-fund"],
        cwd=JS_DIR,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, f"npm ci failed:\n{completed.stdout}\n{completed.stderr}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OfrepServer]:
    with ofrep_server(tmp_path_factory.mktemp("ofrep-web")) as running:
        yield running


@pytest.fixture(scope="module")
def run(server: OfrepServer) -> dict[str, Any]:
    """Run the node script once; every test below reads its report."""
    node = tool("node")
    ensure_node_modules()
    config = {
        "baseUrl": server.url,
        "sdkToken": server.tokens["sdk"],
        "adminToken": server.tokens["admin"],
        "flagSet": FLAG_SET,
        "context": {"targetingKey": "user-1", "email": "ann@example.com"},
        "defaults": DEFAULTS,
        "changes": [
            document_with(headline="long"),
            document_with(headline="long", max_items="few"),
        ],
        "timeoutMs": 10_000,
    }
    completed = subprocess.run(  # noqa: S603  # node with our script and a JSON argument
        [node, str(SCRIPT), json.dumps(config)],
        cwd=JS_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = completed.stdout.strip().splitlines()
    assert lines, f"no output from node:\n{completed.stderr}"
    report: dict[str, Any] = json.loads(lines[-1])
    assert report["ok"], f"{report.get('error')}\n{completed.stderr}"
    assert completed.returncode == 0, completed.stderr
    return report


def test_initial_bulk_evaluation_through_the_web_provider(run: dict[str, Any]) -> None:
    [request] = run["initial"]["requests"]
    details = run["initial"]["details"]

    assert (request["url"], request["status"], request["ifNoneMatch"]) == (
        "/ofrep/v1/evaluate/flags",
        200,
        None,
    )
    assert request["etag"].startswith('"') and request["etag"].endswith('"')
    assert details["new-checkout"] == {
        "value": True,
        "variant": "on",
        "reason": "TARGETING_MATCH",
        "errorCode": None,
    }
    assert details["headline"]["value"] == "Hello"
    assert details["discount"]["value"] == pytest.approx(0.15)
    assert details["max-items"]["value"] == 30
    assert details["theme"]["value"] == DOCUMENT["flags"]["theme"]["variants"]["light"]


def test_disabled_flag_has_no_value_and_the_code_default_applies(run: dict[str, Any]) -> None:
    retired = run["initial"]["details"]["retired"]

    assert retired == {"value": True, "variant": None, "reason": "DISABLED", "errorCode": None}


def test_per_flag_failure_is_an_item_with_its_error_code(run: dict[str, Any]) -> None:
    broken = run["initial"]["details"]["broken"]

    assert (broken["value"], broken["reason"], broken["errorCode"]) == (
        "fallback",
        "ERROR",
        "GENERAL",
    )


def test_change_arrives_over_event_streams_as_configuration_changed(run: dict[str, Any]) -> None:
    change = run["change"]
    initial_etag = run["initial"]["requests"][0]["etag"]
    [refetch] = change["requests"]

    assert change["flagsChanged"] == ["headline"]
    assert change["details"]["headline"]["value"] == "Hello and welcome"
    # The refetch was triggered by the SSE message (it carries its etag) and was conditional.
    assert refetch["url"].startswith("/ofrep/v1/evaluate/flags?flagConfigEtag=")
    assert (refetch["ifNoneMatch"], refetch["status"]) == (initial_etag, 200)
    assert refetch["etag"] != initial_etag
    assert change["ms"] < 5000


def test_reload_revalidates_the_cache_with_304(run: dict[str, Any]) -> None:
    reload = run["reload"]
    [revalidation] = reload["requests"]

    assert revalidation["ifNoneMatch"] == run["change"]["requests"][0]["etag"]
    assert revalidation["status"] == 304
    assert reload["details"]["headline"] == {
        "value": "Hello and welcome",
        "variant": "long",
        "reason": "CACHED",
        "errorCode": None,
    }


def test_after_a_304_the_cached_stream_url_still_delivers_changes(run: dict[str, Any]) -> None:
    second = run["secondChange"]

    assert second["flagsChanged"] == ["max-items"]
    assert second["details"]["max-items"]["value"] == 3
    assert [r["status"] for r in second["requests"]] == [200]
