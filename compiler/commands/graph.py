"""``flowc graph FLOW [--format mermaid|dot] [-o FILE] [--run RUN_ID]``: the DAG as text, or
as an image (``-o dag.svg|png|pdf``, rendered by Graphviz's ``dot``); ``--run`` colours each
step by its state in that run."""

from __future__ import annotations

from pathlib import Path

import click

from flowc.compiler.cli import user_errors
from flowc.compiler.commands.common import flow_options, load_ir
from flowc.compiler.commands.completion import complete_run_ids

_SUFFIX_FORMATS = {".mmd": "mermaid", ".mermaid": "mermaid", ".dot": "dot", ".gv": "dot"}


@click.command()
@click.argument("flow")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["mermaid", "dot"]),
    default="mermaid",
    help="Text format printed (or written with -o FILE.mmd / FILE.dot).",
)
@click.option(
    "-o",
    "--output",
    "output",
    type=click.Path(dir_okay=False),
    default=None,
    metavar="FILE",
    help="Write to FILE instead of printing: .svg, .png or .pdf (rendered by Graphviz's dot), "
    ".dot/.gv or .mmd (text).",
)
@click.option(
    "--run",
    "run_id",
    default=None,
    metavar="RUN_ID",
    shell_complete=complete_run_ids,
    help="Colour each step by its state in this run (see `flowc runs list`).",
)
@click.option(
    "--root",
    default=".flowc",
    metavar="DIR",
    help="Project state folder holding metadata.db (for --run).",
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
    output: str | None = None,
    run_id: str | None = None,
    root: str = ".flowc",
) -> None:
    """Print the DAG of FLOW (Mermaid or Graphviz dot), or write it to an image."""
    from flowc.compiler import graphviz
    from flowc.compiler.errors import FlowcError

    ir = load_ir(flow, env, params, sets, stack)
    states = _run_states(root, run_id) if run_id else None
    if output is None:
        click.echo(graphviz.render(ir, fmt, states), nl=False)
        return
    suffix = Path(output).suffix.lower()
    if suffix in _SUFFIX_FORMATS:
        text = graphviz.render(ir, _SUFFIX_FORMATS[suffix], states)
        Path(output).write_text(text, encoding="utf-8")
        click.echo(f"{output}: written")
        return
    kind = suffix.lstrip(".")
    if kind not in graphviz.IMAGE_FORMATS:
        raise click.BadParameter(
            f"'{output}': write .svg, .png, .pdf, .dot, .gv or .mmd", param_hint="-o"
        )
    try:
        data = graphviz.image(graphviz.dot(ir, states), kind)
    except FileNotFoundError:
        raise FlowcError.at(
            None,
            f"cannot write {output}: Graphviz's 'dot' program is not installed",
            graphviz.INSTALL_HINT,
        ) from None
    except RuntimeError as e:
        raise FlowcError.at(None, f"cannot write {output}: dot failed: {e}") from None
    Path(output).write_bytes(data)
    click.echo(f"{output}: written")


def _run_states(root: str, run_id: str) -> dict[str, str]:
    """``{step: state}`` of a run in ``root``'s metadata store."""
    from flowc.compiler.errors import FlowcError

    if not (Path(root) / "metadata.db").exists():
        raise FlowcError.at(None, f"no run history in {root}/ (run a flow with `flowc run` first)")
    from flowc.runtime.metadata import MetadataStore

    store = MetadataStore(root=root)
    if store.run(run_id) is None:
        raise FlowcError.at(
            None, f"no run {run_id!r} in {root}/metadata.db", "see `flowc runs list`"
        )
    return {s["step"]: s["status"] for s in store.steps(run_id)}
