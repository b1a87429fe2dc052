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
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import hashlib
import json
import os
import pickle
import queue
import secrets as _secrets
import subprocess
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flowc.runtime import params as params_mod
from flowc.runtime import services
from flowc.runtime import step as step_mod
from flowc.runtime.metadata import MetadataStore, open_metadata_store
from flowc.runtime.store import (
    ArtifactStore,
    Cache,
    atomic_write,
    decode,
    encode,
    open_artifact_store,
    safe_name,
)

OK = ("success", "cached")
OPERATORS = "<operators>"
Progress = Callable[[dict[str, Any]], None]


class RunError(ValueError):
    """The run cannot start: unknown ``only`` step, unknown ``resume`` run id, bad params."""


@dataclass
class StepFailure:
    """The first error of a failed run: which step, which attempt, what, and where the log is."""

    step: str
    attempt: int
    error: str
    log_path: str | None = None
    instance: str | None = None
    traceback: str | None = None

    def render(self) -> str:
        where = f"step '{self.step}'" + (f" [{self.instance}]" if self.instance else "")
        attempt = f" (attempt {self.attempt})" if self.attempt else ""
        text = f"{where} failed{attempt}: {self.error}"
        if self.log_path:
            text += f"\n  log: {self.log_path}"
        return text


@dataclass
class RunResult:
    run_id: str
    flow: str
    status: str  # success | failed
    states: dict[str, str]  # step -> success | cached | skipped | failed | upstream_failed
    outputs: dict[str, dict[str, Any]]
    error: StepFailure | None = None
    root: str = ".flowc"
    run_date: str | None = None
    duration: float = 0.0
    params: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "success"


def new_run_id() -> str:
    """Sortable and unique: ``20261126T004529-3f9a1c``."""
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + _secrets.token_hex(3)


