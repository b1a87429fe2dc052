"""``flowc run FLOW``: compile the flow and execute it on this machine with flowc.runtime.

Live progress with Rich on a terminal, one plain line per event otherwise. Exit 1 when the run
fails (the first error is printed: step, attempt, exception, log path). The flow file's folder
and the current directory are put on the import path, so ``run: my_steps:fn`` finds
``my_steps.py`` next to the flow.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import click

from flowc.compiler.cli import user_errors
from flowc.compiler.commands.common import flow_options, load_ir, use_flow_import_path
from flowc.compiler.commands.completion import complete_run_ids, complete_steps
from flowc.compiler.errors import FlowcError

STATUS_STYLE = {
    "running": "cyan",
    "retry": "yellow",
    "success": "green",
    "cached": "blue",
    "reused": "blue",
    "interrupted": "yellow",
    "skipped": "dim",
    "failed": "bold red",
    "upstream_failed": "red",
}


@click.command("run")
@click.argument("flow", type=click.Path(dir_okay=False))
@flow_options
@click.option(
    "--only",
    "only",
    multiple=True,
    metavar="STEP",
    shell_complete=complete_steps,
    help="Run STEP and what it needs (repeatable).",
)
@click.option(
    "--resume",
    default=None,
    metavar="RUN_ID",
    shell_complete=complete_run_ids,
    help="Continue an earlier run (see `flowc runs list`).",
)
@click.option(
    "--max-workers",
    type=click.IntRange(min=1),
    default=None,
    show_default="the number of CPUs",
    help="Parallel steps.",
)
@click.option(
    "--root",
    default=".flowc",
    show_default=True,
    metavar="DIR",
    help="Project state folder: runs, artifacts, cache, metadata.db.",
)
@click.option("--sniff", is_flag=True, help="Show streaming channel counters while it runs.")
@click.option(
    "-q", "--quiet", is_flag=True, help="Print only the final line (and errors), no progress."
)
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help="Stream every step's output live, each line prefixed by its step.",
)
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
    quiet: bool = False,
    verbose: bool = False,
) -> None:
    """Run FLOW locally."""
    if quiet and verbose:
        raise click.UsageError("use either --quiet or --verbose, not both")
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

    reporter = _Reporter(plan, quiet=quiet, tail=_LogTail(root) if verbose else None, root=root)
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
    except KeyboardInterrupt as e:
        _interrupted(flow, getattr(e, "run_id", None) or reporter.run_id)
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    counts: dict[str, int] = {}
    for state in result.states.values():
        counts[state] = counts.get(state, 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    if not quiet:  # where things went, then the status line last (scripts read the last line)
        click.echo(where_things_went(plan, result, consumed_outputs(ir)))
    click.echo(f"run {result.run_id} {result.status} in {result.duration:.2f}s ({summary})")
    if not result.ok:
        if result.error is not None:
            click.echo(f"error: {result.error.render()}", err=True)
            hint = failure_hint(plan, result.error.step, str(result.error.render()))
            if hint:
                click.echo(f"  hint: {hint}", err=True)
        click.echo(f"  resume with: flowc run {flow} --resume {result.run_id}", err=True)
        sys.exit(1)


def consumed_outputs(ir: Any) -> set[tuple[str, str]]:
    """``(step, output)`` pairs some other step reads (as data or in its ``when``)."""
    out = {(e.src, e.output) for e in ir.edges if e.output}
    for s in ir.steps:
        if s.when is not None and not isinstance(s.when, str | bool):
            out |= {(r.step, r.output) for r in s.when.refs() if r.step and r.output}
    return out


def where_things_went(
    plan: dict[str, Any], result: Any, consumed: set[tuple[str, str]] | None = None
) -> str:
    """The run folder, the step outputs no other step reads, the flow's declared ``outputs:``
    (evaluated after the run, null where not produced) and every file the steps wrote through
    ``ctx`` (``ctx.artifact_path``)."""
    import json

    from flowc.runtime.step import known_secret_values, mask

    run_dir = _shown(Path(result.root) / "runs" / result.run_id)
    lines = [f"run folder: {run_dir}"]
    steps: dict[str, Any] = plan.get("steps") or {}
    consumed = consumed or set()
    secrets = known_secret_values(plan)
    outs = []
    for name in plan.get("order") or steps:
        if result.states.get(name) not in ("success", "cached"):
            continue
        for out, value in (result.outputs.get(name) or {}).items():
            if (name, out) in consumed:
                continue
            text = json.dumps(value, default=str, ensure_ascii=False)
            text = mask(text, secrets)
            outs.append(f"  {name}.{out} = {text if len(text) <= 200 else text[:197] + '...'}")
    if outs:
        lines += ["outputs:", *outs]
    flow_outputs = getattr(result, "flow_outputs", None) or {}
    if flow_outputs:
        lines.append("flow outputs:")
        for name, value in flow_outputs.items():
            text = mask(json.dumps(value, default=str, ensure_ascii=False), secrets)
            lines.append(f"  {name} = {text if len(text) <= 200 else text[:197] + '...'}")
    files = []
    for name in plan.get("order") or steps:
        folder = run_dir / name
        if not folder.is_dir():
            continue
        declared = tuple(steps.get(name, {}).get("outputs") or ())
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            if _is_runtime_file(path.relative_to(folder).as_posix(), declared):
                continue
            files.append(f"  {path}")
    if files:
        lines += ["files written by steps:", *files]
    return "\n".join(lines)


def _shown(path: Path) -> Path:
    """``path`` relative to the current directory when it is inside it."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return path


