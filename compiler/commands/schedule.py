"""``flowc schedule FLOW``, ``flowc worker`` and ``flowc schedules list|remove``: the local
scheduler (FlowerPower's schedule / start-worker), on top of :mod:`flowc.runtime.scheduler`.

``schedule`` compiles the flow (with ``-e``/``--param``/``--set``/``--stack`` like ``run``) and
stores its plan and ``schedule:`` in ``<root>/metadata.db``. ``worker`` runs due slots with the
local executor, each run recorded like ``flowc run`` (``flowc runs list``); SIGTERM/SIGINT stop
it cleanly after the run in progress. See docs/scheduler.md.
"""

from __future__ import annotations

import os
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from flowc.compiler.cli import user_errors
from flowc.compiler.commands.common import flow_options, load_ir
from flowc.compiler.errors import FlowcError, Loc, did_you_mean

_root_option = click.option(
    "--root",
    default=".flowc",
    show_default=True,
    metavar="DIR",
    help="Project state folder holding metadata.db.",
)


def _when(dt: datetime | None) -> str:
    return "-" if dt is None else dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _describe(s: dict[str, Any]) -> str:
    kind = s.get("kind")
    if kind == "cron":
        text = f"cron '{s.get('cron')}'"
    elif kind == "every":
        text = f"every {_seconds(float(s.get('every_seconds') or 0))}"
    else:
        text = f"at {s.get('at')}"
    text += f" {s.get('timezone') or 'UTC'}"
    if s.get("start"):
        text += f" from {s['start']}"
    if s.get("end"):
        text += f" until {s['end']}"
    return text + (" catchup" if s.get("catchup") else "")


def _seconds(n: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if n >= size and n % size == 0:
            return f"{int(n // size)}{unit}"
    return f"{n:g}s"


def _store(root: str) -> Any:
    from flowc.runtime.scheduler import ScheduleStore

    return ScheduleStore.for_root(root)


@click.command("schedule")
@click.argument("flow", type=click.Path(dir_okay=False))
@flow_options
@click.option("--name", default=None, help="Register under NAME (default: the flow's name).")
@_root_option
@user_errors
def schedule(
    flow: str,
    env: str | None,
    params: dict[str, str],
    sets: dict[str, str],
    stack: str | None,
    name: str | None,
    root: str,
) -> None:
    """Register FLOW's schedule; `flowc worker` runs it."""
    from flowc.runtime.scheduler import ScheduleError

    ir = load_ir(flow, env, params, sets, stack)
    if ir.schedule is None:
        raise FlowcError.at(
            Loc(flow, 1, 1),
            f"flow '{ir.name}' has no schedule",
            "add a schedule: section (cron, every or at)",
        )
    plan = ir.to_data()
    now = datetime.now(UTC)
    with _store(root) as store:
        try:
            entry = store.register(plan, now=now, name=name, source=str(Path(flow).resolve()))
        except ScheduleError as e:
            raise FlowcError.at(ir.schedule.loc or Loc(flow, 1, 1), str(e)) from None
    click.echo(f"scheduled '{entry.name}': {_describe(entry.schedule)}")
    if entry.next_fire is None:
        click.echo("  no slot left to run (an `at` or `end` in the past; catchup: false)")
    else:
        click.echo(f"  next run {_when(entry.next_fire)}; start a worker with: flowc worker")


@click.command("worker")
@_root_option
@click.option("--once", is_flag=True, help="Run what is due now, then exit.")
@click.option(
    "--poll",
    type=click.FloatRange(min=0.05),
    default=30.0,
    show_default=True,
    help="Longest sleep (seconds) before looking for new schedules.",
)
@user_errors
def worker(root: str, once: bool, poll: float) -> None:
    """Run due scheduled flows until stopped (SIGTERM / Ctrl-C)."""
    from flowc.runtime.scheduler import Worker, plan_runner

    runner = plan_runner(root)

    def run(entry: Any, slot: datetime, run_id: str) -> tuple[str, str | None]:
        if entry.source:  # the flow's folder on the import path, as `flowc run` does
            folder = str(Path(entry.source).parent)
            for path in (os.getcwd(), folder):
                if path not in sys.path:
                    sys.path.insert(0, path)
        return runner(entry, slot, run_id)

    def log(msg: str) -> None:
        click.echo(f"{_when(datetime.now(UTC))} {msg}")

    with _store(root) as store:
        w = Worker(store, run, log=log, poll=poll)
        previous = {}
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, lambda *_: w.stop())
        try:
            log(f"worker {w.owner} started ({len(store.list())} schedule(s) in {root}/)")
            n = w.run_forever(max_ticks=1 if once else None)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        log(f"worker stopped after {n} run(s)")


@click.group("schedules")
def schedules() -> None:
    """Registered schedules (from .flowc/metadata.db)."""


@schedules.command("list")
@_root_option
@user_errors
def list_schedules(root: str) -> None:
    """Every registered schedule with its next and last fire time (UTC)."""
    with _store(root) as store:
        entries = store.list()
    if not entries:
        click.echo("no schedules")
        return
    click.echo(f"{'NAME':<20} {'NEXT RUN':<21} {'LAST RUN':<21} SCHEDULE")
    for e in entries:
        click.echo(
            f"{e.name:<20} {_when(e.next_fire):<21} {_when(e.last_fire):<21} "
            f"{_describe(e.schedule)}"
        )


@schedules.command("remove")
@click.argument("name")
@_root_option
@user_errors
def remove_schedule(name: str, root: str) -> None:
    """Unregister schedule NAME (its run history stays)."""
    with _store(root) as store:
        if not store.remove(name):
            known = [e.name for e in store.list()]
            raise FlowcError.at(
                None,
                f"no schedule named '{name}'",
                did_you_mean(name, known) or f"registered: {', '.join(known) or 'none'}",
            )
    click.echo(f"removed schedule '{name}'")
