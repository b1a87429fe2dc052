"""``flowc import SOURCE [-o DIR] [--name N] [--strict]``: write a flowc flow from a dag-factory
YAML file, an Airflow DAG file or a KFP PipelineSpec YAML (docs/import.md).

The source kind is detected (``--from`` overrides). Warnings (constructs without a flowc
equivalent, also kept as comments in the flow) go to stderr as ``SOURCE:LINE: warning: ...``;
``--strict`` makes any warning exit 1 before anything is written. Every file is written only
after the whole import succeeded (no half-written output).
"""

from __future__ import annotations

import os
import sys

import click

from flowc.compiler.cli import user_errors


@click.command(name="import")
@click.argument("source", metavar="SOURCE")
@click.option(
    "-o",
    "--output-dir",
    "output_dir",
    default=".",
    help="Folder for the flow and its step modules.",
)
@click.option(
    "--name", default=None, help="Name of the flow (default: the DAG id / pipeline name)."
)
@click.option(
    "--from",
    "kind",
    type=click.Choice(["auto", "dag-factory", "airflow", "kfp"]),
    default="auto",
    help="The source's kind (auto: a .py file is an Airflow DAG, a PipelineSpec is KFP, other "
    "YAML is dag-factory).",
)
@click.option("--strict", is_flag=True, help="Exit 1 on any warning (nothing is written).")
@user_errors
def import_cmd(source: str, output_dir: str, name: str | None, kind: str, strict: bool) -> None:
    """Write a flowc flow (and step modules) from SOURCE: dag-factory YAML, an Airflow DAG file or
    a KFP PipelineSpec YAML."""
    from flowc.compiler.errors import FlowcError, Loc
    from flowc.compiler.importers import detect, flow_name
    from flowc.compiler.importers.run import import_source, write

    if not os.path.isfile(source):
        raise FlowcError.at(Loc(source, 1, 1), f"no such file: {source}")
    if name is not None and flow_name(name) != name:
        raise click.UsageError(
            f"--name {name!r}: a flow name is [a-z][a-z0-9_]* (e.g. {flow_name(name)})"
        )
    if kind == "auto":
        with open(source, encoding="utf-8", errors="replace") as fh:
            kind = detect(fh.read(), source)
    results = import_source(source, kind, name)
    warnings = [w for r in results for w in r.warnings]
    for w in dict.fromkeys(warnings):
        click.echo(w.render(), err=True)
    if strict and warnings:
        click.echo(
            f"flowc: error: {len(warnings)} warning(s) with --strict; nothing written", err=True
        )
        sys.exit(1)
    for path in write(results, output_dir, source):
        click.echo(f"wrote {path}")