def _is_runtime_file(rel: str, outputs: tuple[str, ...]) -> bool:
    """A file the runtime itself keeps in a step folder: logs and stored outputs."""
    import re

    if re.fullmatch(r"(.*\.)?attempt-\d+\.log", rel):
        return True
    return any(re.fullmatch(re.escape(o) + r"(\.item\d+)?\.json", rel) for o in outputs)


def failure_hint(plan: dict[str, Any], step: str, error: str) -> str | None:
    """A hint for a run-time failure whose usual cause the plan shows: ``foreach`` over the
    output of a step with a single output that returned ``{"that_output": [...]}`` (one
    declared output is the whole return value, so the dict itself became the output)."""
    if "foreach must be a list, got dict" not in error:
        return None
    ref = ((plan.get("steps") or {}).get(step) or {}).get("foreach")
    path = ref.get("$ref") if isinstance(ref, dict) else None
    if not (isinstance(path, list) and len(path) == 4 and path[0] == "steps"):
        return None
    src, out = path[1], path[3]
    if list((plan["steps"].get(src) or {}).get("outputs") or []) != [out]:
        return None
    return (
        f"step '{src}' declares one output, '{out}', so its whole return value is '{out}': "
        f"return the list itself, not {{'{out}': [...]}} (a dict keyed by output name is "
        "only for two or more outputs)"
    )


def _interrupted(flow: str, run_id: str | None) -> None:
    """Ctrl-C: every step was stopped and the run recorded as interrupted; exit 130. A step
    function running in a thread cannot be stopped, so the process ends without waiting for it
    (its run is already recorded)."""
    import threading

    if run_id:
        click.echo(f"run {run_id} interrupted", err=True)
        click.echo(f"  resume with: flowc run {flow} --resume {run_id}", err=True)
    else:
        click.echo("interrupted", err=True)
    others = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    if others:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    sys.exit(130)


def _refuse_other_orchestrators(
    ir: Any, flow: str, env: str | None, stack: str | None
) -> Any | None:
    """A custom orchestrator with a ``run_pipeline`` of its own runs the flow: returned (built).
    Otherwise a stack whose orchestrator compiles to another target (Airflow, KFP, Vertex,
    Kubernetes) and was chosen for this run (``--stack``, or ``-e`` with the environment's stack)
    is not run on this machine: a located error naming the command that builds it. A flow whose
    stack is only its default one runs here (the development loop). None: run here."""
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
    if stack is None and env is None:
        return None
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


