"""Pass 5: the flow header: ``flowc: 1`` (the DSL version) and the flow name."""

from __future__ import annotations

from flowc.compiler.passes import PassContext
from flowc.compiler.passes._util import check_name

ORDER = 5
SUPPORTED = (1,)


def run(ctx: PassContext) -> None:
    m = ctx.model
    if m.flowc not in SUPPORTED:
        ctx.errors.error(
            ctx.loc("flowc"),
            f"unsupported DSL version flowc: {m.flowc}",
            "this flowc reads 'flowc: 1'",
        )
    check_name(ctx, m.name, "flow", ctx.loc("name"))
    if not m.steps and not m.functions:
        ctx.errors.error(
            ctx.key_loc("steps") if ctx.doc.has(("steps",)) else ctx.loc(),
            "the flow has no steps",
            "add a 'steps:' mapping",
        )
