"""The executor's side of a step outside foreach groups: starting it (trigger rule, ``when``,
``foreach`` / matrix items, cache, items a resumed run finished), collecting each instance's
attempts (outputs, failure, or a skip) and completing it once every instance is done (a foreach
step's state from its items': failed if one failed, skipped if all skipped; skipped items give
null outputs); and recording an interrupted run."""

from __future__ import annotations

import concurrent.futures as cf
import time
from typing import TYPE_CHECKING, Any

from flowc.runtime import step as step_mod
from flowc.runtime import triggers
from flowc.runtime.attempts import _Failed, _Skipped
from flowc.runtime.expansion import ForeachError, foreach_items, step_key
from flowc.runtime.graph import opt
from flowc.runtime.run_state import StepFailure, StepRun, cache_key, item_key
from flowc.runtime.store import encode

if TYPE_CHECKING:
    from flowc.runtime.executor import _Runner


def start(runner: _Runner, name: str) -> None:
    """Start step ``name`` (outside foreach groups): trigger rule, ``when``, ``foreach``
    items, cache, resumed items; then its instances on the pool (or here)."""
    data = runner.steps[name]
    decision = runner.outcomes.decide(name)
    if decision != triggers.RUN:
        runner._skip(name, decision)
        return
    now = time.time()
    run_extra = runner.run_extra(name)
    try:
        upstream = runner.outcomes.upstream_values(name, None, runner.make_inputs)
        inputs = runner.make_inputs(name, upstream, step_mod.MISSING, run_extra)
        if data.get("when") is not None and not inputs.eval(data["when"]):
            runner._skip(name, "skipped")
            return
        items: list[Any] | None = None
        if data.get("foreach") is not None:
            try:
                items = foreach_items(inputs.eval(data["foreach"]), opt(data, "matrix", ()))
            except ForeachError as e:
                raise step_mod.StepError(name, str(e)) from None
        key = None
        if data.get("cache"):
            key = cache_key(
                data, items, lambda item: runner.make_inputs(name, upstream, item, run_extra)
            )
            hit = runner.cache.get(key)
            if hit is not None and all(o in hit for o in data.get("outputs") or ()):
                runner._succeed(StepRun(name, now, 0, cache_key=None), hit, status="cached")
                return
    except Exception as e:
        err, tb = runner.attempts.describe(e)
        runner._fail(name, StepFailure(name, 0, err, traceback=tb), now, [])
        return
    runner.mark_started(name, now)
    instances: list[tuple[int | None, Any]] = (
        [(None, step_mod.MISSING)] if items is None else list(enumerate(items))
    )
    run = StepRun(name, now, len(instances), cache_key=key, foreach=items is not None)
    run.items = items or []
    runner.step_runs[name] = run
    done = runner.done_items.get(name)
    if done and items:  # resume: items that finished before are not run again
        for i, it in enumerate(items):
            if i in done and done[i][0] == item_key(it):
                run.results[i] = done[i][1]
        instances = [(i, it) for i, it in instances if i not in run.results]
        if not instances:
            complete(runner, name)
            return
    if not instances:  # foreach over an empty list
        runner._succeed(run, {o: [] for o in data.get("outputs") or ()})
        return
    node = step_key(name)
    if len(instances) == 1 and not runner.running and not runner.schedule.ready:
        # Nothing else can run until this step ends: run it here, saving two thread
        # hand-offs (the hot path of long chains).
        index, item = instances[0]
        fut: cf.Future[Any] = cf.Future()
        try:
            fut.set_result(runner.attempts.run(name, data, index, item, upstream, run_extra))
        except (_Failed, _Skipped) as f:
            fut.set_exception(f)
        collect(runner, name, -1 if index is None else index, fut)
        return
    for index, item in instances:
        fut = runner.pool.submit(runner.attempts.run, name, data, index, item, upstream, run_extra)
        runner.running[fut] = (node, -1 if index is None else index)


def collect(runner: _Runner, name: str, index: int, fut: cf.Future[Any]) -> None:
    """Instance ``index`` of ``name`` ended (-1: the step has no foreach)."""
    run = runner.step_runs[name]
    try:
        outs, attempts = fut.result()
        run.results[index] = outs
    except _Failed as f:
        run.failures[index] = f.failure
        attempts = f.attempts
    except _Skipped as sk:
        run.skipped[index] = sk.reason
        attempts = sk.attempts
    run.attempts.extend(attempts)
    if run.foreach and index in run.results and run.instances > 1:
        try:  # persisted as it finishes, so a killed run resumes from here
            encoded = {o: encode(v) for o, v in run.results[index].items()}
            runner.writer.item(name, index, item_key(run.items[index]), encoded)
        except Exception:  # not storable: the step will fail when gathered
            pass
    complete(runner, name)


def complete(runner: _Runner, name: str) -> None:
    """Once every instance of ``name`` is done: its state and outputs."""
    run = runner.step_runs[name]
    if len(run.results) + len(run.failures) + len(run.skipped) < run.instances:
        return
    if run.failures:
        first = run.failures[min(run.failures)]
        runner._fail(name, first, run.started, run.attempts)
        return
    declared = list(runner.steps[name].get("outputs") or ())
    if run.foreach:
        n = len(run.items)
        for i in range(n):  # the instances' states, for the trigger rules downstream
            state = "skipped" if i in run.skipped else "success"
            runner.outcomes.unit_states.setdefault(name, {})[i] = state
        if n and len(run.skipped) == n:
            runner._skip(name, "skipped", run)
            return
        outputs = {
            o: [run.results[i][o] if i in run.results else None for i in range(n)] for o in declared
        }
    elif run.skipped:
        runner._skip(name, "skipped", run)
        return
    else:
        outputs = run.results[-1]
    runner._succeed(run, outputs)


def interrupted(runner: _Runner) -> None:
    """Ctrl-C: the steps that were running are recorded as ``interrupted`` (not left
    ``running``) with the attempts they finished, and so is the run."""
    now = time.time()
    for name in runner.order:
        if name in runner.started_steps and name not in runner.states:
            run = runner.step_runs.get(name)
            started = run.started if run is not None else now
            attempts = run.attempts if run is not None else []
            runner.writer.meta_op(
                "step_finished",
                runner.run_id,
                name,
                "interrupted",
                started=started,
                ended=now,
                attempts=attempts,
                error="interrupted by the user",
            )
            runner.states[name] = "interrupted"
    runner.writer.close()
    runner.meta.end_run(runner.run_id, "interrupted", "interrupted by the user")
    runner._emit(None, "interrupted")
    runner.meta.close()
