"""The built-in source: the proxy's JSON-lines batch file, followed as it grows."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stageless.analysis.batch import Batch, Version
from stageless.metrics import BatchFile, MetricSource, SourceError
from tests.metrics.factories import batch


def line(b: Batch) -> str:
    return json.dumps(b.to_json()) + "\n"


def test_a_batch_file_is_a_metric_source(tmp_path: Path) -> None:
    assert isinstance(BatchFile(tmp_path / "b.jsonl"), MetricSource)


def test_batches_round_trip_and_are_filtered_by_service_route_and_window(tmp_path: Path) -> None:
    path = tmp_path / "batches.jsonl"
    wanted = [batch(ts=1_000.0, version=Version.STABLE), batch(ts=1_000.0), batch(ts=1_010.0)]
    others = [batch(ts=1_010.0, service="search"), batch(ts=1_010.0, route="/other")]
    outside = [batch(ts=990.0), batch(ts=1_020.0)]
    path.write_text("".join(line(b) for b in [outside[0], *others, *wanted, outside[1]]))
    got = BatchFile(path).fetch_batches("checkout", "/api", 1_000.0, 1_020.0)
    assert got == wanted


def test_the_file_is_followed_as_it_grows_and_a_partial_line_waits(tmp_path: Path) -> None:
    path = tmp_path / "batches.jsonl"
    first, second = batch(ts=1_010.0), batch(ts=1_020.0)
    path.write_text(line(first))
    source = BatchFile(path)
    assert source.fetch_batches("checkout", "/api", 0, 2_000) == [first]
    text = line(second)
    with path.open("a") as f:
        f.write(text[:40])  # the proxy is in the middle of writing
    assert source.fetch_batches("checkout", "/api", 0, 2_000) == [first]
    with path.open("a") as f:
        f.write(text[40:])
    assert source.fetch_batches("checkout", "/api", 0, 2_000) == [first, second]


def test_a_bad_line_is_named_by_number_with_the_field(tmp_path: Path) -> None:
    path = tmp_path / "batches.jsonl"
    bad = batch(errors=0, client_errors=0).to_json() | {"requests": -1}
    path.write_text(line(batch()) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(SourceError) as info:
        BatchFile(path).fetch_batches("checkout", "/api", 0, 2_000)
    assert str(info.value) == (
        f"{path}: line 3: requests: -1 is not a count; expected a whole number >= 0"
    )


def test_a_line_that_is_not_json_is_named(tmp_path: Path) -> None:
    path = tmp_path / "batches.jsonl"
    path.write_text(line(batch()) + "{oops\n")
    with pytest.raises(SourceError, match=r"line 2: not JSON \("):
        BatchFile(path).fetch_batches("checkout", "/api", 0, 2_000)


def test_many_bad_lines_are_summarised(tmp_path: Path) -> None:
    path = tmp_path / "batches.jsonl"
    path.write_text("[]\n" * 5)
    with pytest.raises(SourceError) as info:
        BatchFile(path).fetch_batches("checkout", "/api", 0, 2_000)
    assert str(info.value).endswith("(and 2 more bad lines)")
    assert "line 1: expected a JSON object, got list" in str(info.value)


def test_a_missing_file_is_a_readable_reason(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such file"):
        BatchFile(tmp_path / "absent.jsonl").fetch_batches("checkout", "/api", 0, 2_000)


def test_a_truncated_file_is_read_again_from_the_start(tmp_path: Path) -> None:
    path = tmp_path / "batches.jsonl"
    path.write_text(line(batch(ts=1_010.0)) + line(batch(ts=1_020.0)))
    source = BatchFile(path)
    assert len(source.fetch_batches("checkout", "/api", 0, 2_000)) == 2
    path.write_text(line(batch(ts=1_030.0)))  # rotated: shorter than what was read
    assert source.fetch_batches("checkout", "/api", 0, 2_000) == [batch(ts=1_030.0)]


timestamps = st.lists(st.integers(0, 100).map(float), max_size=30)


@given(timestamps, st.integers(0, 30), st.floats(0, 100), st.floats(0, 100))
def test_followed_in_pieces_equals_read_at_once(
    times: list[float], cut: int, start: float, end: float
) -> None:
    batches = [batch(ts=t, requests=10 + i) for i, t in enumerate(times)]
    text = "".join(line(b) for b in batches)
    at = min(len(text), cut * 97)  # anywhere, mid-line included
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "b.jsonl"
        path.write_text(text[:at])
        source = BatchFile(path)
        source.fetch_batches("checkout", "/api", start, end)
        with path.open("a") as f:
            f.write(text[at:])
        got = source.fetch_batches("checkout", "/api", start, end)
    expected = sorted((b for b in batches if start <= b.ts < end), key=lambda b: b.ts)
    assert got == expected
