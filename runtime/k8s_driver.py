"""The Kubernetes driver's scheduling loop: one Kubernetes Job per step instance, with the
local executor's semantics (the same :mod:`flowc.runtime.graph`, :mod:`.expansion`,
:mod:`.outcomes` and :mod:`.triggers`): trigger rules, ``when``, skips (a step pod whose
callable raised ``flowc.runtime.Skip`` or whose command exited with a ``skip_on_exit_code``
writes ``{"$skip": reason}`` and succeeds), foreach and matrix items (one Job per item), foreach
groups item-wise (one Job per member and item), finally steps (``run.status`` /
``run.failed_steps`` in their inputs), flow outputs (stored as ``_flow/outputs`` in the artifact
store, printed). A failed step does not stop the run: what does not depend on it goes on, the
finally steps run, and the driver exits 1 at the end.

Here Kubernetes owns retries (``backoffLimit``) and timeouts (``activeDeadlineSeconds``);
values travel through the stack's artifact store. :mod:`flowc.runtime.k8s` holds the command
line (``python -m flowc.runtime.k8s drive|step``) and re-exports :class:`Driver`.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flowc.runtime import exprs, triggers
from flowc.runtime import params as params_mod
from flowc.runtime.entry import SKIP_KEY
from flowc.runtime.expansion import (
    ForeachError,
    Key,
    foreach_items,
    initial_keys,
    open_key,
    step_key,
    unit_deps,
    unit_key,
)
from flowc.runtime.graph import PlanGraph, opt
from flowc.runtime.k8s_jobs import (
    IN_PREFIX,
    OUT_PREFIX,
    RUN_LABEL,
    DriverError,
    _api_reason,
    job_state,
    open_store,
    step_job,
)
from flowc.runtime.outcomes import Outcomes
from flowc.runtime.plan import Plan
from flowc.runtime.run_state import Schedule
from flowc.runtime.step import MISSING, Inputs, StepError
from flowc.runtime.store import FLOW_OUTPUTS


@dataclass
class Instance:
    """One Job: a step, one foreach item of it, or one foreach-group item of a member."""

    step: str
    index: int | None
    job_name: str
    replicas: int
    state: str = "running"  # running | succeeded | failed
    unit: bool = False  # a foreach-group member's item: released on its own


@dataclass
class StepRun:
    name: str
    state: str = "pending"  # pending | running | success | skipped | failed | upstream_failed
    items: list[Any] | None = None
    instances: list[Instance] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    results: dict[int, dict[str, Any]] = field(default_factory=dict)
    inst_states: dict[int, str] = field(default_factory=dict)
    error: str | None = None


class Driver:
    """One run of the plan on a cluster. ``batch``/``core`` are kubernetes API objects."""

    def __init__(
        self,
        plan: Plan,
        config: Mapping[str, Any],
        *,
        batch: Any,
        core: Any,
        namespace: str,
        run_id: str,
        owner: dict[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        run_date: str | None = None,
        out: Any = None,
    ):
        self.plan = plan
        self.config = config
        self.batch = batch
        self.core = core
        self.namespace = namespace
        self.run_id = run_id
        self.owner = owner
        self.params = params_mod.resolve(plan, params or {})
        self.run_date = run_date
        self.out = out or sys.stdout
        self.poll = float(os.environ.get("FLOWC_K8S_POLL") or config.get("poll_seconds") or 2.0)
        self.graph = PlanGraph(plan)
        names = [n for n in self.graph.order if not plan["steps"][n].get("operator")]
        self.steps = {name: StepRun(name) for name in names}
        self.selected = set(names)
        self.states: dict[str, str] = {}
        self.values: dict[str, dict[str, Any]] = {}
        self.outcomes = Outcomes(plan, self.graph, self.states, self.values)
        self.first_error: str | None = None
        self.flow_outputs: dict[str, Any] = {}
        self.store = open_store(config)
        self.schedule = Schedule()
        for key, deps in initial_keys(self.graph, names, ()):
            self.schedule.add(key, deps)

    # -- logging --------------------------------------------------------------------------------

    def say(self, text: str) -> None:
        self.out.write(f"flowc[{self.run_id}]: {text}\n")
        self.out.flush()

    # -- the loop -------------------------------------------------------------------------------

    def run(self) -> dict[str, dict[str, Any]]:
        """Run every step; return ``{step: outputs}`` of the steps that succeeded. Raises
        DriverError at the end when a step failed (or at once on an API error: its running
        Jobs are deleted first)."""
        self.say(f"run {self.run_id} of flow {self.plan['name']} in namespace {self.namespace}")
        try:
            while True:
                while self.schedule.ready:
                    self._start(self.schedule.ready.popleft())
                if not self._running():
                    break
                self._observe()
                if self._running() and not self.schedule.ready:
                    time.sleep(self.poll)
        except DriverError:
            self._stop_running()
            raise
        self._flow_outputs()
        if self.first_error is not None:
            raise DriverError(self.first_error)
        self.say("run succeeded")
        return {n: s.outputs for n, s in self.steps.items() if s.state == "success"}

    def _running(self) -> bool:
        return any(i.state == "running" for s in self.steps.values() for i in s.instances)

    def _make_inputs(
        self,
        name: str,
        upstream: Mapping[str, Mapping[str, Any]],
        item: Any = MISSING,
        run_extra: Mapping[str, Any] | None = None,
    ) -> Inputs:
        return Inputs(
            self.plan,
            name,
            params=self.params,
            upstream=upstream,
            run_id=self.run_id,
            run_date=self.run_date,
            item=item,
            run_extra=run_extra,
        )

    def _start(self, key: Key) -> None:
        if key[0] == "open":
            self._open(key[1])
        elif key[0] == "unit":
            self._start_unit(key[1], key[2])
        else:
            self._start_step(key[1])

    def _start_step(self, name: str) -> None:
        sr = self.steps[name]
        data = self.plan["steps"][name]
        decision = self.outcomes.decide(name)
        if decision != triggers.RUN:
            self._done(sr, decision, why="(trigger rule)")
            return
        run_extra = self.outcomes.run_extra() if self.graph.is_finally(name) else None
        try:
            upstream = self.outcomes.upstream_values(name, None, self._make_inputs)
            inputs = self._make_inputs(name, upstream, MISSING, run_extra)
            if data.get("when") is not None and not inputs.eval(data["when"]):
                self._done(sr, "skipped", why="(when is false)")
                return
            if data.get("foreach") is not None:
                sr.items = foreach_items(inputs.eval(data["foreach"]), opt(data, "matrix", ()))
        except (exprs.ExprError, ForeachError, StepError) as e:
            self._done(sr, "failed", error=f"step {name}: {e}")
            return
        sr.state = "running"
        if sr.items is None:
            sr.instances.append(self._create(name, None, MISSING, upstream, run_extra))
            return
        for i, item in enumerate(sr.items):
            sr.instances.append(self._create(name, i, item, upstream, run_extra))
        if not sr.items:
            self._done(sr, "success", {o: [] for o in self.outcomes.declared(name)})

    def _open(self, group: str) -> None:
        """A foreach group's items: one Job per member and item, item-wise."""
        graph = self.graph
        members = [m for m in graph.members(group) if m in self.selected]
        data = graph.groups[group]
        try:
            upstream = {
                u: self.outcomes.value(u, None, self._make_inputs) for u in graph.group_deps(group)
            }
            items = foreach_items(
                self._make_inputs(group, upstream).eval(data.get("foreach")),
                data.get("matrix") or (),
            )
        except (exprs.ExprError, ForeachError, StepError) as e:
            states = [
                self.states.get(leaf, "success")
                for u in graph.group_deps(group)
                for leaf in graph.leaves(u)
            ]
            bad = [s for s in states if s not in triggers.SUCCEEDED]
            for m in members:
                if bad:
                    failed = any(s in triggers.FAILED for s in bad)
                    self._done(self.steps[m], "upstream_failed" if failed else "skipped")
                else:
                    self._done(self.steps[m], "failed", error=f"group {group}: {e}")
            self.schedule.release(open_key(group))
            return
        self.outcomes.items[group] = items
        for m in members:
            self.steps[m].items = items
            self.outcomes.unit_states[m] = {}
            if not items:
                self._done(self.steps[m], "success", {o: [] for o in self.outcomes.declared(m)})
                continue
            self.steps[m].state = "running"
            for i in range(len(items)):
                self.schedule.add(unit_key(m, i), unit_deps(graph, m, i, self.selected))
        self.schedule.release(open_key(group))

    def _start_unit(self, name: str, index: int) -> None:
        sr = self.steps[name]
        assert sr.items is not None
        data = self.plan["steps"][name]
        decision = self.outcomes.decide(name, index)
        if decision != triggers.RUN:
            self._unit_done(sr, index, decision)
            return
        try:
            upstream = self.outcomes.upstream_values(name, index, self._make_inputs)
            inputs = self._make_inputs(name, upstream, sr.items[index])
            if data.get("when") is not None and not inputs.eval(data["when"]):
                self._unit_done(sr, index, "skipped")
                return
        except (exprs.ExprError, StepError) as e:
            sr.error = sr.error or f"step {name} [{index}]: {e}"
            self._unit_done(sr, index, "failed")
            return
        inst = self._create(name, index, sr.items[index], upstream, None)
        inst.unit = True
        sr.instances.append(inst)

    def _create(
        self,
        step: str,
        index: int | None,
        item: Any,
        upstream: Mapping[str, Mapping[str, Any]],
        run_extra: Mapping[str, Any] | None,
    ) -> Instance:
        data = self.plan["steps"][step]
        key = 0 if index is None else index
        inputs: dict[str, Any] = {
            "params": self.params,
            "upstream": dict(upstream),
            "run_id": self.run_id,
            "run_date": self.run_date,
        }
        if run_extra:
            inputs["run_extra"] = dict(run_extra)
        if index is not None:
            inputs["item"] = item
            inputs["index"] = index
        try:
            self.store.put(self.run_id, step, f"{IN_PREFIX}{key}", inputs)
        except Exception as e:
            raise DriverError(f"step {step}: cannot store its inputs: {e}") from None
        replicas = int(data.get("replicas") or 1)
        name = self.config["steps"][step]["name_prefix"] + f"-{self.run_id}"
        if index is not None:
            name += f"-{index}"
        args = ["--run", self.run_id, "--index", str(key)]
        if replicas > 1:
            args += ["--replica", "$(FLOWC_REPLICA)"]
        job = step_job(
            self.config,
            step,
            name=name,
            namespace=self.namespace,
            run_id=self.run_id,
            owner=self.owner,
            args=args,
        )
        try:
            self.batch.create_namespaced_job(self.namespace, job)
        except Exception as e:  # kubernetes.client.ApiException and transport errors
            raise DriverError(f"step {step}: cannot create Job {name}: {_api_reason(e)}") from None
        self.say(f"step {step} started: job {name}")
        return Instance(step, index, name, replicas)

    def _observe(self) -> None:
        jobs = None
        for attempt in range(5):  # ride out a transient API error (apiserver restart...)
            try:
                jobs = self.batch.list_namespaced_job(
                    self.namespace, label_selector=f"{RUN_LABEL}={self.run_id}"
                )
                break
            except Exception as e:
                status = getattr(e, "status", None)
                if attempt == 4 or (isinstance(status, int) and 400 <= status < 500):
                    raise DriverError(f"cannot list the run's Jobs: {_api_reason(e)}") from None
                time.sleep(self.poll * (attempt + 1))
        assert jobs is not None
        by_name = {j.metadata.name: j for j in jobs.items}
        for sr in self.steps.values():
            if sr.state != "running":
                continue
            for inst in list(sr.instances):
                if inst.state != "running":
                    continue
                job = by_name.get(inst.job_name)
                if job is None:
                    raise DriverError(f"step {sr.name}: job {inst.job_name} disappeared")
                inst.state = job_state(job)
                if inst.state == "running":
                    continue
                self._instance_ended(sr, inst, job)

    def _instance_ended(self, sr: StepRun, inst: Instance, job: Any) -> None:
        index = -1 if inst.index is None else inst.index
        state, outs = "failed", None
        if inst.state == "failed":
            detail = self._failure(inst, job)
            sr.error = sr.error or f"step {sr.name} failed: {detail}"
            self.say(f"step {sr.name} failed: {detail}")
        else:
            try:
                outs = self._read_outputs(inst)
                state = "skipped" if outs is None else "success"
            except Exception as e:  # StoreError, KeyError, transport errors
                sr.error = sr.error or f"step {sr.name}: cannot read its outputs: {e}"
        if inst.unit:
            self._unit_done(sr, index, state, outs)
            return
        sr.inst_states[index] = state
        if outs is not None:
            sr.results[index] = outs
        if len(sr.inst_states) < len(sr.instances):
            return
        if sr.items is None:
            self._done(sr, state, outs)
            return
        states = [sr.inst_states[i] for i in range(len(sr.items))]
        self.outcomes.unit_states[sr.name] = dict(enumerate(states))
        whole = triggers.aggregate(states)
        declared = self.outcomes.declared(sr.name)
        lists = {
            o: [(sr.results.get(i) or {}).get(o) for i in range(len(states))] for o in declared
        }
        self._done(sr, whole, lists if whole == "success" else None)

    def _unit_done(
        self, sr: StepRun, index: int, state: str, outs: dict[str, Any] | None = None
    ) -> None:
        self.outcomes.record_unit(sr.name, index, state, outs)
        self.schedule.release(unit_key(sr.name, index))
        assert sr.items is not None
        if len(self.outcomes.unit_states[sr.name]) < len(sr.items):
            return
        states = self.outcomes.unit_states[sr.name]
        whole = triggers.aggregate(states[i] for i in sorted(states))
        outputs = self.outcomes.member_outputs(sr.name, len(sr.items))
        self._done(sr, whole, outputs if whole == "success" else None)

    def _done(
        self,
        sr: StepRun,
        state: str,
        outputs: dict[str, Any] | None = None,
        why: str = "",
        error: str | None = None,
    ) -> None:
        """Step ``sr`` ended in ``state``: record it, store its outputs, release it."""
        sr.state = state
        self.states[sr.name] = state
        if error:
            sr.error = sr.error or error
        if state == "success":
            sr.outputs = dict(outputs or {})
            self.values[sr.name] = sr.outputs
            for name, value in sr.outputs.items():
                self.store.put(self.run_id, sr.name, name, value)
            self.say(f"step {sr.name} succeeded")
        elif state == "failed":
            if sr.error and not sr.error.startswith(f"step {sr.name} failed"):
                self.say(sr.error)
            self.first_error = self.first_error or sr.error or f"step {sr.name} failed"
        else:
            self.say(f"step {sr.name} {state.replace('_', ' ')}" + (f" {why}" if why else ""))
        self.schedule.release(step_key(sr.name))

    def _flow_outputs(self) -> None:
        values, warnings = self.outcomes.flow_outputs(self._make_inputs)
        for w in warnings:
            self.say(f"warning: {w}")
        if values:
            self.flow_outputs = values
            self.store.put(self.run_id, *FLOW_OUTPUTS, values)
            self.say("flow outputs: " + exprs.to_text(values))

    def _failure(self, inst: Instance, job: Any) -> str:
        reasons = [
            f"{c.reason}: {c.message}" if c.message else str(c.reason)
            for c in (job.status.conditions or [])
            if c.type == "Failed" and c.status == "True"
        ]
        detail = reasons[0] if reasons else "job failed"
        for r in range(inst.replicas):
            try:
                err = self._result(inst, r).get("$error")
            except Exception:  # the attempt wrote nothing (killed, deadline)
                continue
            if err:
                detail += f" ({err.get('type')}: {err.get('message')})"
                break
        return f"job {inst.job_name}: {detail}"

    def _result(self, inst: Instance, replica: int) -> dict[str, Any]:
        key = 0 if inst.index is None else inst.index
        return dict(self.store.get(self.run_id, inst.step, f"{OUT_PREFIX}{key}_{replica}"))

    def _read_outputs(self, inst: Instance) -> dict[str, Any] | None:
        """The instance's outputs; None when it skipped itself."""
        per = [self._result(inst, r) for r in range(inst.replicas)]
        if any(SKIP_KEY in p for p in per):
            return None
        if inst.replicas == 1:
            return per[0]
        # like the local executor: each output is the list of the replicas' values, in order
        declared = list(self.plan["steps"][inst.step].get("outputs") or [])
        return {o: [r[o] for r in per] for o in declared}

    def _stop_running(self) -> None:
        for sr in self.steps.values():
            for inst in sr.instances:
                if inst.state == "running":
                    try:
                        self.batch.delete_namespaced_job(
                            inst.job_name, self.namespace, propagation_policy="Background"
                        )
                    except Exception:  # already gone
                        pass
