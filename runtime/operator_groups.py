"""The executor's side of streaming operators (pypz): an operator group (all operator steps of
the selected plan) is started together once its non-operator upstream steps succeeded, runs in
one pool thread through :func:`flowc.runtime.operators.run_operators`, and is collected: every
member succeeds with its outputs, or all fail with the group's error."""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import time
from typing import TYPE_CHECKING, Any

from flowc.runtime.run_state import OPS_KEY, OperatorGroup, StepFailure, StepRun, blocked

if TYPE_CHECKING:
    from flowc.runtime.executor import _Runner


def start(runner: _Runner, group: OperatorGroup) -> None:
    """Start ``group`` on the runner's pool (or skip its members when an upstream did not
    succeed)."""
    names = group.members
    ups = {u for s in names for u in runner.steps[s].get("upstream") or () if u not in names}
    why = blocked(runner.states, ups)
    if why:
        for s in names:
            runner._skip(s, why)
        runner.schedule.release(OPS_KEY)
        return
    group.started = time.time()
    runner.writer.meta_op("steps_started", runner.run_id, [(s, group.started) for s in names])
    runner.started_steps.update(names)
    for s in names:
        runner._emit(s, "running")

    ups_out = {u: runner.outputs[u] for u in sorted(ups) if u in runner.outputs}

    def call() -> Any:
        from flowc.runtime.operators import run_operators  # lazy: optional part

        info = dataclasses.replace(
            runner.run_info, extra={**runner.run_info.extra, "upstream": ups_out}
        )
        return run_operators(runner.plan, list(names), info)

    runner.running[runner.pool.submit(call)] = (group, 0)


def collect(runner: _Runner, group: OperatorGroup, fut: cf.Future[Any]) -> None:
    """``group`` ended: record each member's outputs, or the group's error for all."""
    names, started = group.members, group.started
    try:
        result = fut.result() or {}
    except Exception as e:
        err, tb = runner.attempts.describe(e)
        for s in names:
            runner._fail(s, StepFailure(s, 1, err, traceback=tb), started, [])
        runner.schedule.release(OPS_KEY)
        return
    for s in names:
        runner._succeed(StepRun(s, started, 1), dict(result.get(s) or {}))
    runner.schedule.release(OPS_KEY)
