"""``flowc components list`` / ``flowc components load``: the registered stack component types
(built-ins, ``flowc.components`` entry points, a flow's ``components:``, loaded modules/files)."""

from __future__ import annotations

from collections.abc import Sequence

import click

from flowc.compiler.cli import user_errors
from flowc.compiler.commands.common import flow_options, json_option, load_ir, print_rows


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces (deterministic, no colour)."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def _rows(entries: Sequence[object]) -> list[list[str]]:
    return [
        [e.kind, e.name, e.source, f"{e.cls.__module__}:{e.cls.__qualname__}"]  # type: ignore[attr-defined]
        for e in entries
    ]


@click.group("components")
def components() -> None:
    """Stack component types (orchestrators, artifact stores, metadata stores, registries)."""


@components.command("list")
@click.argument("flow", required=False)
@flow_options
@json_option
@user_errors
def list_cmd(
    flow: str | None,
    env: str | None,
    params: dict[str, str],
    sets: dict[str, str],
    stack: str | None,
    as_json: bool = False,
) -> None:
    """List component types as KIND NAME SOURCE CLASS. With FLOW, its `components:` are loaded
    (and its active stack checked) first."""
    from flowc.runtime.stack import get_component_registry

    if flow:
        load_ir(flow, env, params, sets, stack)
    reg = get_component_registry()
    print_rows(["kind", "name", "source", "class"], _rows(reg.entries()), as_json)
    for err in reg.entry_point_errors:
        click.echo(f"flowc: warning: entry point {err}", err=True)


@components.command("load")
@click.argument("source")
@click.option("--name", default=None, help="Register the class under this type name.")
@user_errors
def load_cmd(source: str, name: str | None) -> None:
    """Load components from MODULE, MODULE:Class, FILE.py or FILE.py:Class and list what was
    registered (a check that a component package or file is usable). With --name, the one
    class loaded is registered (and listed) under that name; a module or file defining several
    needs its class named (SOURCE:Class)."""
    from flowc.compiler.errors import FlowcError
    from flowc.runtime.stack import ComponentError, get_component_registry

    reg = get_component_registry()
    try:
        classes = reg.load(source, name)
    except ComponentError as e:
        raise FlowcError.at(
            None, f"cannot load components from '{source}': {e.message}", e.hint
        ) from None
    if name is not None and not any(e.name == name for e in reg.entries() if e.cls in classes):
        # a module or file without a class: --name needs it to define exactly one
        found = sorted(c.__name__ for c in classes)
        if len(found) != 1:
            raise FlowcError.at(
                None,
                f"--name {name}: '{source}' defines {len(found)} components ({', '.join(found)})",
                f"name the class: flowc components load {source}:{found[0]} --name {name}",
            )
        try:
            classes = reg.load(f"{source}:{found[0]}", name)
        except ComponentError as e:
            raise FlowcError.at(None, f"cannot load '{source}:{found[0]}': {e.message}") from None
    loaded = [e for e in reg.entries() if e.cls in classes and name in (None, e.name)]
    click.echo(table(["kind", "name", "source", "class"], _rows(loaded)))
