"""Options shared by the commands that compile a flow (validate, graph, compile, run):
``flow_options`` adds ``-e/--env``, ``--param k=v``, ``--set path=value``, ``--stack``;
``load_ir`` calls :func:`flowc.compiler.api.compile_flow` with them; ``output_format_option``
adds ``--output-format text|json|github|sarif`` for the diagnostics; ``use_flow_import_path``
is the import path of the commands that run a flow's code. Stable API."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import click

from flowc.compiler.commands.completion import complete_environments, complete_stacks

if TYPE_CHECKING:
    from flowc.compiler.ir import Pipeline


def _pairs(ctx: click.Context, param: click.Parameter, values: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for v in values or ():
        k, sep, rest = v.partition("=")
        if not sep or not k.strip():
            raise click.BadParameter(f"expected KEY=VALUE, got {v!r}", ctx=ctx, param=param)
        out[k.strip()] = rest
    return out


def flow_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``env``, ``params``, ``sets``, ``stack`` keyword arguments to a click command."""
    fn = click.option(
        "--stack",
        "stack",
        default=None,
        metavar="NAME",
        shell_complete=complete_stacks,
        help="Stack to use (overrides the environment's stack).",
    )(fn)
    fn = click.option(
        "--set",
        "sets",
        multiple=True,
        callback=_pairs,
        metavar="PATH=VALUE",
        help="Override any flow value by dotted path (repeatable).",
    )(fn)
    fn = click.option(
        "--param",
        "params",
        multiple=True,
        callback=_pairs,
        metavar="K=V",
        help="Set a param, coerced to its declared type (repeatable).",
    )(fn)
    fn = click.option(
        "-e",
        "--env",
        "env",
        default=None,
        metavar="ENV",
        shell_complete=complete_environments,
        help="Environment overlay from 'environments:'.",
    )(fn)
    return fn


def load_ir(
    flow: str,
    env: str | None = None,
    params: dict[str, str] | None = None,
    sets: dict[str, str] | None = None,
    stack: str | None = None,
) -> Pipeline:
    """Compile ``flow`` with the common options (raises FlowcError)."""
    from flowc.compiler.api import compile_flow

    return compile_flow(flow, environment=env, params=params or {}, sets=sets or {}, stack=stack)


def output_format_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``output_format``: how diagnostics are printed (see :mod:`flowc.compiler.render`)."""
    from flowc.compiler.render import FORMATS

    return click.option(
        "--output-format",
        "output_format",
        type=click.Choice(FORMATS),
        default="text",
        show_default=True,
        help="Diagnostics as text (stderr; code frames on a terminal), or json, github "
        "(::error annotations), sarif (stdout).",
    )(fn)


def json_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``as_json``: a listing printed as a JSON list of objects instead of a table."""
    return click.option(
        "--json", "as_json", is_flag=True, help="Print a JSON list of objects (for scripts)."
    )(fn)


def print_rows(headers: Sequence[str], rows: Sequence[Sequence[Any]], as_json: bool) -> None:
    """A listing: aligned columns, or with ``as_json`` one JSON object per row keyed by the
    lower-case header names (values as given: strings, numbers, booleans, null)."""
    if as_json:
        import json

        keys = [h.lower().replace(" ", "_") for h in headers]
        data = [dict(zip(keys, row, strict=True)) for row in rows]
        click.echo(json.dumps(data, indent=2, default=str))
        return
    from flowc.compiler.commands.components import table

    click.echo(table(headers, [["-" if c is None else str(c) for c in row] for row in rows]))


def use_flow_import_path(flow: str) -> None:
    """Put the current directory and the flow file's folder first on ``sys.path``, so that
    ``my_steps:fn`` or a plugin ``type: my_plugins:Tracker`` finds ``my_steps.py`` /
    ``my_plugins.py`` next to the flow. ``flowc run`` and ``flowc plugins list --health`` both
    import through this path."""
    import os
    import sys
    from pathlib import Path

    for path in (os.getcwd(), str(Path(flow).resolve().parent)):
        if path not in sys.path:
            sys.path.insert(0, path)
