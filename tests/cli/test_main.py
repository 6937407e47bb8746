"""The ``stageless`` group: every registered command resolves, and commands load lazily."""

from __future__ import annotations

import subprocess
import sys

import click
from click.testing import CliRunner

from stageless.cli import COMMANDS, main


def test_every_registered_command_resolves_to_a_click_command() -> None:
    ctx = click.Context(main)
    for name in COMMANDS:
        command = main.get_command(ctx, name)
        assert isinstance(command, click.Command), name
        assert command.name == name


def test_help_lists_every_command() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert f"  {name} " in result.output


def test_an_unknown_command_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["no-such-command"])
    assert result.exit_code == 2
    assert "No such command 'no-such-command'" in result.output


def test_serve_does_not_load_the_analysis_stack() -> None:
    # `stageless serve` starts in well under a second because SciPy is only loaded by `analyze`.
    code = (
        "import sys; from stageless.cli import main; import click;"
        "main.get_command(click.Context(main), 'serve');"
        "print('scipy' in sys.modules, 'stageless.cli.serve' in sys.modules)"
    )
    out = subprocess.run(  # noqa: S603 (our own interpreter, fixed arguments)
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["False", "True"]
