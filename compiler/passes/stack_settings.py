"""Pass 53: the active stack's settings as targets read them, decided once.

Pass 52 built every component of the active stack through the runtime registry (which checked
the settings and applied its defaults). This pass records, per component,
:attr:`flowc.compiler.ir.ComponentConfig.resolved`: the registry's settings with its defaults,
plus the few target-facing defaults the registry leaves unset (:data:`flowc.compiler.ir.SETTING_DEFAULTS`), plus
what follows from other components (a Vertex ``pipeline_root`` from a ``gcs`` artifact store's
bucket). Targets read only ``resolved`` (``ComponentConfig.setting``): none keeps its own option
list, default or check of a stack setting.

Components written flowyml-style (their own ``__init__``, no declared ``SETTINGS``) resolve to
their settings as written.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from flowc.compiler.ir import SETTING_DEFAULTS
from flowc.compiler.passes import PassContext

ORDER = 53


def run(ctx: PassContext) -> None:
    stack = ctx.stack
    if stack is None:
        return
    from flowc.compiler.stacks import target_for

    built = ctx.stack_components
    try:
        target = target_for(stack)
    except ValueError:  # an unknown orchestrator type: reported by pass 52
        target = None
    comps = []
    for cfg in stack.components:
        comp = built.get(cfg.kind)
        resolved = dict(cfg.settings)
        declared = getattr(type(comp), "SETTINGS", None) if comp is not None else None
        if declared:
            resolved = {k: comp.settings[k] for k in declared if comp.settings.get(k) is not None}
        if cfg.kind == "orchestrator" and target is not None:
            for key, value in SETTING_DEFAULTS.get(target, {}).items():
                resolved.setdefault(key, value)
            if target == "vertex":
                _vertex_root(ctx, resolved)
        comps.append(dataclasses.replace(cfg, resolved=tuple(resolved.items())))
    ctx.stack = dataclasses.replace(stack, components=tuple(comps), target=target)


def _vertex_root(ctx: PassContext, resolved: dict[str, Any]) -> None:
    """A Vertex job's ``pipeline_root``: the setting, else ``gs://<bucket>/[<prefix>/]pipelines``
    when the stack has a gcs artifact store (the vertex target refuses a job without one)."""
    if resolved.get("pipeline_root"):
        return
    assert ctx.stack is not None
    store = ctx.stack.artifact_store
    bucket = store.setting("bucket") if store is not None and store.type == "gcs" else None
    if bucket:
        prefix = str(store.setting("prefix") or "").strip("/")  # type: ignore[union-attr]
        resolved["pipeline_root"] = f"gs://{bucket}/{prefix + '/' if prefix else ''}pipelines"
