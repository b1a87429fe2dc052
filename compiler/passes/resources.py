"""Pass 54: every step's resources validated once, for every target.

After the stack's default resources are filled in (pass 52), each step's ``cpu`` / ``memory``
must be a non-negative Kubernetes quantity (``500m``, ``4``, ``16Gi``), ``gpu`` a count >= 0 and
``gpu_type`` a non-empty name. A bad value is a located error at the place it was written (the
step, ``defaults:``, the environment's ``defaults:`` or the stack's orchestrator ``resources``),
reported once per place, so ``flowc validate`` and every target refuse the same flows. Targets
then only spell :class:`flowc.compiler.ir.Resources` under its one request/limit policy.
"""

from __future__ import annotations

from typing import Any

from flowc.compiler.errors import Loc
from flowc.compiler.ir import quantity_value
from flowc.compiler.passes import PassContext

ORDER = 54

_HINTS = {
    "cpu": 'write cores as a Kubernetes quantity: "500m", "1", "4"',
    "memory": "write bytes as a Kubernetes quantity: 512Mi, 16Gi, 1G",
}


def run(ctx: PassContext) -> None:
    reported: set[tuple[Any, ...]] = set()
    for name, step in ctx.steps.items():
        r = step.resources
        for key in ("cpu", "memory", "gpu", "gpu_type"):
            value = getattr(r, key)
            if value is None or _ok(key, value):
                continue
            path = _source(ctx, name, key)
            if path in reported:
                continue
            reported.add(path)
            loc = ctx.loc(*path) if path and ctx.doc.has(path) else step.loc
            _report(ctx, loc, name, key, value, path)


def _ok(key: str, value: Any) -> bool:
    if key in ("cpu", "memory"):
        return isinstance(value, str) and quantity_value(value) is not None
    if key == "gpu":
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0
    return isinstance(value, str) and bool(value.strip())


def _report(
    ctx: PassContext, loc: Loc | None, step: str, key: str, value: Any, path: tuple[Any, ...]
) -> None:
    where = f"step '{step}'" if path[:1] == ("steps",) else _where(path)
    if key in _HINTS:
        message = f"{where}: resources.{key} {value!r} is not a Kubernetes quantity"
        hint = _HINTS[key]
    elif key == "gpu":
        message = f"{where}: resources.gpu must be a count >= 0, got {value!r}"
        hint = "e.g. gpu: 1"
    else:
        message = f"{where}: resources.gpu_type must be an accelerator name"
        hint = "e.g. gpu_type: NVIDIA_TESLA_T4"
    ctx.errors.error(loc, message, hint)


def _where(path: tuple[Any, ...]) -> str:
    if path[:1] == ("stacks",):
        return f"stack '{path[1]}' orchestrator"
    if path[:1] == ("environments",):
        return f"environment '{path[1]}' defaults"
    return "defaults"


def _source(ctx: PassContext, step: str, key: str) -> tuple[Any, ...]:
    """The document path where ``key`` of ``step``'s resources was written (step > the
    environment's ``defaults:`` > ``defaults:`` > the stack's orchestrator)."""
    path = ctx.step_paths.get(step, ("steps", step))
    candidates: list[tuple[Any, ...]] = [(*path, "resources", key)]
    if ctx.environment is not None:
        candidates.append(("environments", ctx.environment, "defaults", "resources", key))
    candidates.append(("defaults", "resources", key))
    if ctx.stack is not None and ctx.stack.orchestrator is not None:
        candidates.append(("stacks", ctx.stack.name, "orchestrator", "resources", key))
    for c in candidates:
        if ctx.doc.has(c):
            return c
    return (*path, "resources", key)
