"""The docs keep up with the code: every page is reachable, every link resolves, every command
is documented."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import click

from stageless.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def command_paths(group: click.Group, prefix: str = "stageless") -> Iterator[str]:
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None
        path = f"{prefix} {name}"
        yield path
        if isinstance(command, click.Group):
            yield from command_paths(command, path)


def test_every_docs_page_is_linked_from_the_readme() -> None:
    linked = {Path(target).name for target in LINK.findall(README.read_text())}
    pages = {page.name for page in DOCS.glob("*.md")}
    assert pages <= linked, f"not linked from README.md: {sorted(pages - linked)}"


def test_every_relative_link_resolves() -> None:
    for page in [README, *DOCS.glob("*.md")]:
        for target in LINK.findall(page.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            assert (page.parent / target).exists(), f"{page.name} links to missing {target}"


def test_every_cli_command_is_documented() -> None:
    docs = "\n".join(page.read_text() for page in DOCS.glob("*.md"))
    paths = list(command_paths(main))
    assert len(paths) >= 6, paths  # the walk found the commands
    missing = [path for path in paths if path not in docs]
    assert not missing, f"commands with no mention in docs/: {missing}"


def test_the_readme_has_the_two_quickstart_commands() -> None:
    text = README.read_text()
    assert "scripts/main" in text
    assert "scripts/test" in text
    assert (ROOT / ".ci" / "run").read_text().rstrip().endswith("exec scripts/test")
