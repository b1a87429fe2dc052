"""Pass 70: every reference checked and turned into edges. ``${steps.S.outputs.O}`` -> a data
edge (a ``when`` edge when only the condition reads it), ``after:`` -> order edges; unknown
params/steps/outputs/secrets are errors with suggestions; ``${item}`` only inside foreach steps;
a foreach must iterate a list when that is statically known. Fills Step.upstream (sorted) and
Step.secrets (sorted)."""

from __future__ import annotations

import dataclasses

from flowc.compiler.errors import did_you_mean
from flowc.compiler.ir import Edge, Expr, Format, ListOf, Lit, Ref, Step
from flowc.compiler.passes import PassContext

ORDER = 70


def _step_exprs(s: Step) -> list[tuple[str, Expr]]:
    out: list[tuple[str, Expr]] = [("data", v) for _, v in s.with_]
    out += [("data", a) for a in s.command or ()]
    out += [("data", v) for _, v in s.env]
    if s.foreach is not None:
        out.append(("foreach", s.foreach))
    if s.when is not None:
        out.append(("when", s.when))
    return out


def check_ref(ctx: PassContext, r: Ref, step: Step | None, where: str) -> str | None:
    """Check one reference; returns an error-free status or None after reporting."""
    text = "${" + r.dotted + "}"
    if r.root == "params":
        if r.path[0] not in ctx.params and r.path[0] not in ctx.model.params:
            hint = did_you_mean(r.path[0], ctx.model.params) or (
                f"params: {', '.join(ctx.model.params)}"
                if ctx.model.params
                else "declare it under 'params:'"
            )
            ctx.errors.error(r.loc, f"unknown param '{r.path[0]}' in {text}", hint)
            return None
    elif r.root == "secrets":
        if r.path[0] not in ctx.model.secrets:
            hint = did_you_mean(r.path[0], ctx.model.secrets) or "declare it under 'secrets:'"
            ctx.errors.error(r.loc, f"undeclared secret '{r.path[0]}' in {text}", hint)
            return None
    elif r.root == "steps":
        sname, out = r.path[0], r.path[2]
        if sname not in ctx.steps and sname not in ctx.model.steps:
            hint = did_you_mean(sname, [*ctx.steps, *ctx.model.steps])
            ctx.errors.error(r.loc, f"unknown step '{sname}' in {text}", hint)
            return None
        if step is not None and sname == step.name:
            ctx.errors.error(r.loc, f"step '{sname}' references its own output in {text}")
            return None
        target = ctx.steps.get(sname)
        if target is not None and out not in target.outputs:
            hint = did_you_mean(out, target.outputs) or (
                f"its outputs: {', '.join(target.outputs)}"
                if target.outputs
                else f"step '{sname}' declares no outputs"
            )
            ctx.errors.error(r.loc, f"step '{sname}' has no output '{out}' ({text})", hint)
            return None
    elif r.root == "item":
        if step is None or step.foreach is None or where == "foreach":
            ctx.errors.error(
                r.loc,
                f"{text} is only available in a step with 'foreach'",
                "add 'foreach:' to this step, or pass the value explicitly",
            )
            return None
    return "ok"


def _foreach_check(ctx: PassContext, s: Step) -> None:
    e = s.foreach
    loc = ctx.loc("steps", s.name, "foreach")
    if isinstance(e, Lit):
        if not isinstance(e.value, list):
            ctx.errors.error(
                loc,
                f"foreach of step '{s.name}' must be a list, not {e.value!r}",
                "write a list, a list param, or a step output",
            )
    elif isinstance(e, Format):
        ctx.errors.error(
            loc,
            f"foreach of step '{s.name}' must be a list, not a string",
            "write exactly one ${...} reference",
        )
    elif isinstance(e, Ref) and e.root == "params":
        p = ctx.params.get(e.path[0])
        if p is not None and p.type != "list":
            ctx.errors.error(
                loc,
                f"foreach of step '{s.name}' iterates param '{p.name}' of type "
                f"{p.type}; it must be a list",
                f"declare '{p.name}' with type: list",
            )
    elif not isinstance(e, (Ref, ListOf)):
        ctx.errors.error(loc, f"foreach of step '{s.name}' must be a list")


def run(ctx: PassContext) -> None:
    edges: list[Edge] = []
    for name, s in list(ctx.steps.items()):
        ups: set[str] = set()
        secrets: set[str] = set()
        data_srcs: set[tuple[str, str]] = set()
        when_srcs: set[tuple[str, str]] = set()
        run_refs: list[Ref] = []
        for where, e in _step_exprs(s):
            for r in e.refs():
                if check_ref(ctx, r, s, where) is None:
                    continue
                if r.root == "run":
                    run_refs.append(r)
                elif r.root == "steps":
                    (when_srcs if where == "when" else data_srcs).add((r.path[0], r.path[2]))
                elif r.root == "secrets":
                    secrets.add(r.path[0])
        for src, out in sorted(data_srcs):
            edges.append(Edge(src, name, "data", out))
            ups.add(src)
        for src, out in sorted(when_srcs - data_srcs):
            edges.append(Edge(src, name, "when", out))
            ups.add(src)
        for i, a in enumerate(s.after):
            if a not in ctx.steps and a not in ctx.model.steps:
                ctx.errors.error(
                    ctx.loc("steps", name, "after", i),
                    f"unknown step '{a}' in 'after' of step '{name}'",
                    did_you_mean(a, [*ctx.steps, *ctx.model.steps]),
                )
            elif a == name:
                ctx.errors.error(
                    ctx.loc("steps", name, "after", i), f"step '{name}' cannot run after itself"
                )
            else:
                edges.append(Edge(a, name, "order"))
                ups.add(a)
        if s.foreach is not None:
            _foreach_check(ctx, s)
        ctx.steps[name] = dataclasses.replace(
            s, upstream=tuple(sorted(ups)), secrets=tuple(sorted(secrets)), run_refs=tuple(run_refs)
        )
    for cname, c in ctx.channels.items():
        if c.location is not None:
            for r in c.location.refs():
                if r.root in ("steps", "item"):
                    ctx.errors.error(
                        r.loc, f"channel '{cname}' location may not use ${{{r.dotted}}}"
                    )
                else:
                    check_ref(ctx, r, None, "channel")
    ctx.edges.extend(edges)
