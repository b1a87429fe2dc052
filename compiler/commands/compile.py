"""``flowc compile``: flows -> target files, written atomically, or checked (``--check``).

- ``flowc compile FLOW... --target T [-o DIR]``: each flow's files go straight into DIR (two flows
  producing the same path is an error). Without ``-o``: the stack's Airflow ``dag_folder`` for
  the airflow target, else ``build/flowc/<target>``.
- ``flowc compile FLOW... --all -o DIR``: every target for every flow under
  ``DIR/<flow name>/<target>/``, plus ``DIR/manifest.json`` (target, path, sha256 of each file).
- ``--check``: compile in memory, write nothing; exit 1 with a unified diff per stale or missing
  file and the names of files this flow no longer produces.
- With neither ``--target`` nor ``--all``, the active stack's orchestrator picks the target.

A flow that fails is reported with its location and the others still compile (exit 1 at the end).
``--all`` writes one set, switched at once (:func:`~flowc.compiler.output.write_output_set`):
when any flow fails, nothing is written and the previous set (files and manifest) stays whole.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from flowc.compiler.cli import user_errors
from flowc.compiler.commands.common import flow_options, load_ir, output_format_option
from flowc.compiler.errors import FlowcError
from flowc.compiler.registry import target_names


def target_from_stack(ir) -> str | None:  # noqa: ANN001 - Pipeline, imported lazily
    """The target named by the active stack's orchestrator (a built-in type, or a registered
    orchestrator's ``target``), if any."""
    orch = ir.stack.orchestrator if ir.stack else None
    if orch is None:
        return None
    from flowc.compiler.stacks import ORCHESTRATOR_TARGETS, target_for

    try:
        name = target_for(orch)
        if name:
            return name
    except (KeyError, ValueError):
        pass
    return ORCHESTRATOR_TARGETS.get(orch.type)


def default_output_dir(ir, target: str) -> Path:  # noqa: ANN001
    orch = ir.stack.orchestrator if ir.stack else None
    if target == "airflow" and orch is not None and orch.setting("dag_folder"):
        folder = str(orch.setting("dag_folder"))
        if ".." in Path(folder).parts:
            raise FlowcError.at(
                orch.loc, f"dag_folder '{folder}' must not leave the project with '..'"
            )
        return Path(folder)
    return Path("build") / "flowc" / target


def update_command(
    flows: tuple[str, ...],
    target: str | None,
    all_targets: bool,
    output_dir: str | None,
    flow_kw: dict[str, object],
) -> str:
    """The ``flowc compile`` command, as given but without ``--check``, that updates stale
    outputs (shell-quoted, ready to paste)."""
    import shlex

    args = ["flowc", "compile", *flows]
    if all_targets:
        args.append("--all")
    elif target:
        args += ["--target", target]
    if output_dir:
        args += ["-o", output_dir]
    if flow_kw.get("env"):
        args += ["-e", str(flow_kw["env"])]
    for opt, key in (("--param", "params"), ("--set", "sets")):
        pairs = flow_kw.get(key) or {}
        args += [a for k, v in pairs.items() for a in (opt, f"{k}={v}")]  # type: ignore[union-attr]
    if flow_kw.get("stack"):
        args += ["--stack", str(flow_kw["stack"])]
    return shlex.join(args)


