"""The body of ``flowc validate``, without click: what the click command
(:mod:`flowc.compiler.commands.validate`) runs, and what :func:`flowc.compiler.cli.main` runs
directly for the common call ``flowc validate [--no-import] [-q] FLOW...`` (a pre-commit hook),
so that call never imports click. Output goes to ``sys.stdout``/``sys.stderr`` as looked up at
call time (click's test runner swaps them)."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def _out(text: str, err: bool = False) -> None:
    stream = sys.stderr if err else sys.stdout
    stream.write(text + "\n")
    stream.flush()


def validate_flows(
    flows: Sequence[str],
    env: str | None = None,
    params: dict[str, str] | None = None,
    sets: dict[str, str] | None = None,
    stack: str | None = None,
    quiet: bool = False,
    no_import: bool = False,
    targets: Sequence[str] = (),
    output_format: str = "text",
) -> int:
    """Parse and check every flow, print each one's result; the exit status (1: any invalid)."""
    from flowc.compiler import render
    from flowc.compiler.api import check_targets, compile_flow
    from flowc.compiler.errors import FlowcError
    from flowc.compiler.trust import no_imports

    bad = 0
    found = []  # machine formats print every flow's diagnostics as one document at the end
    for flow in flows:
        try:
            with no_imports(no_import):
                ir = compile_flow(
                    flow, environment=env, params=params or {}, sets=sets or {}, stack=stack
                )
                check_targets(ir, targets, warn=lambda text: _out(text, err=True))
        except FlowcError as e:
            bad += 1
            if output_format == "text":
                render.print_text(e.diagnostics)
            found += e.diagnostics
            continue
        if not quiet and output_format == "text":
            _out(f"{flow}: ok ({len(ir.steps)} steps)")
    if output_format != "text":
        render.emit(found, output_format)
    if bad:
        _out(f"{bad} of {len(flows)} flow(s) invalid", err=True)
        return 1
    return 0


#: The options the click-free call accepts; anything else goes through click.
FAST_FLAGS = {"-q": "quiet", "--quiet": "quiet", "--no-import": "no_import"}


def fast_args(args: Sequence[str]) -> dict[str, object] | None:
    """``validate_flows`` keyword arguments for ``flowc validate ARGS`` when they are only
    flow files and the flags of :data:`FAST_FLAGS`; None when click must parse them."""
    flows: list[str] = []
    kw: dict[str, object] = {}
    for a in args:
        if a in FAST_FLAGS:
            kw[FAST_FLAGS[a]] = True
        elif a.startswith("-"):
            return None
        else:
            flows.append(a)
    if not flows:
        return None
    return {"flows": flows, **kw}
