"""``flowc sniff [RUN_ID]``: what the streaming operators of a run are doing (pypz's sniffer):
records produced and consumed per channel, port and replica, consumer group lag, replica states.

Reads the run's channel database (``ROOT/runs/RUN_ID/channels.sqlite``), which every operator
replica updates while it runs, so it can watch a run in progress (``--follow``) from another
terminal, or look at a finished or crashed one.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from flowc.compiler.cli import user_errors
from flowc.compiler.errors import FlowcError


def _latest(root: Path) -> Path:
    dbs = sorted(
        (root / "runs").glob("*/channels.sqlite"), key=lambda p: p.stat().st_mtime, reverse=True
    )
    if not dbs:
        raise FlowcError.at(None, f"no streaming run in {root}/runs (run a flow with operators)")
    return dbs[0]


@click.command("sniff")
@click.argument("run_id", required=False)
@click.option("--root", default=".flowc", show_default=True, metavar="DIR", help="State folder.")
@click.option("--follow", is_flag=True, help="Refresh until every operator replica stopped.")
@click.option("--interval", type=float, default=1.0, show_default=True, help="Seconds (--follow).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@user_errors
def sniff(run_id: str | None, root: str, follow: bool, interval: float, as_json: bool) -> None:
    """Show records produced/consumed per channel, port and replica of RUN_ID (default: the
    latest run with operators)."""
    from flowc.runtime import channels as ch

    base = Path(root)
    db = _latest(base) if run_id is None else base / "runs" / run_id / ch.DB_NAME
    if not db.is_file():
        raise FlowcError.at(None, f"run {run_id!r} has no channels in {base}/runs")
    rid = db.parent.name
    while True:
        stats = ch.local_stats(db)
        if as_json:
            click.echo(json.dumps({"run_id": rid, **stats}, sort_keys=True))
        else:
            click.echo(ch.format_stats(stats, f"run {rid}"))
        live = [i for i in stats["instances"] if i["state"] == "running"]
        if not follow or (stats["instances"] and not live):
            return
        time.sleep(max(0.1, interval))
        if not as_json:
            click.echo("")
