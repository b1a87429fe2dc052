"""What the compiler knows about stacks: which flowc target a stack's orchestrator compiles to
(:data:`ORCHESTRATOR_TARGETS` for the built-in types, a registered orchestrator's ``target``
otherwise) and where its compiled files go by default. The components themselves live in
:mod:`flowc.runtime.stack`."""

from __future__ import annotations

from typing import Any

from flowc.runtime.stack import ComponentRegistry, Orchestrator, build_component
from flowc.runtime.stack.registry import _REGISTRY, _stack_components

ORCHESTRATOR_TARGETS: dict[str, str] = {
    "local": "local",
    "airflow": "airflow",
    "kubeflow": "kfp",
    "vertex": "vertex",
    "kubernetes": "k8s",
    "kfp": "kfp",
    "k8s": "k8s",
}
"""Built-in orchestrator type -> the flowc target it compiles to."""


def target_for(stack: Any, registry: ComponentRegistry | None = None) -> str | None:
    """The flowc target a stack compiles to (its orchestrator's ``target``), or None when the
    stack has no orchestrator. Accepts an IR ``Stack``, its orchestrator ``ComponentConfig`` or
    the plan's ``stack`` data. An unknown orchestrator type raises ComponentError (a
    ValueError)."""
    orch = _stack_components(stack).get("orchestrator")
    if not orch:
        return None
    type_name = orch.get("type")
    if type_name in ORCHESTRATOR_TARGETS:
        return ORCHESTRATOR_TARGETS[type_name]
    cls = (registry or _REGISTRY).get("orchestrator", str(type_name))
    return getattr(cls, "target", None)


def default_output_for(stack: Any, registry: ComponentRegistry | None = None) -> str | None:
    """Where the stack's orchestrator wants compiled files by default (Airflow: ``dag_folder``)."""
    orch = _stack_components(stack).get("orchestrator")
    if not orch:
        return None
    comp = build_component("orchestrator", orch, registry)
    return comp.default_output() if isinstance(comp, Orchestrator) else None
