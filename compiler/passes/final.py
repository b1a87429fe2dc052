"""Pass 75: ``final: [STEP, ...]`` (Hamilton's ``final_vars``): keep only those steps and what
they need (every upstream step: data, ``after`` and ``when`` edges), drop the rest with their
edges. Runs after references became edges (70) and before the topological order (80)."""

from __future__ import annotations

from flowc.compiler.errors import did_you_mean
from flowc.compiler.passes import PassContext

ORDER = 75


def run(ctx: PassContext) -> None:
    final = list(ctx.model.final)
    if not final:
        return
    ok = True
    for i, name in enumerate(final):
        if name not in ctx.steps:
            ok = False
            if name in ctx.model.steps:
                continue  # the step itself is broken and already reported
            ctx.errors.error(
                ctx.loc("final", i),
                f"unknown step '{name}' in final",
                did_you_mean(name, ctx.steps) or f"steps: {', '.join(ctx.steps)}",
            )
        elif name in final[:i]:
            ctx.errors.error(ctx.loc("final", i), f"'{name}' is listed twice in final")
    ctx.final = tuple(dict.fromkeys(final))
    if not ok:
        return
    keep: set[str] = set()
    todo = list(ctx.final)
    while todo:
        name = todo.pop()
        if name in keep or name not in ctx.steps:
            continue
        keep.add(name)
        todo.extend(ctx.steps[name].upstream)
    ctx.steps = {n: s for n, s in ctx.steps.items() if n in keep}
    ctx.edges = [e for e in ctx.edges if e.src in keep and e.dst in keep]
