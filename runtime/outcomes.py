"""What a run's step instances did, and what follows from it: the upstream states a trigger
rule reads, the upstream values a step instance's expressions read (null where an upstream did
not produce them), group exports (per item for foreach groups), flow outputs, and the run
values finally steps see (``run.status``, ``run.failed_steps``). Shared by the local executor
and the Kubernetes driver; pure bookkeeping, nothing here runs a step.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from flowc.runtime import exprs, triggers
from flowc.runtime.graph import PlanGraph, opt
from flowc.runtime.plan import Plan
from flowc.runtime.step_common import MISSING

InputsFactory = Callable[[str, Mapping[str, Mapping[str, Any]], Any], Any]
"""``(name, upstream values, item) -> flowc.runtime.step.Inputs`` (the caller's run values)."""


class Outcomes:
    """Per step: ``states``/``outputs`` (the whole step: a foreach step's or foreach-group
    member's outputs are lists over items); per instance: ``unit_states``/``unit_outputs``
    (foreach items and foreach-group items); per foreach group: its ``items``."""

    def __init__(
        self,
        plan: Plan,
        graph: PlanGraph,
        states: dict[str, str],
        outputs: dict[str, dict[str, Any]],
    ) -> None:
        self.plan = plan
        self.graph = graph
        self.states = states
        self.outputs = outputs
        self.unit_states: dict[str, dict[int, str]] = {}
        self.unit_outputs: dict[str, dict[int, dict[str, Any]]] = {}
        self.items: dict[str, list[Any]] = {}
        self._exports: dict[tuple[str, int | None], dict[str, Any]] = {}

    # -- recording -----------------------------------------------------------------------------

    def record_unit(self, step: str, index: int, state: str, outs: dict[str, Any] | None) -> None:
        self.unit_states.setdefault(step, {})[index] = state
        if outs is not None and state in triggers.SUCCEEDED:
            self.unit_outputs.setdefault(step, {})[index] = outs

    def member_outputs(self, step: str, count: int) -> dict[str, Any]:
        """A foreach-group member's whole outputs: each output the list over items (null for an
        instance that did not produce it)."""
        per = self.unit_outputs.get(step, {})
        return {o: [(per.get(i) or {}).get(o) for i in range(count)] for o in self.declared(step)}

    def declared(self, step: str) -> list[str]:
        return list(self.plan["steps"][step].get("outputs") or ())

    # -- trigger rules -------------------------------------------------------------------------

    def decide(self, step: str, index: int | None = None) -> str:
        """The trigger rule of ``step`` (instance ``index`` in a foreach group) over its
        upstream instances' states. A finally step's rule reads its finally upstream only."""
        data = self.plan["steps"][step]
        return triggers.decide(
            str(opt(data, "trigger", "all_success")), self.upstream_states(step, index)
        )

    def upstream_states(self, step: str, index: int | None = None) -> list[str]:
        graph = self.graph
        group = graph.foreach_group(step)
        fin = graph.is_finally(step)
        out: list[str] = []
        for u in graph.deps(step):
            for leaf in graph.leaves(u):
                if fin and not graph.is_finally(leaf):
                    continue
                if leaf not in self.states and not self.unit_states.get(leaf):
                    continue  # not selected (--only) or not run: nothing to say
                if group is not None and index is not None and graph.inside(leaf, group):
                    out.append(self.unit_states.get(leaf, {}).get(index, "skipped"))
                elif self.unit_states.get(leaf) and leaf in self.states:
                    out.extend(self.unit_states[leaf][i] for i in sorted(self.unit_states[leaf]))
                elif leaf in self.states:
                    out.append(self.states[leaf])
        return out

    # -- values --------------------------------------------------------------------------------

    def step_value(self, step: str, index: int | None = None) -> dict[str, Any]:
        """``{output: value}`` of a step (instance ``index`` of a foreach-group member); null
        outputs where it did not produce them."""
        if index is not None:
            if self.unit_states.get(step, {}).get(index) in triggers.SUCCEEDED:
                return dict(self.unit_outputs.get(step, {}).get(index) or {})
        elif self.states.get(step) in triggers.SUCCEEDED and step in self.outputs:
            return dict(self.outputs[step])
        return {o: None for o in self.declared(step)}

    def value(self, name: str, index: int | None, make_inputs: InputsFactory) -> dict[str, Any]:
        """The value of a dependency ``name`` (a step or a group's exports), as seen from
        instance ``index`` of a foreach group when both are inside it."""
        if name in self.graph.groups:
            return self.exports(name, index, make_inputs)
        return self.step_value(name, index)

    def upstream_values(
        self, step: str, index: int | None, make_inputs: InputsFactory
    ) -> dict[str, dict[str, Any]]:
        """``{upstream step or group: {output: value}}`` for an instance of ``step``."""
        group = self.graph.foreach_group(step)
        out = {}
        for u in self.plan["steps"][step].get("upstream") or ():
            inner = group is not None and self.graph.inside(u, group)
            out[u] = self.value(u, index if inner else None, make_inputs)
        return out

    def exports(self, group: str, index: int | None, make_inputs: InputsFactory) -> dict[str, Any]:
        """A group's exports: for a foreach group seen from outside (``index`` None), each
        export is the list over items (null for an item that did not produce it)."""
        data = self.graph.groups[group]
        if data.get("foreach") is not None and index is None:
            items = self.items.get(group) or []
            per = [self.exports(group, i, make_inputs) for i in range(len(items))]
            return {k: [p.get(k) for p in per] for k in data.get("outputs") or {}}
        hit = self._exports.get((group, index))
        if hit is not None:
            return hit
        values: dict[str, dict[str, Any]] = {}
        for child in data.get("groups") or ():
            values[child] = self.exports(child, index, make_inputs)
        for member in self.graph.members(group):
            values[member] = self.step_value(member, index)
        item = MISSING
        owner = (
            self.graph.foreach_group(self.graph.members(group)[0])
            if self.graph.members(group)
            else None
        )
        if owner is not None and index is not None:
            items = self.items.get(owner) or []
            item = items[index] if index < len(items) else MISSING
        inputs = make_inputs(group, values, item)
        out: dict[str, Any] = {}
        for k, enc in (data.get("outputs") or {}).items():
            try:
                out[k] = inputs.eval(enc)
            except exprs.ExprError:
                out[k] = None
        done = all(
            (self.unit_states.get(m, {}).get(index) if index is not None else self.states.get(m))
            is not None
            for m in self.graph.members(group)
        )
        if done:
            self._exports[(group, index)] = out
        return out

    def flow_outputs(self, make_inputs: InputsFactory) -> tuple[dict[str, Any], list[str]]:
        """The flow's ``outputs:`` evaluated over what the run produced (null where not
        produced), and the warnings of outputs that could not be evaluated."""
        enc = dict(opt(self.plan, "outputs", {}) or {})
        if not enc:
            return {}, []
        values: dict[str, dict[str, Any]] = {}
        for g in self.graph.groups:
            values[g] = self.exports(g, None, make_inputs)
        for s in self.graph.order:
            values[s] = self.step_value(s)
        inputs = make_inputs("<outputs>", values, MISSING)
        out: dict[str, Any] = {}
        warnings = []
        for k, e in enc.items():
            try:
                out[k] = inputs.eval(e)
            except exprs.ExprError as err:
                out[k] = None
                warnings.append(f"flow output '{k}' is null: {err}")
        return out, warnings

    def run_extra(self, run_failed: bool = False) -> dict[str, Any]:
        """``run.status`` and ``run.failed_steps`` for a finally step: the non-finally steps
        whose state is ``failed`` (plan order, each foreach step once)."""
        failed = [
            s
            for s in self.graph.order
            if not self.graph.is_finally(s) and self.states.get(s) == "failed"
        ]
        return {"status": "failed" if failed or run_failed else "success", "failed_steps": failed}
