"""The ``stageless`` command."""

from __future__ import annotations

import importlib

import click

from stageless import __version__

# Subcommand name -> "module:attribute". Modules are imported only when their command runs (or
# when help lists them), so `stageless serve` does not pay for SciPy, which `analyze` needs.
COMMANDS = {
    "flags": "stageless.cli.flags:flags",
    "demo": "stageless.cli.demo:demo",
    "analyze": "stageless.cli.analyze:analyze",
    "serve": "stageless.cli.serve:serve",
    "tokens": "stageless.cli.admin:tokens",
    "audit": "stageless.cli.admin:audit",
    "diff": "stageless.cli.diffreport:diff",
    "tester-token": "stageless.cli.tester_token:tester_token",
    "proxy": "stageless.cli.proxy:proxy",
    "proxy-config": "stageless.cli.proxyconfig:proxy_config",
    "rollout": "stageless.cli.rollout:rollout",
}


class LazyGroup(click.Group):
    """A click group that imports each subcommand's module on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *super().list_commands(ctx)})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module_name, attribute = target.split(":")
        command = getattr(importlib.import_module(module_name), attribute)
        assert isinstance(command, click.Command)  # noqa: S101 (a wiring bug, caught by tests)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="stageless")
def main() -> None:
    """Stageless: test software in production, safely."""


__all__ = ["COMMANDS", "main"]