def run_plan(
    plan: Mapping[str, Any],
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


@dataclass
class _StepRun:
    name: str
    started: float
    instances: int
    cache_key: str | None = None
    results: dict[int, dict[str, Any]] = field(default_factory=dict)
    attempts: list[dict[str, Any]] = field(default_factory=list)
    failures: dict[int, StepFailure] = field(default_factory=dict)
    foreach: bool = False
    items: list[Any] = field(default_factory=list)


class _Failed(Exception):
    def __init__(self, failure: StepFailure, attempts: list[dict[str, Any]]):
        self.failure = failure
        self.attempts = attempts
        super().__init__(failure.render())


class _ChildError(Exception):
    def __init__(self, type_name: str, message: str, tb: str):
        self.type_name = type_name
        self.message = message
        self.tb = tb
        super().__init__(message)


class _Writer:
    """Writes artifacts, cache entries and metadata in submission order on its own thread, so
    the scheduler never waits for the disk. Metadata writes queued together are committed in
    one transaction, after the artifact files they refer to exist: a step is "completed" (for
    ``resume``) once its metadata row says so, and then its outputs are on disk."""

    def __init__(self, meta: MetadataStore, store: ArtifactStore, cache: Cache, run_id: str):
        self.meta = meta
        self.store = store
        self.cache = cache
        self.run_id = run_id
        self.error: tuple[str, BaseException] | None = None
        self._pool: cf.ThreadPoolExecutor | None = None
        self.q: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._loop, name="flowc-writer", daemon=True)
        self.thread.start()

    def meta_op(self, op: str, *args: Any, **kw: Any) -> None:
        self.q.put(("meta", op, args, kw))

    def outputs(
        self,
        step: str,
        outputs: dict[str, Any],
        encoded: dict[str, tuple[str, bytes]],
        cache_key: str | None,
        **finished: Any,
    ) -> None:
        self.q.put(("outputs", step, (outputs, encoded, cache_key), finished))

    def item(self, step: str, idx: int, key: str, encoded: dict[str, tuple[str, bytes]]) -> None:
        """A finished foreach item: its outputs as ``<output>.item<idx>`` artifacts."""
        self.q.put(("item", step, (idx, key, encoded), {}))

    def close(self) -> None:
        self.q.put(None)
        self.thread.join()

    def _loop(self) -> None:
        stop = False
        while not stop:
            batch = [self.q.get()]
            while True:
                try:
                    batch.append(self.q.get_nowait())
                except queue.Empty:
                    break
            if batch[-1] is None:
                stop = True
                batch.pop()
            files = [item for item in batch if item[0] != "meta"]
            if len(files) > 1:  # disk latency: write a batch's files in parallel
                if self._pool is None:
                    self._pool = cf.ThreadPoolExecutor(4, thread_name_prefix="flowc-io")
                chunks = [files[i::4] for i in range(min(4, len(files)))]  # 4 slices, not N tasks
                done = {
                    id(item): result
                    for chunk, results in zip(
                        chunks, self._pool.map(self._write_chunk, chunks), strict=True
                    )
                    for item, result in zip(chunk, results, strict=True)
                }
            else:
                done = {id(item): self._try_write(item) for item in files}
            calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
            for item in batch:
                kind, name, args, kw = item
                if kind == "meta":
                    calls.append((name, args, kw))
                elif done[id(item)] is not None:
                    calls.append(done[id(item)])
            # a step that starts and finishes within one batch needs no "running" row
            finished = {c[1][1] for c in calls if c[0] == "step_finished"}
            calls = [
                c
                for c in calls
                if c[0] != "steps_started" or any(n not in finished for n, _ in c[1][1])
            ]
            try:
                self.meta.batch(calls)
            except Exception as e:
                if self.error is None:
                    self.error = ("<metadata>", e)
        if self._pool is not None:
            self._pool.shutdown()

    def _write_chunk(self, items: list[Any]) -> list[Any]:
        return [self._try_write(item) for item in items]

    def _try_write(self, item: Any) -> Any:
        kind, name, args, kw = item
        try:
            if kind == "item":
                return self._write_item(name, *args)
            return self._write_outputs(name, *args, **dict(kw))
        except Exception as e:
            if self.error is None:
                self.error = (name, e)
            return None

    def _write_item(
        self, step: str, idx: int, key: str, encoded: dict[str, tuple[str, bytes]]
    ) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
        uris = {o: self._put(step, f"{o}.item{idx}", encoded[o]) for o in encoded}
        return ("item_finished", (self.run_id, step, idx, key), {"outputs": uris})

    def _put(
        self, step: str, name: str, encoded: tuple[str, bytes], value: Any = step_mod.MISSING
    ) -> str:
        """Store one value already serialized by :func:`encode` (``value``: the value itself,
        when at hand, for stores without ``put_encoded``); return its URI."""
        put_encoded = getattr(self.store, "put_encoded", None)
        if put_encoded is not None:
            return put_encoded(self.run_id, step, name, *encoded)
        if value is step_mod.MISSING:
            value = decode(*encoded)
        return self.store.put(self.run_id, step, name, value)

    def _write_outputs(
        self,
        step: str,
        outputs: dict[str, Any],
        encoded: dict[str, tuple[str, bytes]],
        cache_key: str | None,
        **finished: Any,
    ) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
        uris = {o: self._put(step, o, encoded[o], value) for o, value in outputs.items()}
        if cache_key is not None:
            self.cache.put(cache_key, outputs)
        return (
            "step_finished",
            (self.run_id, step, finished.pop("status")),
            {**finished, "outputs": uris},
        )