@click.command("compile")
@click.argument("flows", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "-t",
    "--target",
    type=click.Choice(target_names()),
    help="Target (see `flowc targets`). Without it (and without --all): the target of the "
    "stack's orchestrator.",
)
@click.option(
    "--all", "all_targets", is_flag=True, help="Every target, under DIR/<flow>/<target>/."
)
@click.option(
    "-o",
    "--output",
    "output_dir",
    type=click.Path(file_okay=False),
    show_default="build/flowc/TARGET; airflow: the stack's dag_folder if set",
    help="Output directory.",
)
@click.option("--check", is_flag=True, help="Write nothing; exit 1 with a diff if DIR is stale.")
@flow_options
@output_format_option
@user_errors
def compile_cmd(
    flows: tuple[str, ...],
    target: str | None,
    all_targets: bool,
    output_dir: str | None,
    check: bool,
    output_format: str = "text",
    **flow_kw: object,
) -> None:
    """Compile FLOW... to a target's files."""
    from flowc.compiler import registry, render
    from flowc.compiler.api import emit
    from flowc.compiler.errors import Diagnostic, Loc
    from flowc.compiler.output import (
        check_outputs,
        confined_path,
        manifest,
        sha256_text,
        write_output_set,
        write_outputs,
    )
    from flowc.targets.build_cache import BuildCache

    known = registry.target_names()
    if target and all_targets:
        raise click.UsageError("use either --target or --all, not both")
    if all_targets and not output_dir:
        raise click.UsageError("--all needs -o DIR")

    fix = update_command(flows, target, all_targets, output_dir, flow_kw)
    failed = False
    stale = False
    produced: dict[Path, dict[str, str]] = {}  # output dir -> {rel: text}
    owners: dict[tuple[Path, str], str] = {}  # (dir, rel) -> flow
    sources: dict[Path, list[str]] = {}
    given: dict[Path, list[str]] = {}  # output dir -> the flow files as given
    found: list[Diagnostic] = []
    manifest_entries: list[dict[str, str]] = []

    for flow in flows:
        try:
            ir = load_ir(flow, **flow_kw)
            if all_targets:
                targets = known
            else:
                chosen = target or target_from_stack(ir)
                if chosen is None:
                    raise click.UsageError(
                        "no --target given and the flow's stack names no orchestrator"
                    )
                if chosen not in known:
                    raise FlowcError.at(
                        ir.stack.loc if ir.stack else None,
                        f"the stack's orchestrator asks for target '{chosen}', which is not installed",
                    )
                targets = [chosen]
            # Everything of this flow is gathered first and merged only once it all compiled:
            # a flow that fails contributes nothing (no file, no manifest entry).
            outputs: dict[tuple[Path, str], str] = {}
            entries: list[dict[str, str]] = []
            cache = BuildCache()  # kfp and vertex share one PipelineSpec build
            for t in targets:
                if all_targets:
                    base = Path(output_dir)  # type: ignore[arg-type]
                    files = emit(ir, t, output_dir=base / ir.name / t, cache=cache)
                    files = {f"{ir.name}/{t}/{rel}": text for rel, text in files.items()}
                    entries += [
                        {"flow": ir.name, "target": t, "path": rel, "sha256": sha256_text(text)}
                        for rel, text in files.items()
                    ]
                else:
                    base = Path(output_dir) if output_dir else default_output_dir(ir, t)
                    files = emit(ir, t, output_dir=base, cache=cache)
                outputs.update(((base, rel), text) for rel, text in files.items())
            for base, rel in outputs:
                other = owners.get((base, rel))
                if other is not None and other != flow:
                    raise FlowcError.at(
                        None,
                        f"{flow}: '{rel}' is also produced by {other}",
                        "compile them to separate -o directories, or use --all",
                    )
            for (base, rel), text in outputs.items():
                owners[(base, rel)] = flow
                produced.setdefault(base, {})[rel] = text
            for base in {base for base, _ in outputs}:
                sources.setdefault(base, []).append(ir.source.path)
                given.setdefault(base, []).append(flow)
            manifest_entries += entries
        except FlowcError as e:
            if output_format == "text":
                render.print_text(e.diagnostics)
            found += e.diagnostics
            failed = True

    if all_targets and output_dir:
        produced.setdefault(Path(output_dir), {})["manifest.json"] = manifest(manifest_entries)

    for base, files in produced.items():
        if check:
            result = check_outputs(base, files, sources.get(base, ()))
            if not result.ok:
                stale = True
                if output_format == "text":
                    sys.stdout.write(result.render(base))
                for rel in [r for r, _ in result.diffs] + list(result.extra):
                    found.append(
                        Diagnostic(
                            Loc(given[base][0], 1, 1) if given.get(base) else None,
                            f"compiled output '{base / rel}' is stale",
                            f"update it with: {fix}",
                        )
                    )
        elif all_targets:  # one set, switched at once; a failed --all keeps the previous one
            if not failed:
                same = write_output_set(base, files)
                if output_format == "text":
                    for rel in sorted(files):
                        state = "unchanged" if rel in same else "written"
                        click.echo(f"{confined_path(base, rel)}: {state}")
        else:  # flows that failed contributed nothing; the others are written
            written = set(write_outputs(base, files))
            if output_format == "text":
                for rel in sorted(files):
                    path = confined_path(base, rel)
                    click.echo(f"{path}: {'written' if path in written else 'unchanged'}")
    if output_format != "text":
        render.emit(found, output_format)
    if failed:
        sys.exit(1)
    if stale:
        click.echo(f"flowc: outputs are stale; update them with: {fix}", err=True)
        sys.exit(1)