class _LogTail:
    """Streams a run's step logs while they grow: every complete new line is printed as
    ``step | line`` (``step[3] | ...`` for foreach item 3, ``step#2 | ...`` for attempt 2).
    The logs are the runtime's own (secrets already masked); they are read by a thread that
    looks for new bytes ten times a second, and once more when the run ends."""

    INTERVAL = 0.1

    def __init__(self, root: str):
        import threading

        self.root = Path(root)
        self.offsets: dict[Path, int] = {}
        self.partial: dict[Path, str] = {}
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.thread: Any = None
        self.folder: Path | None = None
        self.echo: Any = click.echo

    def start(self, run_id: str) -> None:
        import threading

        self.folder = self.root / "runs" / run_id
        self.thread = threading.Thread(target=self._loop, name="flowc-log-tail", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self.stopped.wait(self.INTERVAL):
            self.drain()

    def close(self) -> None:
        self.stopped.set()
        if self.thread is not None:
            self.thread.join()
        self.drain(final=True)

    @staticmethod
    def prefix(log: Path) -> str:
        import re

        m = re.fullmatch(r"(?:item-(\d+)\.)?attempt-(\d+)\.log", log.name)
        name = log.parent.name
        if m is None:
            return name
        item, attempt = m.groups()
        return name + (f"[{item}]" if item else "") + (f"#{attempt}" if attempt != "1" else "")

    def drain(self, final: bool = False) -> None:
        if self.folder is None or not self.folder.is_dir():
            return
        with self.lock:
            for log in sorted(self.folder.glob("*/*.log"), key=lambda p: p.stat().st_mtime_ns):
                start = self.offsets.get(log, 0)
                try:
                    with open(log, "rb") as fh:
                        fh.seek(start)
                        chunk = fh.read()
                except OSError:
                    continue
                if not chunk:
                    continue
                self.offsets[log] = start + len(chunk)
                text = self.partial.pop(log, "") + chunk.decode("utf-8", "replace")
                lines = text.split("\n")
                rest = lines.pop()
                if rest and not final:
                    self.partial[log] = rest
                elif rest:
                    lines.append(rest)
                for line in lines:
                    self.echo(f"{self.prefix(log)} | {line}")
            if final:
                for log, rest in sorted(self.partial.items()):
                    self.echo(f"{self.prefix(log)} | {rest}")
                self.partial.clear()


class _ItemProgress:
    """Foreach progress of a running step, ``done/total``: the total from the list it iterates
    (a literal, a param of the run, or an upstream step's stored output), the done count from
    the metadata store's finished items. Unknown parts make it None (the view shows only the
    elapsed time)."""

    def __init__(self, plan: dict[str, Any], root: str, run_id: str):
        self.plan = plan
        self.root = Path(root)
        self.run_id = run_id
        self.totals: dict[str, int | None] = {}
        self.store: Any = None

    def total(self, name: str) -> int | None:
        if name not in self.totals:
            self.totals[name] = self._total(name)
        return self.totals[name]

    def _total(self, name: str) -> int | None:
        import json

        enc = (self.plan.get("steps") or {}).get(name, {}).get("foreach")
        if isinstance(enc, list):
            return len(enc)
        path = enc.get("$ref") if isinstance(enc, dict) else None
        if not isinstance(path, list):
            return None
        value: Any = None
        if len(path) == 4 and path[0] == "steps" and path[2] == "outputs":
            stored = self.root / "runs" / self.run_id / path[1] / f"{path[3]}.json"
            try:
                value = json.loads(stored.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return None
        elif len(path) == 2 and path[0] == "params":
            run = self._meta().run(self.run_id) if self._meta() else None
            value = (run or {}).get("params", {}).get(path[1])
        return len(value) if isinstance(value, list) else None

    def _meta(self) -> Any:
        if self.store is None and (self.root / "metadata.db").exists():
            from flowc.runtime.metadata import MetadataStore

            self.store = MetadataStore(root=str(self.root))
        return self.store

    def of(self, name: str) -> str | None:
        """``"3/6"`` for a running foreach step, else None."""
        if (self.plan.get("steps") or {}).get(name, {}).get("foreach") is None:
            return None
        total = self.total(name)
        meta = self._meta()
        if total is None or meta is None:
            return None
        try:
            done = len({r["idx"] for r in meta.items(self.run_id) if r["step"] == name})
        except Exception:  # the store is busy or being written: show what is known
            return None
        return f"{min(done, total)}/{total}"


class _Reporter:
    """Plain lines, or a Rich live table on a terminal; nothing with ``quiet``; step output
    streamed above it with a :class:`_LogTail`."""

    def __init__(
        self,
        plan: dict[str, Any],
        quiet: bool = False,
        tail: _LogTail | None = None,
        root: str = ".flowc",
    ):
        self.plan = plan
        self.root = root
        self.steps = list(plan.get("order") or plan["steps"])
        self.quiet = quiet
        self.tty = sys.stdout.isatty() and not quiet
        self.states: dict[str, tuple[str, str]] = {}
        self.started: dict[str, float] = {}
        self.live: Any = None
        self.run_id: str | None = None
        self.tail = tail
        self.flow = str(plan.get("name") or "")
        self.t0 = time.monotonic()
        self.t_end: float | None = None
        self.progress: _ItemProgress | None = None

    def __enter__(self) -> _Reporter:
        if self.tty:
            from rich.live import Live

            # the table is rebuilt by Live's refresh thread (8/s), not on every event
            self.live = Live(get_renderable=self._table, refresh_per_second=8, transient=False)
            self.live.__enter__()
            if self.tail is not None:  # lines go above the live table
                console = self.live.console
                self.tail.echo = lambda line: console.print(line, markup=False, highlight=False)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.tail is not None:
            self.tail.close()
        if self.live is not None:
            self.live.refresh()
            self.live.__exit__(*exc)

    def title(self) -> str:
        """One line: flow, run id, steps done of all, elapsed."""
        done = sum(1 for st, _ in self.states.values() if st not in ("running", "retry"))
        elapsed = (self.t_end or time.monotonic()) - self.t0
        run = f"run {self.run_id}" if self.run_id else "starting"
        return f"{self.flow} · {run} · {done}/{len(self.steps)} steps · {elapsed:.1f}s"

    def running_info(self, name: str, now: float) -> str:
        """Elapsed time of a running step, with its foreach progress ``n/m`` when known."""
        text = f"{now - self.started.get(name, now):.1f}s"
        progress = self.progress.of(name) if self.progress is not None else None
        return f"{progress} items, {text}" if progress else text

    def _table(self) -> Any:
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        table = Table(box=None, show_header=False, pad_edge=False)
        now = time.monotonic()
        for name in self.steps:
            status, info = self.states.get(name, ("pending", ""))
            if status == "running":
                info = self.running_info(name, now)
            style = STATUS_STYLE.get(status, "dim")
            table.add_row(name, f"[{style}]{status}[/{style}]", info)
        title = Text(self.title(), style="bold", no_wrap=True, overflow="ellipsis")
        return Group(title, table)

    def event(self, ev: dict[str, Any]) -> None:
        step, status = ev.get("step"), ev["status"]
        if step is None:
            self.run_id = ev["run_id"]
            if status != "running":
                self.t_end = time.monotonic()
            if self.tty and self.progress is None:
                self.progress = _ItemProgress(self.plan, self.root, ev["run_id"])
            if status == "running" and self.tail is not None and self.tail.folder is None:
                self.tail.start(ev["run_id"])
            if self.quiet:
                return
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
        if self.tail is not None and status != "running":
            self.tail.drain()  # a finished step's output before its status line
        if self.live is None and not self.quiet:
            click.echo(f"{step}: {status}" + (f" ({info})" if info else ""))


def _first_line(text: Any) -> str:
    return str(text or "").strip().splitlines()[0] if text else ""
