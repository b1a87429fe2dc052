"""Resuming a run (``--resume RUN_ID``): what the earlier run recorded that the new execution
starts from: its params and date, the steps and foreach items that finished (with their outputs
read back), the attempt numbers already used, and a warning when the flow changed since."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flowc.runtime.metadata import MetadataStore
from flowc.runtime.plan import StepData
from flowc.runtime.run_state import RunError, load_finished
from flowc.runtime.store import ArtifactStore


@dataclass
class Resumed:
    """The state a resumed run starts from (``states``/``outputs`` of the finished steps)."""

    params: dict[str, Any]
    run_date: str | None
    states: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    done_items: dict[str, dict[int, tuple[str, dict[str, Any]]]] = field(default_factory=dict)
    previous_attempts: dict[tuple[str, str | None], int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def resume_run(
    meta: MetadataStore,
    store: ArtifactStore,
    run_id: str,
    flow: str,
    steps: Mapping[str, StepData],
    run_date: str | None,
) -> Resumed:
    """Read run ``run_id`` back, or raise :class:`RunError` (unknown run, another flow)."""
    prev = meta.run(run_id)
    if prev is None:
        raise RunError(f"--resume: no run {run_id!r} in {meta.path}")
    if prev["flow"] != flow:
        raise RunError(f"--resume: run {run_id!r} belongs to flow {prev['flow']!r}")
    out = Resumed(params=dict(prev["params"]), run_date=run_date or iso(prev["started"]))
    old_steps = (prev.get("plan") or {}).get("steps") or {}
    changed = sorted(n for n in steps if n in old_steps and old_steps[n] != steps[n])
    if changed:
        out.warnings.append(
            f"the flow changed since run {run_id} started (steps {', '.join(changed)}); "
            "finished steps keep their recorded outputs"
        )
    out.done_items = load_finished(meta, store, run_id, steps, out.states, out.outputs)
    for a in meta.attempts(run_id):
        key = (a["step"], a["instance"])
        out.previous_attempts[key] = max(out.previous_attempts.get(key, 0), a["attempt"])
    return out


def iso(ts: float | None) -> str | None:
    """A Unix time as ISO-8601 UTC (seconds), None for None."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")
