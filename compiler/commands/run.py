"""``flowc run FLOW``: compile the flow and execute it on this machine with flowc.runtime.

Live progress with Rich on a terminal, one plain line per event otherwise. Exit 1 when the run
fails (the first error is printed: step, attempt, exception, log path). The flow file's folder
and the current directory are put on the import path, so ``run: my_steps:fn`` finds
``my_steps.py`` next to the flow.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from flowc.compiler.cli import user_errors
from flowc.compiler.commands.common import flow_options, load_ir, use_flow_import_path
from flowc.compiler.errors import FlowcError

STATUS_STYLE = {
    "running": "cyan",
    "retry": "yellow",
    "success": "green",
    "cached": "blue",
    "skipped": "dim",
    "failed": "bold red",
    "upstream_failed": "red",
}


@click.command("run")
@click.argument("flow", type=click.Path(dir_okay=False))
@flow_options
@click.option("--only", "only", multiple=True, metavar="STEP", help="Run STEP and what it needs.")
@click.option("--resume", default=None, metavar="RUN_ID", help="Continue an earlier run.")
@click.option(
    "--max-workers",
    type=click.IntRange(min=1),
    default=None,
    help="Parallel steps (default: CPUs).",
)
@click.option(
    "--root",
    default=".flowc",
    show_default=True,
    metavar="DIR",
    help="Project state folder: runs, artifacts, cache, metadata.db.",
)
@click.option("--sniff", is_flag=True, help="Show streaming channel counters while it runs.")
@user_errors
def run(
    flow: str,
    env: str | None,
    params: dict[str, str],
    sets: dict[str, str],
    stack: str | None,
    only: tuple[str, ...],
    resume: str | None,
    max_workers: int | None,
    root: str,
    sniff: bool = False,
) -> None:
    """Run FLOW locally."""
    ir = load_ir(flow, env, params, sets, stack)
    orchestrator = _refuse_other_orchestrators(ir, flow, env, stack)
    plan = ir.to_data()
    use_flow_import_path(flow)
    if orchestrator is not None:
        _run_on(orchestrator, ir, plan)
        return

    from flowc.runtime.executor import RunError, run_plan

    if resume and params:
        click.echo("warning: --param is ignored with --resume: the run keeps its params", err=True)

    reporter = _Reporter(plan)
    try:
        with reporter:
            result = run_plan(
                plan,
                root=root,
                only=only,
                resume=resume,
                max_workers=max_workers,
                progress=_sniffing(root, reporter.event) if sniff else reporter.event,
            )
    except RunError as e:
        raise FlowcError.at(None, str(e)) from None
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    counts: dict[str, int] = {}
    for state in result.states.values():
        counts[state] = counts.get(state, 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    click.echo(f"run {result.run_id} {result.status} in {result.duration:.2f}s ({summary})")
    if not result.ok:
        if result.error is not None:
            click.echo(f"error: {result.error.render()}", err=True)
        click.echo(f"  resume with: flowc run {flow} --resume {result.run_id}", err=True)
        sys.exit(1)


def _refuse_other_orchestrators(
    ir: Any, flow: str, env: str | None, stack: str | None
) -> Any | None:
    """A custom orchestrator with a ``run_pipeline`` of its own runs the flow: returned (built).
    Otherwise a stack whose orchestrator compiles to another target (Airflow, KFP, Vertex,
    Kubernetes) is not run on this machine: a located error naming the command that builds it.
    None: run here."""
    orch = ir.stack.orchestrator if ir.stack is not None else None
    if orch is None:
        return None
    from flowc.compiler.stacks import ORCHESTRATOR_TARGETS, target_for
    from flowc.runtime.stack import ComponentError, build_component
    from flowc.runtime.stack.flowyml import has_run_pipeline

    if orch.type not in ORCHESTRATOR_TARGETS:
        try:
            component = build_component("orchestrator", orch.to_data())
        except ComponentError as e:
            raise FlowcError.at(orch.loc, f"stack '{ir.stack.name}': {e}", e.hint) from None
        if has_run_pipeline(component):
            return component
    target = target_for(ir.stack)
    if target == "local":
        return None
    options = "".join(f" {o} {v}" for o, v in (("-e", env), ("--stack", stack)) if v)
    if target is None:
        raise FlowcError.at(
            orch.loc,
            f"stack '{ir.stack.name}': orchestrator type '{orch.type}' has neither a "
            "run_pipeline method nor a flowc target: flowc run cannot run the flow with it",
            "give the class run_pipeline(pipeline, **kwargs), or a 'target' (local, airflow, "
            "kfp, vertex, k8s) to compile for",
        )
    raise FlowcError.at(
        orch.loc,
        f"stack '{ir.stack.name}' runs on {target} (orchestrator type '{orch.type}'): "
        "flowc run runs flows on this machine only",
        f"compile it for {target}: flowc compile {flow}{options} --target {target}; "
        "or run it here with a stack whose orchestrator is local",
    )


_FAILED_STATES = {"failed", "failure", "error", "errored", "upstream_failed"}


def _run_on(orchestrator: Any, ir: Any, plan: dict[str, Any]) -> None:
    """Hand the flow to a custom orchestrator: ``run_pipeline(pipeline, resources=,
    docker_config=)`` (flowyml's signature), then ``get_run_status(run id)`` when it has one.
    Exit 1 when it raises or reports a failed state."""
    from datetime import UTC, datetime

    from flowc.runtime import params as params_mod
    from flowc.runtime.run_state import new_run_id
    from flowc.runtime.stack.flowyml import DockerConfig, Pipeline, ResourceConfig

    orch = ir.stack.orchestrator
    run_id = new_run_id()
    run_date = datetime.now(UTC).isoformat(timespec="seconds")
    pipeline = Pipeline(plan, run_id=run_id, params=params_mod.resolve(plan), run_date=run_date)
    resources = ResourceConfig(**orchestrator.default_resources())
    click.echo(f"run {run_id}: handing flow '{ir.name}' to orchestrator '{orch.type}'")
    try:
        submitted = orchestrator.run_pipeline(
            pipeline, resources=resources, docker_config=DockerConfig()
        )
    except Exception as e:  # noqa: BLE001 - the orchestrator's own failure, reported
        raise FlowcError.at(
            orch.loc, f"orchestrator '{orch.type}' failed to run the flow: {type(e).__name__}: {e}"
        ) from None
    status = None
    if callable(getattr(orchestrator, "get_run_status", None)):
        status = orchestrator.get_run_status(submitted)
    click.echo(f"run {submitted} {status if status is not None else 'submitted'}")
    if status is not None and str(status).lower() in _FAILED_STATES:
        sys.exit(1)


def _sniffing(root: str, progress: Any) -> Any:
    from flowc.compiler.commands.sniff import sniffing  # streaming operators' sniffer

    return sniffing(root, progress)


class _Reporter:
    """Plain lines, or a Rich live table on a terminal."""

    def __init__(self, plan: dict[str, Any]):
        self.steps = list(plan.get("order") or plan["steps"])
        self.tty = sys.stdout.isatty()
        self.states: dict[str, tuple[str, str]] = {}
        self.started: dict[str, float] = {}
        self.live: Any = None
        self.run_id: str | None = None

    def __enter__(self) -> _Reporter:
        if self.tty:
            from rich.live import Live

            # the table is rebuilt by Live's refresh thread (8/s), not on every event
            self.live = Live(get_renderable=self._table, refresh_per_second=8, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.refresh()
            self.live.__exit__(*exc)

    def _table(self) -> Any:
        from rich.table import Table

        title = f"run {self.run_id}" if self.run_id else None
        table = Table(
            box=None, show_header=False, pad_edge=False, title=title, title_justify="left"
        )
        for name in self.steps:
            status, info = self.states.get(name, ("pending", ""))
            style = STATUS_STYLE.get(status, "dim")
            table.add_row(name, f"[{style}]{status}[/{style}]", info)
        return table

    def event(self, ev: dict[str, Any]) -> None:
        step, status = ev.get("step"), ev["status"]
        if step is None:
            self.run_id = ev["run_id"]
            if status == "running" and not self.tty:
                click.echo(f"run {ev['run_id']} started")
            return
        info = ""
        if status == "running":
            self.started[step] = time.monotonic()
        if ev.get("duration") is not None:
            info = f"{ev['duration']:.2f}s"
        if status == "retry":
            info = f"attempt {ev.get('attempt')} failed: {_first_line(ev.get('error'))}; retrying"
        if status == "failed":
            info = _first_line(ev.get("error"))
        self.states[step] = (status, info)
        if self.live is None:
            click.echo(f"{step}: {status}" + (f" ({info})" if info else ""))


def _first_line(text: Any) -> str:
    return str(text or "").strip().splitlines()[0] if text else ""
