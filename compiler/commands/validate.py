"""``flowc validate FLOW...``: parse and check every flow, report every invalid one (exit 1)."""

from __future__ import annotations

import sys

import click

from flowc.compiler.cli import user_errors
from flowc.compiler.commands.common import flow_options, load_ir, output_format_option


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
    from flowc.compiler import render
    from flowc.compiler.api import check_targets
    from flowc.compiler.errors import FlowcError
    from flowc.compiler.trust import no_imports

    bad = 0
    found = []  # machine formats print every flow's diagnostics as one document at the end
    for flow in flows:
        try:
            with no_imports(no_import):
                ir = load_ir(flow, env, params, sets, stack)
                check_targets(ir, targets, warn=lambda text: click.echo(text, err=True))
        except FlowcError as e:
            bad += 1
            if output_format == "text":
                render.print_text(e.diagnostics)
            found += e.diagnostics
            continue
        if not quiet and output_format == "text":
            click.echo(f"{flow}: ok ({len(ir.steps)} steps)")
    if output_format != "text":
        render.emit(found, output_format)
    if bad:
        click.echo(f"{bad} of {len(flows)} flow(s) invalid", err=True)
        sys.exit(1)