class _Runner:
    def __init__(
        self,
        plan: Mapping[str, Any],
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
        self.steps: Mapping[str, Any] = plan["steps"]
        self.order: list[str] = list(plan.get("order") or self.steps)
        self.flow = str(plan.get("name"))
        self.root = root.absolute()
        self.progress = progress
        self._progress_lock = threading.Lock()
        self.secret_resolver = secret_resolver
        stack = (plan.get("stack") or {}).get("components") or {}
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
        self._plan_path: Path | None = None
        self._plan_lock = threading.Lock()

        unknown = [s for s in only if s not in self.steps]
        if unknown:
            raise RunError(f"--only: unknown step(s) {unknown}; steps: {', '.join(self.order)}")
        self.selected = self._select(only)

        if resume:
            prev = self.meta.run(resume)
            if prev is None:
                raise RunError(f"--resume: no run {resume!r} in {self.meta.path}")
            if prev["flow"] != self.flow:
                raise RunError(f"--resume: run {resume!r} belongs to flow {prev['flow']!r}")
            self.run_id = resume
            self.params = dict(prev["params"])
            old_steps = (prev.get("plan") or {}).get("steps") or {}
            changed = sorted(
                n for n in self.steps if n in old_steps and old_steps[n] != self.steps[n]
            )
            if changed:
                self.warnings.append(
                    f"the flow changed since run {resume} started (steps {', '.join(changed)}); "
                    "finished steps keep their recorded outputs"
                )
            self.run_date = run_date or _iso(prev["started"])
            self._load_finished(resume)
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
        self.ctx_values: dict[str, Any] = {}
        self._run_dir = os.path.join(str(self.root), "runs", self.run_id)  # step folders, plan
        self._children: set[subprocess.Popen[bytes]] = set()
        self._stopping = threading.Event()

    # -- setup -----------------------------------------------------------------------------------

    def _select(self, only: tuple[str, ...]) -> list[str]:
        if not only:
            return list(self.order)
        keep: set[str] = set()
        todo = list(only)
        while todo:
            s = todo.pop()
            if s in keep:
                continue
            keep.add(s)
            todo.extend(self.steps[s].get("upstream") or ())
        return [s for s in self.order if s in keep]

    def _load_finished(self, run_id: str) -> None:
        """Resume: steps recorded as finished keep their state; outputs are read back. A step
        whose artifacts are missing runs again; so does a foreach item, unless it finished."""
        for row in self.meta.items(run_id):
            try:
                outs = {
                    o: self.store.get(run_id, row["step"], f"{o}.item{row['idx']}")
                    for o in row["outputs"]
                }
            except Exception:
                continue
            self.done_items.setdefault(row["step"], {})[row["idx"]] = (row["key"], outs)
        for row in self.meta.steps(run_id):
            name, status = row["step"], row["status"]
            if name not in self.steps or status not in ("success", "cached", "skipped"):
                continue
            if status == "skipped":
                self.states[name] = status
                continue
            declared = list(self.steps[name].get("outputs") or ())
            try:
                self.outputs[name] = {o: self.store.get(run_id, name, o) for o in declared}
            except Exception:
                continue
            self.states[name] = status

    # -- the run ---------------------------------------------------------------------------------

    def run(self) -> RunResult:
        t0 = time.time()
        self.meta.start_run(self.run_id, self.flow, self.params, self.plan)
        self.writer = _Writer(self.meta, self.store, self.cache, self.run_id)
        self._emit(None, "running")
        try:
            outcome = lambda: "success" if self.first_error is None else "failed"  # noqa: E731
            with services.running(self.plan, self.run_info, outcome) as values:
                self.ctx_values = values
                self._schedule()
        except KeyboardInterrupt:
            self.writer.close()
            self.meta.end_run(self.run_id, "interrupted", "interrupted by the user")
            self.meta.close()
            raise
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

    def _node(self, s: str) -> str:
        return OPERATORS if self.steps[s].get("operator") else s

    def _schedule(self) -> None:
        selected = set(self.selected)
        nodes: list[str] = []
        members: dict[str, list[str]] = {}
        for s in self.selected:
            n = self._node(s)
            if n not in members:
                members[n] = []
                nodes.append(n)
            members[n].append(s)
        self.members = members
        pending: dict[str, set[str]] = {n: set() for n in nodes}
        for s in self.selected:
            for u in self.steps[s].get("upstream") or ():
                if u in selected and self._node(u) != self._node(s) and u not in self.states:
                    pending[self._node(s)].add(self._node(u))
        self.dependents: dict[str, list[str]] = {n: [] for n in nodes}
        for n, deps in pending.items():
            for d in deps:
                self.dependents[d].append(n)
        self.pending = pending
        self.ready: deque[str] = deque(
            n for n in nodes if not pending[n] and not all(m in self.states for m in members[n])
        )
        self.running: dict[cf.Future[Any], tuple[str, int]] = {}
        self.step_runs: dict[str, _StepRun] = {}
        pool = cf.ThreadPoolExecutor(self.max_workers, thread_name_prefix="flowc")
        self.pool = pool
        try:
            while self.ready or self.running:
                while self.ready:
                    self._start(self.ready.popleft())
                if not self.running:
                    break
                done, _ = cf.wait(self.running, return_when=cf.FIRST_COMPLETED)
                for fut in done:
                    name, index = self.running.pop(fut)
                    if name == OPERATORS:
                        self._collect_operators(fut)
                    else:
                        self._collect(name, index, fut)
        except BaseException:
            ops = sys.modules.get("flowc.runtime.operators")
            if ops is not None:  # streaming operators run in a pool thread: stop them
                ops.interrupt_all()
            self._stopping.set()
            pool.shutdown(wait=False, cancel_futures=True)
            for proc in list(self._children):  # isolated attempts: stop them too
                step_mod._kill_group(proc)
            raise
        pool.shutdown(wait=True)

    def _finish_node(self, node: str) -> None:
        for d in self.dependents.get(node, ()):
            self.pending[d].discard(node)
            if not self.pending[d]:
                self.ready.append(d)

    def _upstream(self, data: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        return {u: self.outputs[u] for u in data.get("upstream") or () if u in self.outputs}

    def _inputs(self, name: str, data: Mapping[str, Any], item: Any) -> step_mod.Inputs:
        return step_mod.Inputs(
            self.plan,
            name,
            params=self.params,
            upstream=self._upstream(data),
            run_id=self.run_id,
            run_date=self.run_date,
            item=item,
            secret_resolver=self.secret_resolver,
        )

    def _start(self, node: str) -> None:
        if node == OPERATORS:
            self._start_operators()
            return
        name = node
        data = self.steps[name]
        blocked = self._blocked(data.get("upstream") or ())
        if blocked:
            self._skip(name, blocked)
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
                key = self._cache_key(name, data, items)
                hit = self.cache.get(key)
                if hit is not None and all(o in hit for o in data.get("outputs") or ()):
                    run = _StepRun(name, now, 0, cache_key=None)
                    self._succeed(run, hit, status="cached")
                    return
        except Exception as e:
            err, tb = self._describe(e)
            self._fail(name, StepFailure(name, 0, err, traceback=tb), now, [])
            return
        self.writer.meta_op("steps_started", self.run_id, [(name, now)])
        self._emit(name, "running")
        instances = [(None, step_mod.MISSING)] if items is None else list(enumerate(items))
        run = _StepRun(name, now, len(instances), cache_key=key, foreach=items is not None)
        run.items = items or []
        self.step_runs[name] = run
        done = self.done_items.get(name)
        if done and items:  # resume: items that finished before are not run again
            for i, it in enumerate(items):
                if i in done and done[i][0] == _item_key(it):
                    run.results[i] = done[i][1]
            instances = [(i, it) for i, it in instances if i not in run.results]
            if not instances:
                self._complete(name)
                return
        if not instances:  # foreach over an empty list
            self._succeed(run, {o: [] for o in data.get("outputs") or ()})
            return
        if len(instances) == 1 and not self.running and not self.ready:
            # Nothing else can run until this step ends: run it here, saving two thread
            # hand-offs (the hot path of long chains).
            index, item = instances[0]
            fut: cf.Future[Any] = cf.Future()
            try:
                fut.set_result(self._attempts(name, data, index, item))
            except _Failed as f:
                fut.set_exception(f)
            self._collect(name, -1 if index is None else index, fut)
            return
        for index, item in instances:
            fut = self.pool.submit(self._attempts, name, data, index, item)
            self.running[fut] = (name, -1 if index is None else index)

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
                self.writer.item(name, index, _item_key(run.items[index]), encoded)
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

    def _succeed(self, run: _StepRun, outputs: dict[str, Any], status: str = "success") -> None:
        name = run.name
        try:  # serialize now: an output that cannot be stored fails its step, here
            encoded = {o: encode(v) for o, v in outputs.items()}
        except Exception as e:
            err, tb = self._describe(e)
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
        self._finish_node(name)

    def _blocked(self, upstream: Iterable[str]) -> str | None:
        """``"upstream_failed"`` (an upstream step failed) or ``"skipped"`` (one was skipped)
        when a finished upstream step did not succeed; None when the step may run."""
        bad = [self.states[u] for u in upstream if self.states.get(u, "success") not in OK]
        if not bad:
            return None
        return (
            "upstream_failed" if any(b in ("failed", "upstream_failed") for b in bad) else "skipped"
        )

    def _skip(self, name: str, status: str) -> None:
        now = time.time()
        self.writer.meta_op("step_finished", self.run_id, name, status, started=None, ended=now)
        self.states[name] = status
        self._emit(name, status)
        self._finish_node(name)

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
        self._finish_node(name)

    # -- operators (pypz): all started together by flowc.runtime.operators ---------------------

    def _start_operators(self) -> None:
        # Members are not graph nodes (the group is): _skip/_succeed/_fail of a member release
        # no dependents; _finish_node(OPERATORS) does.
        names = self.members[OPERATORS]
        ups = {u for s in names for u in self.steps[s].get("upstream") or () if u not in names}
        blocked = self._blocked(ups)
        if blocked:
            for s in names:
                self._skip(s, blocked)
            self._finish_node(OPERATORS)
            return
        started = time.time()
        self.writer.meta_op("steps_started", self.run_id, [(s, started) for s in names])
        for s in names:
            self._emit(s, "running")

        ups_out = {u: self.outputs[u] for u in sorted(ups) if u in self.outputs}

        def call() -> Any:
            from flowc.runtime.operators import run_operators  # lazy: optional part

            info = dataclasses.replace(
                self.run_info, extra={**self.run_info.extra, "upstream": ups_out}
            )
            return run_operators(self.plan, list(names), info)

        fut = self.pool.submit(call)
        self._op_future = (fut, names, started)
        self.running[fut] = (OPERATORS, 0)
        self.step_runs[OPERATORS] = _StepRun(OPERATORS, started, 1)

    def _collect_operators(self, fut: cf.Future[Any]) -> None:
        _, names, started = self._op_future
        try:
            result = fut.result() or {}
        except Exception as e:
            err, tb = self._describe(e)
            for s in names:
                self._fail(s, StepFailure(s, 1, err, traceback=tb), started, [])
            self._finish_node(OPERATORS)
            return
        for s in names:
            run = _StepRun(s, started, 1)
            outs = dict(result.get(s) or {})
            self._succeed(run, outs)
        self._finish_node(OPERATORS)

    # -- one instance: attempts with retries (in a pool thread) ----------------------------------

    def _attempts(
        self, name: str, data: Mapping[str, Any], index: int | None, item: Any
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        retries = int(data.get("retries") or 0)
        delay = float(data.get("retry_delay") or 0.0)
        records: list[dict[str, Any]] = []
        instance = None if index is None else str(index)
        for attempt in range(1, retries + 2):
            started = time.time()
            log = self._log_path(name, index, attempt)
            try:
                outs = self._attempt(name, data, index, item, attempt, log)
            except (Exception, SystemExit) as e:  # sys.exit() in a step fails the step only
                err, tb = self._describe(e)
                self._append_log(log, tb)
                records.append(
                    {
                        "instance": instance,
                        "attempt": attempt,
                        "status": "failed",
                        "started": started,
                        "ended": time.time(),
                        "error": err,
                        "log": log,
                    }
                )
                if attempt <= retries and not self._stopping.is_set():
                    self._emit(name, "retry", attempt=attempt, error=err)
                    if not (delay and self._stopping.wait(delay)):
                        continue
                failure = StepFailure(name, attempt, err, log, instance, tb)
                raise _Failed(failure, records) from None
            records.append(
                {
                    "instance": instance,
                    "attempt": attempt,
                    "status": "success",
                    "started": started,
                    "ended": time.time(),
                    "log": log if self._log_written(data) else None,
                }
            )
            return outs, records
        raise AssertionError("unreachable")  # pragma: no cover

    def _attempt(
        self,
        name: str,
        data: Mapping[str, Any],
        index: int | None,
        item: Any,
        attempt: int,
        log: str,
    ) -> dict[str, Any]:
        if not _runs_isolated(data):
            return step_mod.execute(
                self.plan,
                name,
                params=self.params,
                upstream=self._upstream(data),
                run_id=self.run_id,
                run_date=self.run_date,
                item=item,
                ctx_extra={**self.ctx_values, "artifact_dir": os.path.join(self._run_dir, name)},
                secret_resolver=self.secret_resolver,
                log_path=log,
                timeout=data.get("timeout"),
                attempt=attempt,
                index=index,
                mask_values=self.secret_values,
            )
        return self._isolated(name, data, index, item, attempt, log)

    def _isolated(
        self,
        name: str,
        data: Mapping[str, Any],
        index: int | None,
        item: Any,
        attempt: int,
        log: str,
    ) -> dict[str, Any]:
        """Run the attempt as ``replicas`` child processes; kill them all on timeout."""
        replicas = int(data.get("replicas") or 1)
        if self._stopping.is_set():
            raise step_mod.StepError(name, "the run was interrupted")
        plan_path = self._write_plan()
        step_dir = Path(self._run_dir, name)
        step_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "PYTHONPATH": _child_pythonpath(),
            "FLOWC_PARENT_PID": str(os.getpid()),
        }
        timeout = data.get("timeout")
        procs = []
        tag = ("" if index is None else f"{index}-") + f"a{attempt}"
        for r in range(replicas):
            replica = r if replicas > 1 else None
            rtag = tag + ("" if replica is None else f"-r{replica}")
            inp, out = step_dir / f".{rtag}.in.pkl", step_dir / f".{rtag}.out.pkl"
            payload: dict[str, Any] = {
                "params": self.params,
                "upstream": self._upstream(data),
                "run_id": self.run_id,
                "run_date": self.run_date,
                "index": index,
                "replica": replica,
                "attempt": attempt,
                "artifact_dir": str(step_dir),
                "root": str(self.root),
                "timeout": timeout,
            }
            if item is not step_mod.MISSING:
                payload["item"] = item
            atomic_write(inp, pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL))
            out.unlink(missing_ok=True)
            rlog = Path(log if replica is None else log.replace(".log", f".r{replica}.log"))
            rlog.parent.mkdir(parents=True, exist_ok=True)
            with open(rlog, "ab") as fh:
                argv = [sys.executable, "-m", "flowc.runtime", "step", "--plan", str(plan_path)]
                argv += ["--step", name, "--inputs", str(inp), "--outputs", str(out)]
                proc = subprocess.Popen(  # noqa: S603
                    argv, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True
                )
            self._children.add(proc)
            procs.append((proc, inp, out, rlog))
        deadline = None if timeout is None else time.monotonic() + float(timeout)
        results: list[dict[str, Any]] = []
        try:
            for proc, _inp, out, rlog in procs:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                try:
                    rc = proc.wait(timeout=left)
                except subprocess.TimeoutExpired:
                    raise step_mod.StepError(
                        name, f"timed out after {float(timeout):g}s (process killed)"
                    ) from None
                self._mask_file(rlog)
                try:
                    value = pickle.loads(out.read_bytes())  # noqa: S301
                except (OSError, EOFError, pickle.UnpicklingError):
                    raise step_mod.StepError(
                        name, f"step process exited with code {rc} and wrote no outputs"
                    ) from None
                if isinstance(value, dict) and "$error" in value:
                    e = value["$error"]
                    raise _ChildError(e["type"], e["message"], e["traceback"])
                results.append(value)
        finally:
            for proc, inp, out, _rlog in procs:
                if proc.poll() is None:
                    step_mod._kill_group(proc)
                self._children.discard(proc)
                inp.unlink(missing_ok=True)
                out.unlink(missing_ok=True)
        if replicas == 1:
            return results[0]
        declared = list(data.get("outputs") or ())
        return {o: [r[o] for r in results] for o in declared}

    # -- helpers ---------------------------------------------------------------------------------

    def _log_path(self, name: str, index: int | None, attempt: int) -> str:
        prefix = "" if index is None else f"item-{index}."
        return os.path.join(self._run_dir, name, f"{prefix}attempt-{attempt}.log")

    def _write_plan(self) -> Path:
        with self._plan_lock:
            if self._plan_path is None:
                path = Path(self._run_dir, "plan.json")
                atomic_write(path, json.dumps(self.plan, indent=1).encode("utf-8"))
                self._plan_path = path
            return self._plan_path

    def _cache_key(self, name: str, data: Mapping[str, Any], items: list[Any] | None) -> str:
        h = hashlib.sha256()
        head = [data.get("kind"), data.get("run"), data.get("outputs"), data.get("replicas")]
        h.update(json.dumps(head).encode())
        if data.get("kind") != "command" and data.get("run"):
            h.update(step_mod.callable_source(data["run"]).encode("utf-8"))
        for item in [step_mod.MISSING] if items is None else items:
            inputs = self._inputs(name, data, item)
            h.update(encode(inputs.kwargs(data))[1])
            h.update(encode(inputs.env(data))[1])
            if data.get("kind") == "command":
                h.update(encode(inputs.argv(data))[1])
        return h.hexdigest()

    def _describe(self, e: BaseException) -> tuple[str, str]:
        if isinstance(e, _ChildError):
            return self._mask(f"{e.type_name}: {e.message}"), self._mask(e.tb)
        if isinstance(e, step_mod.StepError):
            text = e.message
        else:
            text = f"{type(e).__name__}: {e}"
        tb = "".join(traceback.format_exception(type(e), e, e.__traceback__))
        return self._mask(text), self._mask(tb)

    def _mask(self, text: str) -> str:
        return step_mod.mask(text, self.secret_values)

    def _mask_file(self, path: Path) -> None:
        if self.secret_values and path.exists():
            text = path.read_text(encoding="utf-8", errors="replace")
            masked = self._mask(text)
            if masked != text:
                path.write_text(masked, encoding="utf-8")

    @staticmethod
    def _log_written(data: Mapping[str, Any]) -> bool:
        """Whether the attempt just run in this thread wrote its log (a child process's log
        file always exists; a command always writes one)."""
        return _runs_isolated(data) or step_mod.log_was_written()

    def _append_log(self, log: str, text: str) -> None:
        os.makedirs(os.path.dirname(log), exist_ok=True)
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(text)

    def _emit(self, step: str | None, status: str, **extra: Any) -> None:
        if self.progress is None:
            return
        event = {"run_id": self.run_id, "step": step, "status": status, **extra}
        with self._progress_lock:
            try:
                self.progress(event)
            except Exception:  # a broken progress display must not break the run
                self.progress = None


def _runs_isolated(data: Mapping[str, Any]) -> bool:
    """Whether a step's attempts run as child processes (``python -m flowc.runtime step``):
    replicas; a callable with a timeout (to be killable) or an ``env:`` (its own environment).
    A command is its own process already: it runs in-thread unless it has replicas."""
    if int(data.get("replicas") or 1) > 1:
        return True
    return data.get("kind") != "command" and (
        data.get("timeout") is not None or bool(data.get("env"))
    )


def _item_key(item: Any) -> str:
    """Identifies a foreach item across a resume (its list may have changed)."""
    return hashlib.sha256(encode(item)[1]).hexdigest()[:24]


def _child_pythonpath() -> str:
    """This process' import path for child processes (user modules found here are found
    there: the flow's folder, the current directory, PYTHONPATH)."""
    parts = [os.getcwd(), *(os.path.abspath(p) for p in sys.path if p and os.path.isdir(p))]
    return os.pathsep.join(dict.fromkeys(parts))


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")
