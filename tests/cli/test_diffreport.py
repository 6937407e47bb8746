"""`stageless diff show`: a report from a file or from a real loopback HTTP server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from stageless.cli import main
from stageless.diff import DiffCollector, DiffReport
from tests.diff.factories import json_response
from tests.ports import free_port


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")


def make_report(critical: bool = True) -> DiffReport:
    collector = DiffCollector()
    primary = json_response({"user": {"name": "Ann"}, "at": 1})
    for i in range(200):
        candidate = json_response({"user": {"name": "ann" if critical else "Ann"}, "at": 2})
        secondary = json_response({"user": {"name": "Ann"}, "at": 2})  # "at" is noise
        collector.record("GET /api/orders", primary, candidate, secondary, f"GET /api/orders/{i}")
    collector.record("GET /api/users", primary, primary, None, "GET /api/users/1")
    return collector.report()


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, ["diff", "show", *args])


def write(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "diff.json"
    path.write_text(json.dumps(data))
    return path


def test_a_critical_report_shows_the_reported_fields_and_exits_1(tmp_path: Path) -> None:
    result = invoke(str(write(tmp_path, make_report().to_json())))
    assert result.exit_code == 1, result.output
    out = result.output
    assert "GET /api/orders: 200 compared, 200 differing, noise measured on 200" in out
    assert "CRITICAL" in out
    assert "body.user.name" in out
    assert "PrimitiveDifference" in out
    assert 'GET /api/orders/0: "Ann" → "ann"' in out
    assert "body.at" not in out  # noise, hidden without --all
    assert "1 field below the noise filter (--all lists them)" in out
    assert "GET /api/users: 1 compared, 0 differing" in out
    assert "no differences" in out
    assert "relative > 20 % and absolute > 0.03 %" in out


def test_all_lists_the_fields_below_the_noise_filter(tmp_path: Path) -> None:
    result = invoke(str(write(tmp_path, make_report().to_json())), "--all")
    assert result.exit_code == 1, result.output
    assert "body.at" in result.output
    assert "below the noise filter" not in result.output
    lines = result.output.splitlines()
    name_line = next(i for i, line in enumerate(lines) if "body.user.name" in line)
    at_line = next(i for i, line in enumerate(lines) if "body.at" in line)
    assert name_line < at_line  # reported fields first


def test_noise_measured_on_a_sample_shows_its_estimate(tmp_path: Path) -> None:
    collector = DiffCollector()
    primary = json_response({"at": 1})
    for i in range(100):
        candidate = json_response({"at": 2 if i % 2 else 1})
        secondary = json_response({"at": 2 if i % 4 == 0 else 1}) if i % 10 == 0 else None
        collector.record("GET /api/orders", primary, candidate, secondary, f"GET /o/{i}")
    result = invoke(str(write(tmp_path, collector.report().to_json())), "--all")
    out = result.output
    assert "100 compared, 50 differing, noise measured on 10" in out
    [row] = [line for line in out.splitlines() if "body.at" in line]
    assert " 50 │ 5 (≈50) │ " in row  # 5 of 10 sampled, so about 50 of 100
    assert result.exit_code == 0, out  # as noisy on stable: not reported


def test_several_kinds_show_their_counts(tmp_path: Path) -> None:
    data = make_report().to_json()
    data["endpoints"]["GET /api/orders"]["fields"]["body.user.name"]["kinds"] = {
        "PrimitiveDifference": 1500,
        "MissingField": 50,
    }
    result = invoke(str(write(tmp_path, data)))
    assert "PrimitiveDifference ×1,500, MissingField ×50" in result.output


def test_a_report_with_nothing_critical_exits_0(tmp_path: Path) -> None:
    result = invoke(str(write(tmp_path, make_report(critical=False).to_json())))
    assert result.exit_code == 0, result.output
    assert "CRITICAL" not in result.output
    assert "— ok" in result.output


def test_an_empty_report(tmp_path: Path) -> None:
    result = invoke(str(write(tmp_path, DiffCollector().report().to_json())))
    assert result.exit_code == 0
    assert "No requests compared yet." in result.output


def test_an_unreadable_file_exits_2(tmp_path: Path) -> None:
    result = invoke(str(tmp_path / "missing.json"))
    assert result.exit_code == 2
    assert "error: cannot read" in result.output
    assert "No such file or directory" in result.output


def test_a_file_that_is_not_json_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "diff.json"
    path.write_text("{nope")
    result = invoke(str(path))
    assert result.exit_code == 2
    assert "is not JSON" in result.output


def test_an_invalid_report_names_the_path(tmp_path: Path) -> None:
    data = make_report().to_json()
    data["endpoints"]["GET /api/orders"]["total"] = "many"
    result = invoke(str(write(tmp_path, data)))
    assert result.exit_code == 2
    assert (
        "endpoints['GET /api/orders'].total: expected an integer >= 0, got 'many'" in result.output
    )


def test_file_and_url_together_are_a_usage_error(tmp_path: Path) -> None:
    result = invoke(str(write(tmp_path, {})), "--url", "http://127.0.0.1:1/diff")
    assert result.exit_code == 2
    assert "give FILE or --url, not both" in result.output


class _Admin(BaseHTTPRequestHandler):
    body: bytes = b""
    status: int = 200

    def do_GET(self) -> None:
        if self.path != "/diff":
            self.send_error(404)
            return
        self.send_response(self.status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass


@pytest.fixture
def admin() -> Iterator[tuple[str, type[_Admin]]]:
    handler = type("Admin", (_Admin,), {})
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_url_reads_the_report_a_server_serves(admin: tuple[str, type[_Admin]]) -> None:
    base, handler = admin
    handler.body = json.dumps(make_report().to_json()).encode()
    result = invoke("--url", f"{base}/diff")
    assert result.exit_code == 1, result.output
    assert "body.user.name" in result.output


def test_url_answering_an_error_exits_2(admin: tuple[str, type[_Admin]]) -> None:
    base, handler = admin
    handler.status = 503
    handler.body = b"{}"
    result = invoke("--url", f"{base}/diff")
    assert result.exit_code == 2
    assert "answered 503, expected 200" in result.output


def test_url_answering_something_else_than_json_exits_2(admin: tuple[str, type[_Admin]]) -> None:
    base, handler = admin
    handler.body = b"<html>"
    result = invoke("--url", f"{base}/diff")
    assert result.exit_code == 2
    assert "did not answer JSON" in result.output


def test_an_unreachable_url_exits_2() -> None:
    result = invoke("--url", f"http://127.0.0.1:{free_port()}/diff", "--timeout", "2")
    assert result.exit_code == 2
    assert "error: cannot reach" in result.output
