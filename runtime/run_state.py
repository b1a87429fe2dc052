"""The scheduling state of a local run: what the scheduler thread knows and decides with.

Owns the outcome types (:class:`RunError`, :class:`StepFailure`, :class:`RunResult`), the
:class:`OperatorGroup` (every streaming operator of the run: they start together), the
dependency bookkeeping between scheduling keys (:class:`Schedule`: pending, dependents, the
ready queue; keys are :mod:`flowc.runtime.expansion`'s), one step's in-flight record
(:class:`StepRun`), and the pure rules: whether a finished upstream blocks an operator group,
what a resumed run keeps. Nothing here runs a step or writes a file.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flowc.runtime import step as step_mod
from flowc.runtime.expansion import Key
from flowc.runtime.metadata import MetadataStore
from flowc.runtime.plan import StepData
from flowc.runtime.store import ArtifactStore, encode

OK = ("success", "cached")
"""Step states that let downstream steps run."""


class RunError(ValueError):
    """The run cannot start: unknown ``only`` step, unknown ``resume`` run id, bad params."""


class RunInterrupted(KeyboardInterrupt):
    """The run was interrupted (Ctrl-C): every step was stopped and the run recorded as
    ``interrupted``; ``flowc run FLOW --resume run_id`` continues it."""

    def __init__(self, run_id: str):
        self.run_id = run_id
        super().__init__(f"run {run_id} interrupted")


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
    flow_outputs: dict[str, Any] = field(default_factory=dict)  # the flow's ``outputs:``

    @property
    def ok(self) -> bool:
        return self.status == "success"


@dataclass
class StepRun:
    """One step between its start and its end: its instances' results and failures."""

    name: str
    started: float
    instances: int
    cache_key: str | None = None
    results: dict[int, dict[str, Any]] = field(default_factory=dict)
    attempts: list[dict[str, Any]] = field(default_factory=list)
    failures: dict[int, StepFailure] = field(default_factory=dict)
    skipped: dict[int, str] = field(default_factory=dict)  # index -> reason
    unit_cache_keys: dict[int, str] = field(default_factory=dict)  # foreach-group items
    foreach: bool = False
    items: list[Any] = field(default_factory=list)


# -- graph nodes ------------------------------------------------------------------------------


@dataclass(eq=False)
class OperatorGroup:
    """Every streaming operator (pypz) of the run: started together by
    :func:`flowc.runtime.operators.run_operators`, released together. Its members are not graph
    nodes: skipping, succeeding or failing a member releases no dependent; the group does."""

    members: tuple[str, ...]
    started: float = 0.0


OPS_KEY: Key = ("ops",)
"""The scheduling key of the run's :class:`OperatorGroup`."""


class Schedule:
    """Who waits for whom, by scheduling key (:mod:`flowc.runtime.expansion`): a key is
    *ready* once every key it waits for was released (finished, whatever its outcome). Keys
    are added as they become known (a foreach group's units once its items are)."""

    def __init__(self) -> None:
        self.pending: dict[Key, set[Key]] = {}
        self.dependents: dict[Key, list[Key]] = {}
        self.done: set[Key] = set()
        self.ready: deque[Key] = deque()

    def add(self, key: Key, deps: Iterable[Key]) -> None:
        """``key`` waits for ``deps`` (those released already are not waited for)."""
        waiting = {d for d in deps if d not in self.done and d != key}
        self.pending[key] = waiting
        for d in waiting:
            self.dependents.setdefault(d, []).append(key)
        if not waiting:
            self.ready.append(key)

    def release(self, key: Key) -> None:
        """``key`` finished: what waited only for it becomes ready."""
        if key in self.done:
            return
        self.done.add(key)
        for d in self.dependents.pop(key, ()):
            waiting = self.pending.get(d)
            if waiting is not None and key in waiting:
                waiting.discard(key)
                if not waiting:
                    self.ready.append(d)


# -- rules ------------------------------------------------------------------------------------


def blocked(states: Mapping[str, str], upstream: Iterable[str]) -> str | None:
    """``"upstream_failed"`` (an upstream step failed) or ``"skipped"`` (one was skipped) when a
    finished upstream step did not succeed; None when the step may run."""
    bad = [states[u] for u in upstream if states.get(u, "success") not in OK]
    if not bad:
        return None
    return "upstream_failed" if any(b in ("failed", "upstream_failed") for b in bad) else "skipped"


def upstream_outputs(
    outputs: Mapping[str, dict[str, Any]], data: StepData
) -> dict[str, dict[str, Any]]:
    """``{upstream step: its outputs}`` for the step ``data``, as far as they are known."""
    return {u: outputs[u] for u in data.get("upstream") or () if u in outputs}


def item_key(item: Any) -> str:
    """Identifies a foreach item across a resume (its list may have changed)."""
    return hashlib.sha256(encode(item)[1]).hexdigest()[:24]


def new_run_id() -> str:
    """Sortable and unique: ``20261126T004529-3f9a1c``."""
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


def load_finished(
    meta: MetadataStore,
    store: ArtifactStore,
    run_id: str,
    steps: Mapping[str, StepData],
    states: dict[str, str],
    outputs: dict[str, dict[str, Any]],
) -> dict[str, dict[int, tuple[str, dict[str, Any]]]]:
    """Resume: steps recorded as finished keep their state (into ``states``) and their outputs
    are read back (into ``outputs``). A step whose artifacts are missing runs again; so does a
    foreach item, unless it finished. Returns the finished items: ``{step: {index: (item key,
    outputs)}}``."""
    done_items: dict[str, dict[int, tuple[str, dict[str, Any]]]] = {}
    for row in meta.items(run_id):
        try:
            outs = {
                o: store.get(run_id, row["step"], f"{o}.item{row['idx']}") for o in row["outputs"]
            }
        except Exception:
            continue
        done_items.setdefault(row["step"], {})[row["idx"]] = (row["key"], outs)
    for row in meta.steps(run_id):
        name, status = row["step"], row["status"]
        if name not in steps or status not in ("success", "cached", "skipped"):
            continue
        if status == "skipped":
            states[name] = status
            continue
        declared = list(steps[name].get("outputs") or ())
        try:
            outputs[name] = {o: store.get(run_id, name, o) for o in declared}
        except Exception:
            continue
        states[name] = status
    return done_items


def cache_key(
    data: StepData, items: list[Any] | None, inputs_for: Callable[[Any], step_mod.Inputs]
) -> str:
    """The step cache key (``cache: true``): sha256 of the callable reference and its source
    code (or the command), the outputs and replicas, and per instance (``inputs_for(item)``,
    ``MISSING`` outside foreach) the resolved ``with:``/``env:`` values and argv."""
    h = hashlib.sha256()
    head = [data.get("kind"), data.get("run"), data.get("outputs"), data.get("replicas")]
    h.update(json.dumps(head).encode())
    if data.get("kind") != "command" and data.get("run"):
        h.update(step_mod.callable_source(data["run"]).encode("utf-8"))
    for item in [step_mod.MISSING] if items is None else items:
        inputs = inputs_for(item)
        h.update(encode(inputs.kwargs(data))[1])
        h.update(encode(inputs.env(data))[1])
        if data.get("kind") == "command":
            h.update(encode(inputs.argv(data))[1])
    return h.hexdigest()
