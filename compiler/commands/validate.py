"""``flowc validate FLOW...``: parse and check every flow, report every invalid one (exit 1)."""

from __future__ import annotations

import sys

import click

from flowc.compiler.cli import user_errors
from flowc.compiler.commands.common import flow_options, load_ir


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
) -> None:
    """Parse and check FLOW files (all of them); no output is written."""
    from flowc.compiler.api import check_targets
    from flowc.compiler.errors import FlowcError
    from flowc.compiler.trust import no_imports

    bad = 0
    for flow in flows:
        try:
            with no_imports(no_import):
                ir = load_ir(flow, env, params, sets, stack)
                check_targets(ir, targets, warn=lambda text: click.echo(text, err=True))
        except FlowcError as e:
            bad += 1
            click.echo(e.render(), err=True)
            continue
        if not quiet:
            click.echo(f"{flow}: ok ({len(ir.steps)} steps)")
    if bad:
        click.echo(f"{bad} of {len(flows)} flow(s) invalid", err=True)
        sys.exit(1)
