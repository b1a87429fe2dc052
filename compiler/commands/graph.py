"""``flowc graph FLOW [--format mermaid|dot]``: the DAG as text."""

from __future__ import annotations

import click

from flowc.compiler.cli import user_errors
from flowc.compiler.commands.common import flow_options, load_ir


@click.command()
@click.argument("flow")
@click.option(
    "--format", "fmt", type=click.Choice(["mermaid", "dot"]), default="mermaid", show_default=True
)
@flow_options
@user_errors
def graph(
    flow: str,
    fmt: str,
    env: str | None,
    params: dict[str, str],
    sets: dict[str, str],
    stack: str | None,
) -> None:
    """Print the DAG of FLOW (Mermaid or Graphviz dot)."""
    from flowc.compiler.graphviz import render

    click.echo(render(load_ir(flow, env, params, sets, stack), fmt), nl=False)
