"""``flowc jobs add|run|result|list``: one-off runs with a result to fetch later (FlowerPower's
``add-job`` / ``run-job``), on the local scheduler's store (:mod:`flowc.runtime.scheduler`).

``add`` compiles the flow (``-e``/``--param``/``--set``/``--stack`` as for ``run``) and queues
it in ``<root>/metadata.db``; a running ``flowc worker`` is woken and runs it. ``run`` does the
same but runs the job in this process and prints its result. ``result JOB`` prints a job's
result as JSON (``{run_id, status, outputs}``), from any process on the store.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from flowc.compiler.cli import user_errors
from flowc.compiler.commands.common import flow_options, load_ir
from flowc.compiler.commands.schedule import _root_option, _store, _when, on_flow_path
from flowc.compiler.errors import FlowcError, did_you_mean


@click.group("jobs")
def jobs() -> None:
    """One-off runs whose result is kept (FlowerPower's add-job / run-job)."""


def _print_result(job: Any) -> None:
    click.echo(json.dumps(job.result, indent=2, sort_keys=True))
    if job.status not in ("success", "succeeded"):
        raise FlowcError.at(
            None,
            f"job {job.id} {job.status}: {job.error or 'no error recorded'}",
            f"its run: flowc runs show {job.run_id}" if job.run_id else None,
        )


@jobs.command("add")
@click.argument("flow", type=click.Path(dir_okay=False))
@flow_options
@_root_option
@user_errors
def add_job(
    flow: str,
    env: str | None,
    params: dict[str, str],
    sets: dict[str, str],
    stack: str | None,
    root: str,
) -> None:
    """Queue one run of FLOW for a worker; prints the job id."""
    ir = load_ir(flow, env, params, sets, stack)
    with _store(root) as store:
        job = store.add_job(ir.to_data(), now=datetime.now(UTC), source=str(Path(flow).resolve()))
    click.echo(job.id)
    click.echo(
        f"  queued '{job.flow}'; a worker runs it (flowc worker); then: flowc jobs result {job.id}",
        err=True,
    )


@jobs.command("run")
@click.argument("flow", type=click.Path(dir_okay=False))
@flow_options
@_root_option
@user_errors
def run_job(
    flow: str,
    env: str | None,
    params: dict[str, str],
    sets: dict[str, str],
    stack: str | None,
    root: str,
) -> None:
    """Run FLOW now as a job, here; prints its result (kept: flowc jobs result JOB)."""
    from flowc.runtime.scheduler import owner_id, plan_job_runner, run_job_here

    ir = load_ir(flow, env, params, sets, stack)
    source = str(Path(flow).resolve())
    on_flow_path(source)
    with _store(root) as store:
        job = store.add_job(ir.to_data(), now=datetime.now(UTC), source=source, owner=owner_id())
        click.echo(f"job {job.id}: run {job.run_id}", err=True)
        done = run_job_here(store, job, plan_job_runner(root))
    _print_result(done)


@jobs.command("result")
@click.argument("job_id", metavar="JOB")
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=0.0,
    metavar="SECONDS",
    help="Wait up to SECONDS for the job to finish.",
)
@_root_option
@user_errors
def job_result(job_id: str, wait: float, root: str) -> None:
    """Print JOB's result as JSON (exit 1 when it failed or has not finished)."""
    deadline = time.monotonic() + wait
    with _store(root) as store:
        job = store.job(job_id)
        if job is None:
            known = [j.id for j in store.jobs()]
            raise FlowcError.at(
                None,
                f"no job '{job_id}'",
                did_you_mean(job_id, known) or "list them with: flowc jobs list",
            )
        while not job.done and time.monotonic() < deadline:
            time.sleep(0.2)
            job = store.job(job_id) or job
    if not job.done:
        raise FlowcError.at(
            None,
            f"job {job.id} is {job.status}",
            "a worker runs queued jobs (flowc worker); wait with --wait SECONDS",
        )
    _print_result(job)


@jobs.command("list")
@_root_option
@user_errors
def list_jobs(root: str) -> None:
    """Every job with its state."""
    with _store(root) as store:
        all_jobs = store.jobs()
    if not all_jobs:
        click.echo("no jobs")
        return
    click.echo(f"{'JOB':<14} {'FLOW':<20} {'STATUS':<12} CREATED")
    for j in all_jobs:
        click.echo(f"{j.id:<14} {j.flow:<20} {j.status:<12} {_when(j.created)}")
