"""``flowc schedule FLOW``, ``flowc worker`` and ``flowc schedules list|remove|pause|resume``:
the local scheduler (FlowerPower's schedule / start-worker), on top of
:mod:`flowc.runtime.scheduler`.

``schedule`` compiles the flow (with ``-e``/``--param``/``--set``/``--stack`` like ``run``) and
stores its plan and ``schedule:`` (or the one given with ``--cron``/``--every``, FlowerPower's
``--type cron --crontab`` / ``--type interval``) with the run options ``--max-instances``,
``--misfire-grace-time`` and ``--coalesce`` in ``<root>/metadata.db``. ``worker`` runs due slots
and queued jobs (``flowc jobs``) with the local executor in a pool of ``--max-workers`` threads,
each run recorded like ``flowc run`` (``flowc runs list``); SIGTERM/SIGINT stop it cleanly after
the runs in progress. See docs/scheduler.md.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
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


_PATH_LOCK = threading.Lock()


def on_flow_path(source: str | None) -> None:
    """The current directory and the flow's folder on the import path, as ``flowc run`` has
    them (runs of several flows go on in threads at once: guarded)."""
    if not source:
        return
    with _PATH_LOCK:
        for path in (os.getcwd(), str(Path(source).parent)):
            if path not in sys.path:
                sys.path.insert(0, path)


def _duration(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    if value is None:
        return None
    from flowc.compiler.passes._util import DURATION_HINT, parse_duration

    seconds = parse_duration(value)
    if seconds is None:
        raise click.BadParameter(f"{value!r}: {DURATION_HINT}")
    return seconds


def _with_cli_schedule(
    plan: dict[str, Any], cron: str | None, every: float | None, timezone: str | None
) -> dict[str, Any]:
    """The plan with ``--cron``/``--every``/``--timezone`` replacing its schedule's timing (the
    local scheduler's own override: a seconds field is fine here, other engines never see it)."""
    if cron is None and every is None and timezone is None:
        return plan
    base = dict(plan.get("schedule") or {"catchup": False})
    if cron is not None or every is not None:
        for key in ("kind", "cron", "every_seconds", "at"):
            base.pop(key, None)
        if cron is not None:
            base.update(kind="cron", cron=cron)
        else:
            base.update(kind="every", every_seconds=every)
    if timezone is not None:
        base["timezone"] = timezone
    base.setdefault("timezone", "UTC")
    return {**plan, "schedule": base}


@click.command("schedule")
@click.argument("flow", type=click.Path(dir_okay=False))
@flow_options
@click.option("--name", default=None, help="Register under NAME (default: the flow's name).")
@click.option(
    "--cron",
    default=None,
    metavar="EXPR",
    help="Use this crontab instead of the flow's schedule (5 fields, or 6 with seconds first).",
)
@click.option(
    "--every",
    default=None,
    metavar="DURATION",
    callback=_duration,
    help="Use this interval instead of the flow's schedule (30s, 5m, ...).",
)
@click.option("--timezone", default=None, metavar="TZ", help="IANA timezone of --cron.")
@click.option(
    "--max-instances",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Runs of this schedule at once; a slot due while they run is skipped.",
)
@click.option(
    "--misfire-grace-time",
    default=None,
    metavar="DURATION",
    callback=_duration,
    help="A slot starting later than this is missed (default: no limit).",
)
@click.option(
    "--coalesce/--no-coalesce",
    default=None,
    help="Of several due slots run only the latest (default: unless catchup).",
)
@_root_option
@user_errors
def schedule(
    flow: str,
    env: str | None,
    params: dict[str, str],
    sets: dict[str, str],
    stack: str | None,
    name: str | None,
    cron: str | None,
    every: float | None,
    timezone: str | None,
    max_instances: int,
    misfire_grace_time: float | None,
    coalesce: bool | None,
    root: str,
) -> None:
    """Register FLOW's schedule; `flowc worker` runs it."""
    from flowc.runtime.scheduler import Options, ScheduleError

    if cron is not None and every is not None:
        raise click.UsageError("give --cron or --every, not both")
    ir = load_ir(flow, env, params, sets, stack)
    if ir.schedule is None and cron is None and every is None:
        raise FlowcError.at(
            Loc(flow, 1, 1),
            f"flow '{ir.name}' has no schedule",
            "add a schedule: section (cron, every or at), or give --cron / --every",
        )
    plan = _with_cli_schedule(ir.to_data(), cron, every, timezone)
    options = Options(max_instances, misfire_grace_time, coalesce)
    now = datetime.now(UTC)
    where = (ir.schedule.loc if ir.schedule else None) or Loc(flow, 1, 1)
    with _store(root) as store:
        try:
            entry = store.register(
                plan, now=now, name=name, source=str(Path(flow).resolve()), options=options
            )
        except ScheduleError as e:
            if cron is not None or every is not None or timezone is not None:
                raise FlowcError.at(None, str(e), "check --cron / --every / --timezone") from None
            raise FlowcError.at(where, str(e)) from None
    click.echo(f"scheduled '{entry.name}': {_describe(entry.schedule)}{_options(entry)}")
    if entry.next_fire is None:
        click.echo("  no slot left to run (an `at` or `end` in the past; catchup: false)")
    else:
        click.echo(f"  next run {_when(entry.next_fire)}; start a worker with: flowc worker")


