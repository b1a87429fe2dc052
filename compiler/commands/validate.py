"""``flowc validate FLOW...``: parse and check every flow, report every invalid one (exit 1).
The options are parsed here; the body is :mod:`flowc.compiler.commands.validate_core`."""

from __future__ import annotations

import sys

import click

from flowc.compiler.cli import user_errors
from flowc.compiler.commands.common import flow_options, output_format_option


@click.command()
@click.argument("flows", nargs=-1, required=True, metavar="FLOW...")
@flow_options
@click.option("-q", "--quiet", is_flag=True, help="Print nothing for valid flows.")
@click.option(
    "--no-import",
    "no_import",
    is_flag=True,
    help="Execute no code of the flow: read referenced modules' source instead (docs/trust.md).",
)
@click.option(
    "-t",
    "--target",
    "targets",
    multiple=True,
    help="Also check what this target cannot express (repeatable; default: the stack's).",
)
@output_format_option
@user_errors
def validate(
    flows: tuple[str, ...],
    env: str | None,
    params: dict[str, str],
    sets: dict[str, str],
    stack: str | None,
    quiet: bool,
    no_import: bool = False,
    targets: tuple[str, ...] = (),
    output_format: str = "text",
) -> None:
    """Parse and check FLOW files (all of them); no output is written."""
    from flowc.compiler.commands.validate_core import validate_flows

    status = validate_flows(
        flows, env, params, sets, stack, quiet, no_import, targets, output_format
    )
    if status:
        sys.exit(status)
