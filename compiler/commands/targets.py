"""``flowc targets``: the targets registered in the ``flowc.targets`` entry point group (listed
without importing them)."""

from __future__ import annotations

import click

from flowc.compiler.commands.common import json_option


@click.command()
@json_option
def targets(as_json: bool = False) -> None:
    """List the registered targets as NAME  module:Class."""
    from flowc.compiler.registry import target_entry, target_names

    names = target_names()
    if as_json:
        from flowc.compiler.commands.common import print_rows

        print_rows(["name", "class"], [[n, target_entry(n).value] for n in names], True)
        return
    width = max((len(n) for n in names), default=0)
    for n in names:
        click.echo(f"{n.ljust(width)}  {target_entry(n).value}")
