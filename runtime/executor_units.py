"""The executor's side of foreach groups: opening a group (its ``foreach`` evaluated once what
it waits for is done, one scheduling key per member and item), starting one member instance
(trigger rule and ``when`` per item, resumed items reused), collecting it, and completing a
member step once all its items are done (its state from theirs, its outputs the lists over
items). Item-wise: instance i of a member waits only for instance i of the members it depends
on (:func:`flowc.runtime.expansion.unit_deps`)."""

from __future__ import annotations

import concurrent.futures as cf
import time
from typing import TYPE_CHECKING, Any

from flowc.runtime import triggers
from flowc.runtime.attempts import _Failed, _Skipped
from flowc.runtime.expansion import (
    Key,
    foreach_items,
    open_key,
    step_key,
    unit_deps,
    unit_key,
)
from flowc.runtime.run_state import StepFailure, StepRun, cache_key, item_key
from flowc.runtime.store import encode

if TYPE_CHECKING:
    from flowc.runtime.executor import _Runner


def open_deps(runner: _Runner, group: str) -> list[Key]:
    """What foreach group ``group`` waits for before its items are known."""
    from flowc.runtime.expansion import open_deps as deps

    return deps(runner.graph, group, runner.selected_set)


def open_group(runner: _Runner, group: str) -> None:
    """Evaluate ``group``'s items and add one key per member and item."""
    graph, outcomes = runner.graph, runner.outcomes
    members = [m for m in graph.members(group) if m in runner.selected_set]
    data = graph.groups[group]
    now = time.time()
    try:
        upstream = {u: outcomes.value(u, None, runner.make_inputs) for u in graph.group_deps(group)}
        inputs = runner.make_inputs(group, upstream)
        items = foreach_items(inputs.eval(data.get("foreach")), data.get("matrix") or ())
    except Exception as e:
        states = [
            runner.states.get(leaf, "success")
            for u in graph.group_deps(group)
            for leaf in graph.leaves(u)
        ]
        bad = [s for s in states if s not in triggers.SUCCEEDED]
        for m in members:
            if m in runner.states:
                continue
            if bad:
                failed = any(s in triggers.FAILED for s in bad)
                runner._skip(m, "upstream_failed" if failed else "skipped")
            else:
                err, tb = runner.attempts.describe(e)
                msg = f"group '{group}': {err}"
                runner._fail(m, StepFailure(m, 0, msg, traceback=tb), now, [])
        runner.schedule.release(open_key(group))
        return
    outcomes.items[group] = items
    todo = []
    for m in members:
        if m in runner.states:  # resume: finished before; its items' states for triggers
            _restore(runner, m, len(items))
            continue
        run = StepRun(m, now, len(items), foreach=True)
        run.items = items
        runner.step_runs[m] = run
        outcomes.unit_states[m] = {}
        todo.append(m)
    for m in todo:
        if not items:
            runner._succeed(runner.step_runs[m], {o: [] for o in outcomes.declared(m)})
            continue
        for i in range(len(items)):
            runner.schedule.add(unit_key(m, i), unit_deps(graph, m, i, runner.selected_set))
    runner.schedule.release(open_key(group))


def _restore(runner: _Runner, step: str, count: int) -> None:
    """The item states and outputs of a member step that finished in the run being resumed:
    items stored as finished succeeded, the others were skipped."""
    outcomes, state = runner.outcomes, runner.states[step]
    done = runner.done_items.get(step) or {}
    whole = runner.outputs.get(step) or {}
    for i in range(count):
        if state in triggers.SUCCEEDED and (i in done or not done):
            outs = {o: (whole.get(o) or [None] * count)[i] for o in outcomes.declared(step)}
            outcomes.record_unit(step, i, "success", outs)
        else:
            outcomes.record_unit(step, i, "skipped", None)
        runner.schedule.done.add(unit_key(step, i))


