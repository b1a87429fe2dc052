"""``flowc runs list``, ``flowc runs show RUN_ID``: run history from the metadata store; ``flowc runs
logs RUN_ID [STEP] [--replica N]``: the log files kept in the run's folder."""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from flowc.compiler.cli import user_errors
from flowc.compiler.commands.common import json_option, print_rows
from flowc.compiler.commands.completion import complete_run_ids
from flowc.compiler.errors import FlowcError

_root_option = click.option(
    "--root",
    default=".flowc",
    show_default=True,
    metavar="DIR",
    help="Project state folder holding metadata.db.",
)


def _store(root: str) -> Any:
    from flowc.runtime.metadata import MetadataStore

    if not (Path(root) / "metadata.db").exists():
        raise FlowcError.at(None, f"no run history in {root}/ (run a flow with `flowc run` first)")
    return MetadataStore(root=root)


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


def _status(row: dict[str, Any]) -> str:
    """``running`` runs whose process is gone (killed) show as ``killed``: resume them."""
    if row.get("status") != "running" or not row.get("pid"):
        return str(row.get("status"))
    try:
        os.kill(int(row["pid"]), 0)
    except ProcessLookupError:
        return "killed"
    except (PermissionError, OSError):
        pass
    return "running"


def _dur(d: float | None) -> str:
    return "-" if d is None else f"{d:.2f}s"


@click.group("runs")
def runs() -> None:
    """Run history (from .flowc/metadata.db)."""


@runs.command("list")
@_root_option
@click.option("--flow", default=None, help="Only runs of this flow.")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@json_option
@user_errors
def list_runs(root: str, flow: str | None, limit: int, as_json: bool = False) -> None:
    """Most recent runs first."""
    rows = _store(root).runs(limit=limit, flow=flow)
    if as_json:
        keys = ["run_id", "flow", "status", "started", "duration"]
        data = [
            [r["run_id"], r["flow"], _status(r), _iso(r["started"]), r["duration"]] for r in rows
        ]
        print_rows(keys, data, True)
        return
    if not rows:
        click.echo("no runs")
        return
    click.echo(f"{'RUN ID':<24} {'FLOW':<20} {'STATUS':<12} {'STARTED (UTC)':<20} DURATION")
    for r in rows:
        click.echo(
            f"{r['run_id']:<24} {r['flow']:<20} {_status(r):<12} {_when(r['started']):<20} "
            f"{_dur(r['duration'])}"
        )


@runs.command("show")
@click.argument("run_id", shell_complete=complete_run_ids)
@_root_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@user_errors
def show_run(run_id: str, root: str, as_json: bool) -> None:
    """One run: params, flow outputs, steps, attempts, outputs, errors."""
    store = _store(root)
    run = store.run(run_id)
    if run is None:
        raise FlowcError.at(
            None, f"no run {run_id!r} in {root}/metadata.db", "see `flowc runs list`"
        )
    steps = store.steps(run_id)
    attempts = store.attempts(run_id)
    if as_json:
        run.pop("plan", None)
        click.echo(json.dumps({"run": run, "steps": steps, "attempts": attempts}, indent=2))
        return
    click.echo(f"run {run['run_id']}  flow {run['flow']}  {_status(run)}")
    if _status(run) == "killed":
        click.echo(f"  its process is gone: continue it with `flowc run FLOW --resume {run_id}`")
    click.echo(f"  started {_when(run['started'])} UTC, duration {_dur(run['duration'])}")
    click.echo(f"  params {json.dumps(run['params'])}")
    if run.get("error"):
        click.echo("  error: " + run["error"].replace("\n", "\n  "))
    if run.get("outputs"):
        click.echo("  flow outputs:")
        for name, value in run["outputs"].items():
            click.echo(f"    {name} = {json.dumps(value, ensure_ascii=False)}")
    click.echo(f"{'STEP':<24} {'STATUS':<16} {'DURATION':<10} ATTEMPTS")
    for s in steps:
        click.echo(f"{s['step']:<24} {s['status']:<16} {_dur(s['duration']):<10} {s['attempts']}")
        for name, uri in (s.get("outputs") or {}).items():
            click.echo(f"    {name}: {uri}")
        if s.get("error"):
            click.echo("    " + s["error"].replace("\n", "\n    "))


def _log_order(path: Path) -> tuple[Any, ...]:
    """attempt-2.log before attempt-10.log: numbers compare as numbers."""
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name))


@runs.command("logs")
@click.argument("run_id")
@click.argument("step", required=False)
@click.option("--replica", type=click.IntRange(min=0), default=None, help="Only this replica.")
@_root_option
@user_errors
def run_logs(run_id: str, step: str | None, replica: int | None, root: str) -> None:
    """The logs of a run (every step, or STEP): attempts, replicas, operator replicas."""
    run_dir = Path(root) / "runs" / run_id
    if not run_dir.is_dir():
        raise FlowcError.at(None, f"no run {run_id!r} in {root}/runs/", "see `flowc runs list`")
    steps = sorted(p for p in run_dir.iterdir() if p.is_dir() and any(p.glob("*.log")))
    if step is not None:
        if not (run_dir / step).is_dir():
            names = ", ".join(p.name for p in steps) or "(none)"
            raise FlowcError.at(
                None, f"run {run_id!r} has no logs of step {step!r}", f"steps with logs: {names}"
            )
        steps = [run_dir / step]
    files = [f for d in steps for f in sorted(d.glob("*.log"), key=_log_order)]
    if replica is not None:
        files = [f for f in files if f.name.endswith(f".r{replica}.log")]
    if not files:
        which = f" of replica {replica}" if replica is not None else ""
        raise FlowcError.at(
            None, f"run {run_id!r} has no logs{which}" + (f" of {step!r}" if step else "")
        )
    for f in files:
        click.echo(f"==> {f.relative_to(run_dir)} <==")
        text = f.read_text(encoding="utf-8", errors="replace")
        click.echo(text, nl=not text.endswith("\n") and bool(text))
