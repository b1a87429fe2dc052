"""Options shared by the commands that compile a flow (validate, graph, compile, run):
``flow_options`` adds ``-e/--env``, ``--param k=v``, ``--set path=value``, ``--stack``;
``load_ir`` calls :func:`flowc.compiler.api.compile_flow` with them; ``use_flow_import_path``
is the import path of the commands that run a flow's code. Stable API."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import click

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
