"""``flowc targets``: the targets registered in the ``flowc.targets`` entry point group (listed
without importing them)."""

from __future__ import annotations

import click


@click.command()
def targets() -> None:
    """List the registered targets as NAME  module:Class."""
    from flowc.compiler.registry import target_entry, target_names

    names = target_names()
    width = max((len(n) for n in names), default=0)
    for n in names:
        click.echo(f"{n.ljust(width)}  {target_entry(n).value}")
