"""The DAG structure of a KFP PipelineSpec (shared by the kfp and vertex targets): which DAG a
task lives in, how values cross DAG boundaries, and the control-flow DAGs of issue 18.

Scopes (one per DAG component being built):

- the root DAG (``root``);
- ``exit-handler-1`` when the flow has ``finally:`` steps: every other top-level node runs inside
  it and each finally step is a root task after it with ``triggerPolicy.strategy:
  ALL_UPSTREAM_TASKS_COMPLETED`` and a ``TASK_FINAL_STATUS`` input (kfp's ``dsl.ExitHandler``);
- one per group: ``comp-<group>`` (a nested-pipeline-like sub-DAG; ``uses:`` sub-flows too) or,
  for a foreach group, ``comp-for-loop-<group>`` run by a task with a ``parameterIterator``
  (kfp's ``dsl.ParallelFor`` with several tasks in its body).

A value (:class:`Chan`) lives in one scope; a task in a deeper scope reads it through a
``pipelinechannel--...`` input of every DAG component in between (as kfp's compiler threads
pipeline channels), and a group's exports leave its DAG as ``dag.outputs`` (a foreach group's
as LISTs collected over items, like ``dsl.Collected``).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from flowc.compiler.errors import FlowcError, Loc

ROOT = ""
"""The root DAG's scope key."""
EXIT_TASK = "exit-handler-1"
"""The ExitHandler task (kfp's own name for the first exit handler)."""
STATUS_INPUT = "_status"
"""The ``TASK_FINAL_STATUS`` input of a finally step's component."""


def err(loc: Loc | None, message: str, hint: str | None = None) -> FlowcError:
    return FlowcError.at(loc, message, hint)


@dataclass
class Chan:
    """A value visible in one DAG: a pipeline parameter, a task output or a loop item."""

    name: str  # the pipelinechannel--... name used inside sub-DAGs and conditions
    type: str  # KFP parameter type
    source: dict[str, Any]  # how a task of its own scope reads it
    producer: str | None = None  # task (of ``scope``) producing it
    decode: Any = "raw"  # how the flowc glue turns it back into the flowc value
    item_decode: Any = "raw"  # decode of one element, when iterated by a foreach
    scope: str = ROOT  # the DAG it lives in


@dataclass
class Node:
    """A task being wrapped: its spec, the channels it needs from its parent, its outputs."""

    task: str
    spec: dict[str, Any]
    needs: dict[str, Chan] = field(default_factory=dict)
    outputs: list[tuple[str, str]] = field(default_factory=list)  # (output key, KFP type)
    leaf: bool = False  # a container task whose inputs read channels directly


@dataclass
class Scope:
    """One DAG being built."""

    key: str
    level: str | None  # the group whose members it holds (None: top-level nodes)
    tasks: dict[str, Any] = field(default_factory=dict)
    needs: dict[str, Chan] = field(default_factory=dict)  # channels from enclosing DAGs


def loop_product(value: dict[str, Any]) -> list[dict[str, Any]]:
    """A literal matrix (a mapping of lists) as the list of its items, the cross product in
    written key order (the last key varies fastest), computed at compile time: one ParallelFor
    over the product (which kfp.local runs; nested ParallelFor over literal lists gives the
    same instances)."""
    keys = list(value)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*value.values())]


def place(scope: Scope, node: Node, deps: set[str]) -> dict[str, Any]:
    """Put ``node``'s task into ``scope``: a needed channel of this scope is read from its
    producer (a dependency), any other becomes an input of the scope's own DAG component."""
    spec = node.spec
    inputs: dict[str, Any] = {}
    for cname, chan in sorted(node.needs.items()):
        if chan.scope == scope.key:
            if chan.producer:
                deps.add(chan.producer)
            inputs[cname] = dict(chan.source)
        else:
            scope.needs.setdefault(cname, chan)
            inputs[cname] = {"componentInputParameter": cname}
    if node.leaf:
        for p in spec.get("inputs", {}).get("parameters", {}).values():
            src = p.get("componentInputParameter")
            if src is not None and src in inputs:
                p.clear()
                p.update(inputs[src])
    elif inputs:
        have = spec.get("inputs", {}).get("parameters", {})
        spec["inputs"] = {"parameters": {**have, **inputs}}
    deps.discard(node.task)
    if deps:
        spec["dependentTasks"] = sorted(deps)
    scope.tasks[node.task] = spec
    return spec


def dag_component(
    scope: Scope,
    outputs: dict[str, tuple[str, str, str]],
    local: Chan | None = None,
    extra: dict[str, Chan] | None = None,
) -> dict[str, Any]:
    """The DAG component of a finished scope: its tasks, its inputs (the channels its tasks
    need from outside, plus the loop item ``local``), and ``outputs`` (key -> producer task,
    producer's key, type)."""
    comp: dict[str, Any] = {"dag": {"tasks": scope.tasks}}
    if outputs:
        comp["dag"]["outputs"] = {
            "parameters": {
                k: {"valueFromParameter": {"outputParameterKey": key, "producerSubtask": task}}
                for k, (task, key, _t) in sorted(outputs.items())
            }
        }
    needs = dict(scope.needs)
    for k, c in (extra or {}).items():
        needs.setdefault(k, c)
    params = {k: {"parameterType": c.type} for k, c in sorted(needs.items())}
    if local is not None:
        params[local.name] = {"parameterType": local.type}
    if params:
        comp["inputDefinitions"] = {"parameters": params}
    if outputs:
        comp["outputDefinitions"] = {
            "parameters": {k: {"parameterType": t} for k, (_x, _y, t) in sorted(outputs.items())}
        }
    return comp


def collected_decode(decode: Any) -> Any:
    """The decode of a LIST collecting per-item values of decode ``decode``."""
    if isinstance(decode, list) and decode and decode[0] == "json":
        return ["json", int(decode[1]) + 1]
    return "ints"


def raw_items(value: list[Any]) -> str:
    return json.dumps(value, separators=(",", ":"))
