"""``stageless proxy --config FILE``: run the data plane (see docs/proxy.md)."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from stageless.errors import UpstreamError, ValidationError


@click.command()
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The proxy's YAML configuration (docs/proxy.md).",
)
@click.option("--check", is_flag=True, help="Validate the configuration and exit.")
def proxy(config_path: Path, check: bool) -> None:
    """Run the reverse proxy: canary splits, tester routing, shadowing, metrics."""
    from stageless.proxy.config import load_config

    try:
        config = load_config(config_path)
    except ValidationError as exc:
        click.echo(f"error: {config_path} is not a valid proxy configuration:", err=True)
        for issue in exc.issues:
            click.echo(f"  {issue}", err=True)
        raise SystemExit(2) from exc
    if check:
        source = config.control_plane
        if source is not None:
            click.echo(f"{config_path}: valid (proxy config {source.config!r} on {source.url})")
        else:
            click.echo(f"{config_path}: valid ({len(config.services)} services)")
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    import uvloop

    from stageless.proxy import native

    logging.getLogger("stageless.proxy").info("%s", native.status())

    from stageless.proxy.worker import tune_collector

    tune_collector()
    try:
        if config.workers == 1:
            from stageless.proxy.app import serve

            uvloop.run(serve(config_path))
        else:
            from stageless.proxy.supervisor import Supervisor

            uvloop.run(Supervisor(config, config_path).run())
    except UpstreamError as exc:  # no configuration from the control plane nor its cache
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(1) from exc


__all__ = ["proxy"]
