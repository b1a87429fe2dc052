"""``flowc plugins list [FLOW] [--health]``: registered plugin types, or a flow's plugins with
their health checks (each enabled plugin is initialized, checked and shut down)."""

from __future__ import annotations

import json
import sys

import click

from flowc.compiler.cli import user_errors
from flowc.compiler.commands.common import (
    flow_options,
    json_option,
    load_ir,
    print_rows,
    use_flow_import_path,
)


@click.group("plugins")
def plugins() -> None:
    """Plugins (mlops, datastream, taskqueue) used by steps as ctx.plugins.<name>."""


@plugins.command("list")
@click.argument("flow", required=False)
@click.option("--health", is_flag=True, help="Run each enabled plugin's health check (needs FLOW).")
@flow_options
@json_option
@user_errors
def list_cmd(
    flow: str | None,
    health: bool,
    env: str | None,
    params: dict[str, str],
    sets: dict[str, str],
    stack: str | None,
    as_json: bool = False,
) -> None:
    """Without FLOW: every registered plugin type (NAME SOURCE CLASS). With FLOW: its plugins
    (NAME TYPE ENABLED), and with --health their health (exit 1 when one is unhealthy)."""
    from flowc.runtime.plugins import get_plugin_registry
    from flowc.runtime.plugins import health as check_health

    reg = get_plugin_registry()
    if not flow:
        if health:
            raise click.UsageError("--health needs a FLOW (its plugins' config)")
        rows = [[e.name, e.source, e.target] for e in reg.entries()]
        print_rows(["name", "source", "class"], rows, as_json)
        return
    ir = load_ir(flow, env, params, sets, stack)
    specs = {p.name: p.to_data() for p in ir.plugins}
    if not health:
        rows = [
            [n, s["type"], s["enabled"] if as_json else "yes" if s["enabled"] else "no"]
            for n, s in specs.items()
        ]
        print_rows(["name", "type", "enabled"], rows, as_json)
        return
    use_flow_import_path(flow)  # plugin modules beside the flow import as under `flowc run`
    report = check_health(specs, reg)
    rows = []
    for n, r in report.items():
        state = "disabled" if r["healthy"] is None else ("healthy" if r["healthy"] else "UNHEALTHY")
        details = r["details"] if as_json else json.dumps(r["details"], sort_keys=True, default=str)
        rows.append([n, r["type"], r["family"], state, details])
    print_rows(["name", "type", "family", "health", "details"], rows, as_json)
    if any(r["healthy"] is False for r in report.values()):
        sys.exit(1)
