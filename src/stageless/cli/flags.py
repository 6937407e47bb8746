"""``stageless flags``: validate and evaluate flag documents."""

from __future__ import annotations

import click


@click.group()
def flags() -> None:
    """Work with flagd-compatible flag documents."""
