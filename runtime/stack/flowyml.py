"""flowyml compatibility: every name flowyml's stack component code imports from
``flowyml.stacks.components`` and ``flowyml.stacks.plugins``, provided by flowc, and the pipeline
object a custom orchestrator's ``run_pipeline(pipeline, resources=, docker_config=)`` receives.

flowyml code imports ``Orchestrator``, ``ArtifactStore``, ``MetadataStore``,
``ContainerRegistry``, ``StackComponent``, ``ResourceConfig`` and ``DockerConfig`` from
``flowyml.stacks.components``, and ``register_component``, ``get_component_registry``,
``load_component`` and ``ComponentRegistry`` from ``flowyml.stacks.plugins``. A project moving to
flowc keeps its component modules unchanged and makes each of those two modules one re-export
line, e.g. ``flowyml/stacks/components.py``::

    from flowc.runtime.stack.flowyml import *  # noqa: F401,F403

Stdlib only, like the rest of :mod:`flowc.runtime.stack`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from flowc.runtime.stack.framework import (
    ArtifactStore,
    ComponentError,
    ContainerRegistry,
    MetadataStore,
    Orchestrator,
    StackComponent,
)
from flowc.runtime.stack.registry import (
    ComponentRegistry,
    get_component_registry,
    load_component,
    register_component,
)

__all__ = [
    "ArtifactStore",
    "ComponentError",
    "ComponentRegistry",
    "ContainerRegistry",
    "DockerConfig",
    "MetadataStore",
    "Orchestrator",
    "Pipeline",
    "PipelineStep",
    "ResourceConfig",
    "StackComponent",
    "get_component_registry",
    "load_component",
    "register_component",
]


@dataclass
class ResourceConfig:
    """Compute for a pipeline's steps (flowyml's ``ResourceConfig``): Kubernetes-style quantities."""

    cpu: str | None = None
    memory: str | None = None
    gpu: int | None = None
    gpu_type: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class DockerConfig:
    """The image a pipeline's steps run in (flowyml's ``DockerConfig``)."""

    image: str | None = None
    dockerfile: str | None = None
    build_context: str = "."
    requirements: list[str] = field(default_factory=list)
    env_vars: dict[str, str] = field(default_factory=dict)
    build_args: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in (None, [], {})}


@dataclass
class PipelineStep:
    """One step as a custom orchestrator sees it: ``func()`` runs it (through flowc's step
    runner, with the outputs of the upstream steps run before it in this pipeline) and returns
    its outputs ``{name: value}``."""

    name: str
    func: Callable[[], dict[str, Any]]
    upstream: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()


class Pipeline:
    """The flow handed to ``Orchestrator.run_pipeline``: ``name``, ``run_id``, ``params``,
    ``steps`` (in dependency order, each with ``name`` and ``func``), ``plan`` (the compiled plan
    data) and ``outputs`` (``{step: {output: value}}`` of the steps run so far)."""

    def __init__(
        self,
        plan: Mapping[str, Any],
        *,
        run_id: str,
        params: Mapping[str, Any],
        run_date: str | None = None,
    ):
        self.plan = plan
        self.name = str(plan.get("name") or "flow")
        self.run_id = run_id
        self.params = dict(params)
        self.run_date = run_date
        self.outputs: dict[str, dict[str, Any]] = {}
        order = list(plan.get("order") or plan["steps"])
        self.steps = [
            PipelineStep(
                name,
                self._runner(name),
                tuple(plan["steps"][name].get("upstream") or ()),
                tuple(plan["steps"][name].get("outputs") or ()),
            )
            for name in order
        ]

    def _runner(self, name: str) -> Callable[[], dict[str, Any]]:
        def run_step() -> dict[str, Any]:
            from flowc.runtime.step import execute  # lazy: the step runner

            data = self.plan["steps"][name]
            missing = [u for u in data.get("upstream") or () if u not in self.outputs]
            if missing:
                raise RuntimeError(f"step '{name}' runs before its upstream {missing}")
            out = execute(
                self.plan,  # type: ignore[arg-type]
                name,
                params=self.params,
                upstream=self.outputs,
                run_id=self.run_id,
                run_date=self.run_date,
            )
            self.outputs[name] = out
            return out

        run_step.__name__ = f"run_{name}"
        return run_step


def has_run_pipeline(orchestrator: Any) -> bool:
    """Whether an orchestrator component runs flows itself (a ``run_pipeline`` of its own)."""
    return callable(getattr(orchestrator, "run_pipeline", None))
