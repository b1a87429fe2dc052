"""``flowc sniff [RUN_ID]``: what the streaming operators of a run are doing (pypz's sniffer):
records produced and consumed per channel, port and replica, consumer group lag, replica states.

``--deployed FLOW`` asks the Kubernetes API server instead: the operator pods of the flow's
newest run (or RUN_ID), their states, and the counters each pod logs (``flowc-stats`` lines).

Reads the run's channel database (``ROOT/runs/RUN_ID/channels.sqlite``), which every operator
replica updates while it runs, so it can watch a run in progress (``--follow``) from another
terminal, or look at a finished or crashed one. ``flowc run --sniff`` prints the same view
while its run goes (:func:`sniffing`).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from pathlib import Path
from typing import Any

import click

from flowc.compiler.cli import user_errors
from flowc.compiler.commands.k8s import _deployer, _run, kube_options
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
@click.option(
    "--deployed",
    metavar="FLOW",
    default=None,
    help="Sniff flow FLOW deployed on Kubernetes, through the API server (its operator pods).",
)
@kube_options
@user_errors
def sniff(
    run_id: str | None,
    root: str,
    follow: bool,
    interval: float,
    as_json: bool,
    deployed: str | None,
    kubeconfig: str | None,
    context: str | None,
    namespace: str | None,
) -> None:
    """Show records produced/consumed per channel, port and replica of RUN_ID (default: the
    latest run with operators), of a local run or (--deployed FLOW) of a deployed flow."""
    from flowc.runtime import channels as ch

    if deployed is not None:
        dep = _deployer(kubeconfig, context, namespace)
        while True:
            stats = _run(lambda: dep.sniff(deployed, run_id))
            rid = stats.pop("run_id")
            if as_json:
                click.echo(json.dumps({"run_id": rid, **stats}, sort_keys=True))
            else:
                click.echo(ch.format_stats(stats, f"run {rid} of {deployed} in {dep.namespace}"))
            live = [i for i in stats["instances"] if i["state"] in ("running", "starting")]
            if not follow or not live:
                return
            time.sleep(max(0.1, interval))
            if not as_json:
                click.echo("")
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


def sniffing(root: str, progress: Any, interval: float = 1.0) -> Any:
    """Wrap a ``run_plan`` progress callback: from the run's start to its end, print the
    sniffer's view of its channels every ``interval`` seconds on stderr, and once at the end
    (``flowc run --sniff``)."""
    from flowc.runtime import channels as ch

    stop = threading.Event()
    threads: list[threading.Thread] = []
    lock = threading.Lock()

    def show(db: Path) -> None:
        if db.is_file():
            text = ch.format_stats(ch.local_stats(db), f"sniff {db.parent.name}")
            with lock:
                click.echo(text, err=True)

    def loop(db: Path) -> None:
        while not stop.wait(interval):
            with contextlib.suppress(Exception):  # the database may be in creation
                show(db)

    def event(ev: dict[str, Any]) -> None:
        progress(ev)
        if ev.get("step") is not None:
            return
        db = Path(root) / "runs" / str(ev["run_id"]) / ch.DB_NAME
        if ev.get("status") == "running" and not threads:
            t = threading.Thread(target=loop, args=(db,), name="flowc-sniff", daemon=True)
            threads.append(t)
            t.start()
        elif ev.get("status") != "running":
            stop.set()
            for t in threads:
                t.join()
            show(db)

    return event
