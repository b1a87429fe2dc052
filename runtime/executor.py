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

Rules (docs/runtime.md): a step runs only when all its upstream steps succeeded (Airflow's
``all_success``); a ``when`` that is false skips the step; a skipped upstream skips its
downstream (data and ``after`` edges alike); a failed upstream marks it ``upstream_failed``.

The run is split along Hamilton's seams: :mod:`flowc.runtime.run_state` (scheduling state and
rules), :mod:`flowc.runtime.attempts` (one instance's attempts), :mod:`flowc.runtime.recording`
(the writer thread); this module drives them (:func:`run_plan`).
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

from flowc.runtime import operator_groups, services
from flowc.runtime import params as params_mod
from flowc.runtime import step as step_mod
from flowc.runtime.attempts import AttemptRunner, _Failed
from flowc.runtime.metadata import MetadataStore, open_metadata_store
from flowc.runtime.plan import ComponentData, Plan, StepData
from flowc.runtime.recording import Writer
from flowc.runtime.run_lock import RunLock, RunLocked
from flowc.runtime.run_resume import resume_run
from flowc.runtime.run_state import (
    OK,
    Node,
    OperatorGroup,
    RunError,
    RunInterrupted,
    RunResult,
    Schedule,
    StepFailure,
    StepNode,
    StepRun,
    blocked,
    cache_key,
    item_key,
    new_run_id,
    select,
    upstream_outputs,
)
from flowc.runtime.step_console import masked_console
from flowc.runtime.store import ArtifactStore, Cache, encode, open_artifact_store, safe_name

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

        unknown = [s for s in only if s not in self.steps]
        if unknown:
            raise RunError(f"--only: unknown step(s) {unknown}; steps: {', '.join(self.order)}")
        self.selected = select(self.steps, self.order, only)

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
        self.schedule = Schedule(self.steps, self.selected, self.states)
        self.running: dict[cf.Future[Any], tuple[Node, int]] = {}
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
            self._interrupted()
            raise RunInterrupted(self.run_id) from None
        except Exception as e:  # a run service failed to start or stop (or a runtime bug)
            if self.first_error is None:
                self.first_error = StepFailure(
                    step="<run>",
                    attempt=1,
                    error=self._mask(f"{type(e).__name__}: {e}"),
                    traceback=self._mask(traceback.format_exc()),
                )
        self.writer.close()
        if self.writer.error is not None and self.first_error is None:
            where, exc = self.writer.error
            self.first_error = StepFailure(
                where, 0, self._mask(f"cannot store outputs: {type(exc).__name__}: {exc}")
            )
        status = "success" if self.first_error is None else "failed"
        error = self.first_error.render() if self.first_error else None
        self.meta.end_run(self.run_id, status, error)
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
        )

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
                    else:
                        self._collect(node.name, index, fut)
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

    def _interrupted(self) -> None:
        """Ctrl-C: the steps that were running are recorded as ``interrupted`` (not left
        ``running``) with the attempts they finished, and so is the run."""
        now = time.time()
        for name in self.order:
            if name in self.started_steps and name not in self.states:
                run = self.step_runs.get(name)
                started = run.started if run is not None else now
                attempts = run.attempts if run is not None else []
                self.writer.meta_op(
                    "step_finished",
                    self.run_id,
                    name,
                    "interrupted",
                    started=started,
                    ended=now,
                    attempts=attempts,
                    error="interrupted by the user",
                )
                self.states[name] = "interrupted"
        self.writer.close()
        self.meta.end_run(self.run_id, "interrupted", "interrupted by the user")
        self._emit(None, "interrupted")
        self.meta.close()

    def _inputs(self, name: str, data: StepData, item: Any) -> step_mod.Inputs:
        return step_mod.Inputs(
            self.plan,
            name,
            params=self.params,
            upstream=upstream_outputs(self.outputs, data),
            run_id=self.run_id,
            run_date=self.run_date,
            item=item,
            secret_resolver=self.secret_resolver,
        )

    def _start(self, node: Node) -> None:
        if isinstance(node, OperatorGroup):
            self._start_operators(node)
            return
        name = node.name
        data = self.steps[name]
        why = blocked(self.states, data.get("upstream") or ())
        if why:
            self._skip(name, why)
            return
        now = time.time()
        try:
            inputs = self._inputs(name, data, step_mod.MISSING)
            if data.get("when") is not None and not inputs.eval(data["when"]):
                self._skip(name, "skipped")
                return
            items: list[Any] | None = None
            if data.get("foreach") is not None:
                value = inputs.eval(data["foreach"])
                if not isinstance(value, list | tuple):
                    raise step_mod.StepError(
                        name, f"foreach must be a list, got {type(value).__name__}"
                    )
                items = list(value)
            key = None
            if data.get("cache"):
                key = cache_key(data, items, lambda item: self._inputs(name, data, item))
                hit = self.cache.get(key)
                if hit is not None and all(o in hit for o in data.get("outputs") or ()):
                    self._succeed(StepRun(name, now, 0, cache_key=None), hit, status="cached")
                    return
        except Exception as e:
            err, tb = self.attempts.describe(e)
            self._fail(name, StepFailure(name, 0, err, traceback=tb), now, [])
            return
        self.writer.meta_op("steps_started", self.run_id, [(name, now)])
        self.started_steps.add(name)
        self._emit(name, "running")
        instances: list[tuple[int | None, Any]] = (
            [(None, step_mod.MISSING)] if items is None else list(enumerate(items))
        )
        run = StepRun(name, now, len(instances), cache_key=key, foreach=items is not None)
        run.items = items or []
        self.step_runs[name] = run
        done = self.done_items.get(name)
        if done and items:  # resume: items that finished before are not run again
            for i, it in enumerate(items):
                if i in done and done[i][0] == item_key(it):
                    run.results[i] = done[i][1]
            instances = [(i, it) for i, it in instances if i not in run.results]
            if not instances:
                self._complete(name)
                return
        if not instances:  # foreach over an empty list
            self._succeed(run, {o: [] for o in data.get("outputs") or ()})
            return
        if len(instances) == 1 and not self.running and not self.schedule.ready:
            # Nothing else can run until this step ends: run it here, saving two thread
            # hand-offs (the hot path of long chains).
            index, item = instances[0]
            fut: cf.Future[Any] = cf.Future()
            try:
                fut.set_result(self.attempts.run(name, data, index, item))
            except _Failed as f:
                fut.set_exception(f)
            self._collect(name, -1 if index is None else index, fut)
            return
        for index, item in instances:
            fut = self.pool.submit(self.attempts.run, name, data, index, item)
            self.running[fut] = (node, -1 if index is None else index)

    def _collect(self, name: str, index: int, fut: cf.Future[Any]) -> None:
        run = self.step_runs[name]
        try:
            outs, attempts = fut.result()
            run.results[index] = outs
        except _Failed as f:
            run.failures[index] = f.failure
            attempts = f.attempts
        run.attempts.extend(attempts)
        if run.foreach and index in run.results and run.instances > 1:
            try:  # persisted as it finishes, so a killed run resumes from here
                encoded = {o: encode(v) for o, v in run.results[index].items()}
                self.writer.item(name, index, item_key(run.items[index]), encoded)
            except Exception:  # not storable: the step will fail when gathered
                pass
        self._complete(name)

    def _complete(self, name: str) -> None:
        run = self.step_runs[name]
        if len(run.results) + len(run.failures) < run.instances:
            return
        if run.failures:
            first = run.failures[min(run.failures)]
            self._fail(name, first, run.started, run.attempts)
            return
        declared = list(self.steps[name].get("outputs") or ())
        if run.foreach:
            ordered = [run.results[i] for i in sorted(run.results)]
            outputs = {o: [r[o] for r in ordered] for o in declared}
        else:
            outputs = run.results[-1]
        self._succeed(run, outputs)

    def _release(self, name: str) -> None:
        """``name`` finished: release its node, unless it is a member of the operator group
        (the group is released once, when all its members are done)."""
        node = self.schedule.node_of[name]
        if isinstance(node, StepNode):
            self.schedule.release(node)

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

    def _skip(self, name: str, status: str) -> None:
        now = time.time()
        self.writer.meta_op("step_finished", self.run_id, name, status, started=None, ended=now)
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