def _options(entry: Any) -> str:
    o = entry.options
    parts = [f"max {o.max_instances} at once"] if o.max_instances != 1 else []
    if o.misfire_grace_time is not None:
        parts.append(f"grace {_seconds(o.misfire_grace_time)}")
    if o.coalesce is not None:
        parts.append("coalesce" if o.coalesce else "no coalesce")
    return f" ({', '.join(parts)})" if parts else ""


@click.command("worker")
@_root_option
@click.option("--once", is_flag=True, help="Run what is due now, then exit.")
@click.option(
    "--max-workers",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Runs at once (a thread pool): schedules and jobs do not wait for each other.",
)
@click.option(
    "--poll",
    type=click.FloatRange(min=0.05),
    default=30.0,
    show_default=True,
    help="Longest sleep (seconds); changes to the schedules wake the worker at once anyway.",
)
@user_errors
def worker(root: str, once: bool, max_workers: int, poll: float) -> None:
    """Run due scheduled flows and queued jobs until stopped (SIGTERM / Ctrl-C)."""
    from flowc.runtime.scheduler import Worker, plan_job_runner, plan_runner

    runner = plan_runner(root)
    job_runner = plan_job_runner(root)

    def run(entry: Any, slot: datetime, run_id: str) -> tuple[str, str | None]:
        on_flow_path(entry.source)
        return runner(entry, slot, run_id)

    def run_job(job: Any) -> tuple[str, str | None, Any]:
        on_flow_path(job.source)
        return job_runner(job)

    def log(msg: str) -> None:
        click.echo(f"{_when(datetime.now(UTC))} {msg}")

    with _store(root) as store:
        w = Worker(store, run, log=log, poll=poll, max_workers=max_workers, job_runner=run_job)
        previous = {}
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, lambda *_: w.stop())
        try:
            log(
                f"worker {w.owner} started ({len(store.list())} schedule(s) in {root}/, "
                f"{max_workers} at once)"
            )
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
        nxt = "paused" if e.paused else _when(e.next_fire)
        click.echo(
            f"{e.name:<20} {nxt:<21} {_when(e.last_fire):<21} "
            f"{_describe(e.schedule)}{_options(e)}"
        )


def _named(store: Any, name: str, act: Callable[[], bool]) -> None:
    """Run ``act`` on schedule ``name``; an unknown name is a user error with a suggestion."""
    if not act():
        known = [e.name for e in store.list()]
        raise FlowcError.at(
            None,
            f"no schedule named '{name}'",
            did_you_mean(name, known) or f"registered: {', '.join(known) or 'none'}",
        )


@schedules.command("remove")
@click.argument("name")
@_root_option
@user_errors
def remove_schedule(name: str, root: str) -> None:
    """Unregister schedule NAME (its run history stays)."""
    with _store(root) as store:
        _named(store, name, lambda: store.remove(name))
    click.echo(f"removed schedule '{name}'")


@schedules.command("pause")
@click.argument("name")
@_root_option
@user_errors
def pause_schedule(name: str, root: str) -> None:
    """Stop firing schedule NAME until `flowc schedules resume NAME`."""
    with _store(root) as store:
        _named(store, name, lambda: store.pause(name))
    click.echo(f"paused schedule '{name}'")


@schedules.command("resume")
@click.argument("name")
@_root_option
@user_errors
def resume_schedule(name: str, root: str) -> None:
    """Fire schedule NAME again, from its next slot (slots of the pause are not run)."""
    with _store(root) as store:
        _named(store, name, lambda: store.resume(name, now=datetime.now(UTC)))
        entry = store.get(name)
    click.echo(f"resumed schedule '{name}': next run {_when(entry.next_fire if entry else None)}")
