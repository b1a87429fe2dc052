"""Run a whole plan on this machine: topological scheduling on a thread pool.

A step starts as soon as every step it depends on has finished (not level by level). Per step the
scheduler thread evaluates ``when`` and ``foreach``, checks the cache, then hands each instance
(one per foreach item) to the pool, where :func:`flowc.runtime.step.execute` runs it with retries.
Outputs are persisted by the artifact store and recorded in the metadata store when the step
finishes, so ``resume`` can pick them up even after the process was killed.

Where a step runs: in a pool thread (the fast path) unless it has a ``timeout``, an ``env:``, or
``replicas > 1``; those attempts run in a child process (``python -m flowc.runtime step``) so they
can be stopped (timeout kills the process group), get their own environment, and replicas are
separate processes. ``command:`` steps always run as their own process.

Rules (docs/runtime.md): once its upstream instances are done, a step's trigger rule decides
(:mod:`flowc.runtime.triggers`; default ``all_success``: a skipped upstream skips it, a failed
one marks it ``upstream_failed``); then a ``when`` that is false skips it; a callable raising
``flowc.runtime.Skip`` or a command exiting with a ``skip_on_exit_code`` skips the instance.
Foreach groups run their members once per item, item-wise; finally steps run once everything
else is done; the flow's ``outputs:`` are evaluated at the end and stored with the run.

The run is split along Hamilton's seams: :mod:`flowc.runtime.graph` (the plan's structure),
:mod:`flowc.runtime.expansion` (instances and their scheduling keys),
:mod:`flowc.runtime.run_state` (scheduling state), :mod:`flowc.runtime.outcomes` (what
instances did, upstream values, exports), :mod:`flowc.runtime.attempts` (one instance's
attempts), :mod:`flowc.runtime.recording` (the writer thread),
:mod:`flowc.runtime.executor_units` (foreach groups); this module drives them
(:func:`run_plan`).
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flowc.runtime import executor_steps, executor_units, operator_groups, services
from flowc.runtime import params as params_mod
from flowc.runtime import step as step_mod
from flowc.runtime.attempts import AttemptRunner
from flowc.runtime.expansion import (
    Key,
    initial_keys,
    step_deps,
    step_key,
)
from flowc.runtime.graph import PlanGraph
from flowc.runtime.metadata import MetadataStore, open_metadata_store
from flowc.runtime.outcomes import Outcomes
from flowc.runtime.plan import ComponentData, Plan, StepData
from flowc.runtime.recording import Writer
from flowc.runtime.run_lock import RunLock, RunLocked
from flowc.runtime.run_resume import resume_run
from flowc.runtime.run_state import (
    OK,
    OPS_KEY,
    OperatorGroup,
    RunError,
    RunInterrupted,
    RunResult,
    Schedule,
    StepFailure,
    StepRun,
    new_run_id,
)
from flowc.runtime.step_console import masked_console
from flowc.runtime.store import (
    FLOW_OUTPUTS,
    ArtifactStore,
    Cache,
    encode,
    open_artifact_store,
    safe_name,
)

__all__ = [
    "OK",
    "Progress",
    "RunError",
    "RunInterrupted",
    "RunResult",
    "StepFailure",
    "new_run_id",
    "run_plan",
]

Progress = Callable[[dict[str, Any]], None]

_OPERATOR_STOP_SECONDS = 30.0  # > operator_base.GRACE_SECONDS: replicas get SIGKILL before


def run_plan(
    plan: Plan,
    params: Mapping[str, Any] | None = None,
    *,
    root: str | Path = ".flowc",
    run_id: str | None = None,
    only: Iterable[str] = (),
    resume: str | None = None,
    max_workers: int | None = None,
    progress: Progress | None = None,
    run_date: str | None = None,
    secret_resolver: step_mod.SecretResolver | None = None,
) -> RunResult:
    """Run ``plan`` here. ``params`` are typed values (see :mod:`flowc.runtime.params` for
    parsing ``--param`` text); defaults come from the plan. ``resume`` continues an earlier run
    (same run id, its recorded params; finished steps are reused). ``only`` runs those steps and
    what they need upstream. ``max_workers``: argument > stack orchestrator ``max_workers`` >
    number of CPUs. ``progress(event)`` is called (from several threads, serialized) with
    ``{"run_id", "step", "status", "attempt", "error", "duration"}``; ``step`` is None for run
    events. Raises :class:`RunError` before starting for bad arguments."""
    runner = _Runner(
        plan,
        params,
        root=Path(root),
        run_id=run_id,
        only=tuple(only),
        resume=resume,
        max_workers=max_workers,
        progress=progress,
        run_date=run_date,
        secret_resolver=secret_resolver,
    )
    return runner.run()


class _Runner:
    """One run: set up (stores, params or the resumed run, selection, the schedule), then the
    scheduler loop on the calling thread; step instances run in :attr:`pool` through
    :attr:`attempts`, results are recorded by :attr:`writer`."""

    def __init__(
        self,
        plan: Plan,
        given: Mapping[str, Any] | None,
        *,
        root: Path,
        run_id: str | None,
        only: tuple[str, ...],
        resume: str | None,
        max_workers: int | None,
        progress: Progress | None,
        run_date: str | None,
        secret_resolver: step_mod.SecretResolver | None,
    ):
        self.plan = plan
        self.steps: Mapping[str, StepData] = plan["steps"]
        self.order: list[str] = list(plan.get("order") or self.steps)
        self.flow = str(plan.get("name"))
        self.root = root.absolute()
        self.progress = progress
        self._progress_lock = threading.Lock()
        self.secret_resolver = secret_resolver
        stack_data = plan.get("stack")
        stack: dict[str, ComponentData] = stack_data["components"] if stack_data else {}
        orch = stack.get("orchestrator") or {}
        self.max_workers = max(
            1, int(max_workers or orch.get("max_workers") or os.cpu_count() or 1)
        )
        try:
            self.store: ArtifactStore = open_artifact_store(stack.get("artifact_store"), self.root)
            self.meta: MetadataStore = open_metadata_store(stack.get("metadata_store"), self.root)
        except (ValueError, OSError, ImportError) as e:  # StoreError is a ValueError
            raise RunError(f"cannot open the stack's stores: {e}") from None
        self.cache = Cache(self.root)
        self.states: dict[str, str] = {}
        self.outputs: dict[str, dict[str, Any]] = {}
        self.first_error: StepFailure | None = None
        self.warnings: list[str] = []
        self.done_items: dict[str, dict[int, tuple[str, dict[str, Any]]]] = {}
        self.previous_attempts: dict[tuple[str, str | None], int] = {}
        self.reused: list[str] = []

        self.graph = PlanGraph(plan)
        unknown = [s for s in only if not self.graph.known(s)]
        if unknown:
            raise RunError(f"--only: unknown step(s) {unknown}; steps: {', '.join(self.order)}")
        self.selected = self.graph.select(only)
        self.selected_set = set(self.selected)
        self.outcomes = Outcomes(plan, self.graph, self.states, self.outputs)
        self.flow_outputs: dict[str, Any] = {}

        self.run_id: str
        self.params: dict[str, Any]
        self.run_date: str | None
        if resume:
            self._resume(resume, run_date)
        else:
            try:
                self.params = params_mod.resolve(plan, given)
            except params_mod.ParamError as e:
                raise RunError(str(e)) from None
            self.run_id = run_id or new_run_id()
            try:
                safe_name(self.run_id)
            except ValueError:
                raise RunError(
                    f"run id {self.run_id!r}: use letters, digits, '.', '_', '-'"
                ) from None
            self.run_date = run_date or datetime.now(UTC).isoformat(timespec="seconds")
        self.secret_values = step_mod.known_secret_values(plan, secret_resolver)
        self.run_info = services.RunInfo(
            run_id=self.run_id,
            flow=self.flow,
            params=self.params,
            run_date=self.run_date,
            root=str(self.root),
            extra={"secret_resolver": secret_resolver} if secret_resolver else {},
        )
        self.attempts = AttemptRunner(
            plan,
            params=self.params,
            run_id=self.run_id,
            run_date=self.run_date,
            root=self.root,
            outputs=self.outputs,
            secret_resolver=secret_resolver,
            secret_values=self.secret_values,
            emit=self._emit,
            previous_attempts=self.previous_attempts,
        )
        self.ops_group: OperatorGroup | None = None
        self.schedule = self._build_schedule()
        self.running: dict[cf.Future[Any], tuple[Key | OperatorGroup, int]] = {}
        self.step_runs: dict[str, StepRun] = {}
        self.started_steps: set[str] = set()
        self.pool = cf.ThreadPoolExecutor(self.max_workers, thread_name_prefix="flowc")
        self.writer = Writer(self.meta, self.store, self.cache, self.run_id)

    # -- setup -----------------------------------------------------------------------------------

    def _resume(self, resume: str, run_date: str | None) -> None:
        prev = resume_run(self.meta, self.store, resume, self.flow, self.steps, run_date)
        self.run_id, self.params, self.run_date = resume, prev.params, prev.run_date
        self.warnings.extend(prev.warnings)
        self.states.update(prev.states)
        self.outputs.update(prev.outputs)
        self.done_items = prev.done_items
        self.previous_attempts = prev.previous_attempts
        self.reused = [s for s in self.order if s in self.states]

    def _build_schedule(self) -> Schedule:
        """The run's first keys (:func:`initial_keys`), plus one for all streaming operators."""
        sched, graph = Schedule(), self.graph
        sched.done.update(step_key(s) for s in self.selected if s in self.states)  # resume
        for key, deps in initial_keys(graph, self.selected, self.states):
            sched.add(key, deps)
        ops = tuple(s for s in self.selected if self.steps[s].get("operator"))
        if ops and not all(s in self.states for s in ops):
            self.ops_group = OperatorGroup(ops)
            outside = {k for s in ops for k in step_deps(graph, s, self.selected_set)}
            sched.add(OPS_KEY, outside - {step_key(s) for s in ops})
        return sched

    # -- the run ---------------------------------------------------------------------------------

    def run(self) -> RunResult:
        t0 = time.time()
        lock = RunLock(self.root, self.run_id)
        try:
            lock.acquire()
        except RunLocked as e:
            self.pool.shutdown(wait=False)
            self.meta.close()
            raise RunError(str(e)) from None
        try:
            with masked_console(self.secret_values):  # raw fd writes of in-process steps
                return self._run_locked(t0)
        finally:
            lock.release()

    def _run_locked(self, t0: float) -> RunResult:
        self.meta.start_run(self.run_id, self.flow, self.params, self.plan)
        self.writer.start()
        self._emit(None, "running")
        for name in self.reused:  # resume: finished steps are shown as reused, not pending
            if name in self.selected:
                self._emit(name, "reused")
        try:
            outcome = lambda: "success" if self.first_error is None else "failed"  # noqa: E731
            with services.running(self.plan, self.run_info, outcome) as values:
                self.attempts.ctx_values = values
                self._loop()
        except KeyboardInterrupt:
            executor_steps.interrupted(self)
            raise RunInterrupted(self.run_id) from None
        except Exception as e:  # a run service failed to start or stop (or a runtime bug)
            if self.first_error is None:
                self.first_error = StepFailure(
                    step="<run>",
                    attempt=1,
                    error=self._mask(f"{type(e).__name__}: {e}"),
                    traceback=self._mask(traceback.format_exc()),
                )
        self._evaluate_flow_outputs()
        self.writer.close()
        if self.writer.error is not None and self.first_error is None:
            where, exc = self.writer.error
            self.first_error = StepFailure(
                where, 0, self._mask(f"cannot store outputs: {type(exc).__name__}: {exc}")
            )
        status = "success" if self.first_error is None else "failed"
        error = self.first_error.render() if self.first_error else None
        self.meta.end_run(self.run_id, status, error)
        if self.flow_outputs:
            self.meta.set_outputs(self.run_id, self.flow_outputs)
        self._emit(None, status, error=error)
        self.meta.close()
        return RunResult(
            run_id=self.run_id,
            flow=self.flow,
            status=status,
            states={s: self.states.get(s, "not_run") for s in self.selected},
            outputs={s: self.outputs[s] for s in self.selected if s in self.outputs},
            error=self.first_error,
            root=str(self.root),
            run_date=self.run_date,
            duration=time.time() - t0,
            params=self.params,
            warnings=self.warnings,
            flow_outputs=self.flow_outputs,
        )

    def _evaluate_flow_outputs(self) -> None:
        """The flow's ``outputs:`` over what the run produced (null where not produced)."""
        try:
            self.flow_outputs, warnings = self.outcomes.flow_outputs(self.make_inputs)
        except Exception as e:  # a runtime bug must not lose the run's record
            warnings = [f"flow outputs not evaluated: {type(e).__name__}: {e}"]
        if self.flow_outputs:  # also as an artifact, where the Kubernetes driver puts them
            try:
                self.store.put(self.run_id, *FLOW_OUTPUTS, self.flow_outputs)
            except Exception as e:
                warnings.append(f"flow outputs not stored: {type(e).__name__}: {e}")
        self.warnings.extend(self._mask(w) for w in warnings)

    def _loop(self) -> None:
        """Start what is ready, wait for the first instance to finish, collect it; repeat."""
        ready, pool = self.schedule.ready, self.pool
        try:
            while ready or self.running:
                while ready:
                    self._start(ready.popleft())
                if not self.running:
                    break
                done, _ = cf.wait(self.running, return_when=cf.FIRST_COMPLETED)
                for fut in done:
                    node, index = self.running.pop(fut)
                    if isinstance(node, OperatorGroup):
                        self._collect_operators(node, fut)
                    elif node[0] == "unit":
                        executor_units.collect(self, node[1], index, fut)
                    else:
                        executor_steps.collect(self, node[1], index, fut)
        except BaseException:
            ops = sys.modules.get("flowc.runtime.operators")
            if ops is not None:  # streaming operators run in a pool thread: stop them
                ops.interrupt_all()
            self.attempts.stop()
            pool.shutdown(wait=False, cancel_futures=True)
            groups = [f for f, (node, _) in self.running.items() if isinstance(node, OperatorGroup)]
            # their supervisors stop the replicas (SIGTERM, then SIGKILL after a grace period)
            cf.wait(groups, timeout=_OPERATOR_STOP_SECONDS)
            raise
        pool.shutdown(wait=True)
        for name in self.selected:  # never silently "not run": a scheduling bug fails the run
            if name not in self.states:
                why = "was never started: what it waits for did not finish (a flowc bug)"
                self._fail(name, StepFailure(name, 0, why), time.time(), [])

    def make_inputs(
        self,
        name: str,
        upstream: Mapping[str, Mapping[str, Any]],
        item: Any = step_mod.MISSING,
        run_extra: Mapping[str, Any] | None = None,
    ) -> step_mod.Inputs:
        """What the expressions of ``name`` (a step, a group's exports, the flow's outputs)
        read: this run's values and ``upstream``."""
        return step_mod.Inputs(
            self.plan,
            name,
            params=self.params,
            upstream=upstream,
            run_id=self.run_id,
            run_date=self.run_date,
            item=item,
            secret_resolver=self.secret_resolver,
            run_extra=run_extra,
        )

    def run_extra(self, name: str) -> dict[str, Any] | None:
        """``run.status`` / ``run.failed_steps`` for a finally step (None for others)."""
        return self.outcomes.run_extra() if self.graph.is_finally(name) else None

    def _start(self, key: Key) -> None:
        if key == OPS_KEY:
            assert self.ops_group is not None
            self._start_operators(self.ops_group)
        elif key[0] == "open":
            executor_units.open_group(self, key[1])
        elif key[0] == "unit":
            executor_units.start_unit(self, key[1], key[2])
        else:
            executor_steps.start(self, key[1])

    def mark_started(self, name: str, now: float) -> None:
        """Record and show that step ``name`` started (once)."""
        if name in self.started_steps:
            return
        self.writer.meta_op("steps_started", self.run_id, [(name, now)])
        self.started_steps.add(name)
        self._emit(name, "running")

    def _release(self, name: str) -> None:
        """``name`` finished: release its key (an operator step's too: steps downstream of
        an operator wait for it; the operator group itself is released by its collector)."""
        self.schedule.release(step_key(name))

    def _succeed(self, run: StepRun, outputs: dict[str, Any], status: str = "success") -> None:
        name = run.name
        try:  # serialize now: an output that cannot be stored fails its step, here
            encoded = {o: encode(v) for o, v in outputs.items()}
        except Exception as e:
            err, tb = self.attempts.describe(e)
            failure = StepFailure(name, 0, f"cannot store outputs: {err}", traceback=tb)
            self._fail(name, failure, run.started, run.attempts)
            return
        ended = time.time()
        self.writer.outputs(
            name,
            outputs,
            encoded,
            run.cache_key,
            status=status,
            started=run.started,
            ended=ended,
            attempts=run.attempts,
        )
        self.outputs[name] = outputs
        self.states[name] = status
        self._emit(name, status, duration=ended - run.started)
        self._release(name)

    def _skip(self, name: str, status: str, run: StepRun | None = None) -> None:
        """``name`` did not run (``skipped`` or ``upstream_failed``); ``run``: it started and
        skipped itself (its attempts are recorded)."""
        now = time.time()
        extra: dict[str, Any] = {"started": None, "ended": now}
        if run is not None:
            extra.update(started=run.started, attempts=run.attempts)
            if run.skipped:
                extra["error"] = run.skipped[min(run.skipped)]
        self.writer.meta_op("step_finished", self.run_id, name, status, **extra)
        self.states[name] = status
        self._emit(name, status)
        self._release(name)

    def _fail(
        self, name: str, failure: StepFailure, started: float, attempts: list[dict[str, Any]]
    ) -> None:
        ended = time.time()
        failure.error = self._mask(failure.error)
        if failure.traceback:
            failure.traceback = self._mask(failure.traceback)
        self.writer.meta_op(
            "step_finished",
            self.run_id,
            name,
            "failed",
            started=started,
            ended=ended,
            attempts=attempts,
            error=failure.render(),
            log=failure.log_path,
        )
        self.states[name] = "failed"
        if self.first_error is None:
            self.first_error = failure
        self._emit(name, "failed", attempt=failure.attempt, error=failure.render())
        self._release(name)

    # -- operators (pypz): all started together by flowc.runtime.operators ---------------------

    def _start_operators(self, group: OperatorGroup) -> None:
        operator_groups.start(self, group)

    def _collect_operators(self, group: OperatorGroup, fut: cf.Future[Any]) -> None:
        operator_groups.collect(self, group, fut)

    # -- helpers ---------------------------------------------------------------------------------

    def _mask(self, text: str) -> str:
        return step_mod.mask(text, self.secret_values)

    def _emit(self, step: str | None, status: str, **extra: Any) -> None:
        if self.progress is None:
            return
        event = {"run_id": self.run_id, "step": step, "status": status, **extra}
        with self._progress_lock:
            try:
                self.progress(event)
            except Exception:  # a broken progress display must not break the run
                self.progress = None
