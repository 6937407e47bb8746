"""docs/analysis.md stays true: the example prints what the page shows; every setting is listed."""

from __future__ import annotations

import contextlib
import io
import re
from dataclasses import fields
from pathlib import Path

from stageless.analysis import JudgeConfig
from stageless.cli.analyze import CSV_COLUMNS, EXIT_STATUS

DOC = (Path(__file__).resolve().parents[2] / "docs" / "analysis.md").read_text()


def test_the_streaming_example_runs_and_prints_what_the_page_shows() -> None:
    section = DOC[DOC.index("## Streaming API") :]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    shown = re.search(r"prints\n\n```text\n(.*?)```", section, re.DOTALL)
    assert code is not None
    assert shown is not None
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code.group(1), "docs/analysis.md", "exec"), {})  # noqa: S102 - the page's own example
    assert out.getvalue() == shown.group(1)


def test_every_setting_is_documented() -> None:
    table = DOC[DOC.index("## Settings") : DOC.index("## The comparison judges")]
    documented = set(re.findall(r"^\| `(\w+)`", table, re.MULTILINE))
    documented |= {"route"}  # listed together with `service`
    assert {f.name for f in fields(JudgeConfig)} <= documented


def test_the_cli_section_lists_the_csv_columns_and_the_exit_statuses() -> None:
    cli = DOC[DOC.index("## `stageless analyze FILE`") :]
    assert ", ".join(CSV_COLUMNS) in " ".join(cli.split())
    for verdict, status in EXIT_STATUS.items():
        assert f"{status} {verdict}" in cli