def start_unit(runner: _Runner, step: str, index: int) -> None:
    """Start instance ``index`` of member ``step`` (or decide it without running)."""
    group = runner.graph.foreach_group(step)
    assert group is not None
    item = runner.outcomes.items[group][index]
    data = runner.steps[step]
    run = runner.step_runs[step]
    decision = runner.outcomes.decide(step, index)
    if decision != triggers.RUN:
        unit_done(runner, step, index, decision)
        return
    now = time.time()
    try:
        upstream = runner.outcomes.upstream_values(step, index, runner.make_inputs)
        inputs = runner.make_inputs(step, upstream, item)
        if data.get("when") is not None and not inputs.eval(data["when"]):
            unit_done(runner, step, index, "skipped")
            return
    except Exception as e:
        err, tb = runner.attempts.describe(e)
        run.failures[index] = StepFailure(step, 0, err, instance=str(index), traceback=tb)
        runner.mark_started(step, now)
        unit_done(runner, step, index, "failed")
        return
    done = runner.done_items.get(step) or {}
    if index in done and done[index][0] == item_key(item):  # resume: finished before
        runner.mark_started(step, now)
        unit_done(runner, step, index, "success", done[index][1], stored=True)
        return
    runner.mark_started(step, now)
    if data.get("cache"):  # per item: its resolved inputs (the item's values included)
        try:
            key = cache_key(data, None, lambda _: inputs)
        except Exception as e:
            err, tb = runner.attempts.describe(e)
            run.failures[index] = StepFailure(step, 0, err, instance=str(index), traceback=tb)
            unit_done(runner, step, index, "failed")
            return
        hit = runner.cache.get(key)
        if hit is not None and all(o in hit for o in runner.outcomes.declared(step)):
            unit_done(runner, step, index, "cached", hit)
            return
        run.unit_cache_keys[index] = key
    fut = runner.pool.submit(runner.attempts.run, step, data, index, item, upstream)
    runner.running[fut] = (unit_key(step, index), index)


def collect(runner: _Runner, step: str, index: int, fut: cf.Future[Any]) -> None:
    """Instance ``index`` of member ``step`` ended."""
    run = runner.step_runs[step]
    try:
        outs, attempts = fut.result()
    except _Failed as f:
        run.failures[index] = f.failure
        run.attempts.extend(f.attempts)
        unit_done(runner, step, index, "failed")
        return
    except _Skipped as sk:
        run.skipped[index] = sk.reason
        run.attempts.extend(sk.attempts)
        unit_done(runner, step, index, "skipped")
        return
    run.attempts.extend(attempts)
    unit_done(runner, step, index, "success", outs)


def unit_done(
    runner: _Runner,
    step: str,
    index: int,
    state: str,
    outs: dict[str, Any] | None = None,
    stored: bool = False,
) -> None:
    """Record instance ``index`` of ``step``; complete the step once all its items are."""
    run = runner.step_runs[step]
    if state in triggers.SUCCEEDED and outs is not None:
        run.results[index] = outs
        key = run.unit_cache_keys.pop(index, None)
        if key is not None and state == "success":
            try:
                runner.cache.put(key, outs)
            except Exception:  # not storable: the step will fail when gathered
                pass
        if not stored:
            try:  # persisted as it finishes, so a killed run resumes from here
                encoded = {o: encode(v) for o, v in outs.items()}
                runner.writer.item(step, index, item_key(run.items[index]), encoded)
            except Exception:  # not storable: the step will fail when gathered
                pass
    runner.outcomes.record_unit(step, index, state, outs)
    runner.schedule.release(unit_key(step, index))
    if len(runner.outcomes.unit_states.get(step) or {}) >= run.instances:
        _complete(runner, step)


def _complete(runner: _Runner, step: str) -> None:
    """Every item of member ``step`` is done: its state and outputs."""
    run = runner.step_runs[step]
    states = runner.outcomes.unit_states.get(step) or {}
    state = triggers.aggregate(states[i] for i in sorted(states))
    if state == "failed":
        first = run.failures[min(run.failures)]
        runner._fail(step, first, run.started, run.attempts)
    elif state in ("skipped", "upstream_failed"):
        runner._skip(step, state, run if step in runner.started_steps else None)
    else:
        runner._succeed(run, runner.outcomes.member_outputs(step, run.instances))
    assert step_key(step) in runner.schedule.done


__all__ = ["collect", "open_deps", "open_group", "start_unit", "unit_done"]
