"""The ``stageless`` command."""

from __future__ import annotations

import click

from stageless import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="stageless")
def main() -> None:
    """Stageless: test software in production, safely."""


def _register() -> None:
    # Subcommands live in their own modules; importing them here keeps `main` the one entry point.
    from stageless.cli import admin, analyze, demo, flags, serve

    main.add_command(flags.flags)
    main.add_command(demo.demo)
    main.add_command(analyze.analyze)
    main.add_command(serve.serve)
    main.add_command(admin.tokens)
    main.add_command(admin.audit)


_register()

__all__ = ["main"]
