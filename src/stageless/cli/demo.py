"""``stageless demo``: the whole story on loopback."""

from __future__ import annotations

import click


@click.command()
def demo() -> None:
    """Show Stageless at work."""
