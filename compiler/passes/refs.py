"""Pass 70: every reference checked and turned into edges. ``${steps.S.outputs.O}`` -> a data
edge (a ``when`` edge when only the condition reads it), ``after:`` -> order edges; unknown
params/steps/outputs/secrets are errors with suggestions; ``${item}`` only inside foreach steps
(or members of a foreach group); a foreach must iterate a list when that is statically known.
Fills Step.upstream (sorted) and Step.secrets (sorted).

Control flow (docs/control-flow.md): ``${steps.NAME}`` and ``after:`` names are resolved in the
referencing step's group first, then its enclosing groups, then the flow, and rewritten to the
qualified name; a reference into another group's member from outside is an error (a group's
``outputs`` are its only exports). In ``uses:`` sub-flows ``${params.X}`` is replaced by the
including step's ``with:`` value (else the sub-flow param's default). ``${run.status}`` and
``${run.failed_steps}`` only in finally steps; a finally step's upstream holds only finally
steps (it runs after every other step anyway). Matrix keys of ``${item.KEY}`` are checked.
Group exports and flow outputs are resolved the same way."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from flowc.compiler.errors import Loc, did_you_mean
from flowc.compiler.ir import BinOp, DictOf, Edge, Expr, Format, ListOf, Lit, Not, Ref, Step
from flowc.compiler.passes import GroupBuild, PassContext

ORDER = 70

FINALLY_ONLY = ("status", "failed_steps")


def _step_exprs(s: Step) -> list[tuple[str, Expr]]:
    out: list[tuple[str, Expr]] = [("data", v) for _, v in s.with_]
    out += [("data", a) for a in s.command or ()]
    out += [("data", v) for _, v in s.env]
    if s.foreach is not None:
        out.append(("foreach", s.foreach))
    if s.when is not None:
        out.append(("when", s.when))
    return out


def map_refs(e: Expr, fn: Callable[[Ref], Expr]) -> Expr:
    """``e`` with every reference replaced by ``fn(ref)``."""
    if isinstance(e, Ref):
        return fn(e)
    if isinstance(e, Format):
        return Format(tuple(p if isinstance(p, str) else map_refs(p, fn) for p in e.parts))
    if isinstance(e, ListOf):
        return ListOf(tuple(map_refs(i, fn) for i in e.items))
    if isinstance(e, DictOf):
        return DictOf(tuple((k, map_refs(v, fn)) for k, v in e.items))
    if isinstance(e, BinOp):
        return BinOp(e.op, map_refs(e.left, fn), map_refs(e.right, fn))
    if isinstance(e, Not):
        return Not(map_refs(e.operand, fn))
    return e


class _Scope:
    """Name resolution for the expressions of one node: the group they are written in,
    whether they belong to a finally step, the foreach that gives ``${item}``, and the
    sub-flow param bindings."""

    def __init__(
        self,
        ctx: PassContext,
        group: str | None,
        *,
        who: str,
        step: str | None = None,
        finally_: bool = False,
        item_matrix: tuple[str, ...] | None = None,
        item_ok: bool = False,
        params: GroupBuild | None = None,
        self_group: str | None = None,
    ) -> None:
        self.ctx = ctx
        self.group = group
        self.who = who
        self.step = step
        self.finally_ = finally_
        self.item_ok = item_ok
        self.item_matrix = item_matrix
        self.params = params  # the uses-group whose bindings replace ${params.X}
        self.self_group = self_group  # a group's own exports are resolved inside it
        self.ok = True

    def chain(self) -> list[str | None]:
        """The scope's groups, innermost first, then the top level (None)."""
        out: list[str | None] = []
        g = self.group
        while g is not None:
            out.append(g)
            g = self.ctx.groups[g].parent
        out.append(None)
        return out

    def error(self, loc: Loc | None, message: str, hint: str | None = None) -> None:
        self.ctx.errors.error(loc, message, hint)
        self.ok = False


def _exists(ctx: PassContext, name: str) -> bool:
    return name in ctx.steps or name in ctx.groups or name in ctx.step_models


def _parent(ctx: PassContext, name: str) -> str | None:
    if name in ctx.groups:
        return ctx.groups[name].parent
    return name.rpartition(".")[0] or None


def resolve(ctx: PassContext, sc: _Scope, name: str, loc: Loc | None, what: str) -> str | None:
    """The qualified step or group ``name`` means in scope ``sc`` (None after reporting)."""
    for g in sc.chain():
        q = f"{g}.{name}" if g else name
        if _exists(ctx, q):
            if q in ctx.steps and ctx.steps[q].is_finally and not sc.finally_:
                sc.error(
                    loc,
                    f"finally step '{q}' cannot be referenced {what}",
                    "finally steps run after every other step; only other finally steps may "
                    "use them",
                )
                return None
            owner = _parent(ctx, q)
            if owner not in sc.chain():
                hidden = owner or ""
                sc.error(
                    loc,
                    f"step '{q}' is private to group '{hidden}' {what}",
                    f"a group's outputs are its only exports: add it to the outputs of group "
                    f"'{hidden}' and reference ${{steps.{hidden}.outputs.NAME}}",
                )
                return None
            return q
    inside = sorted(q for q in [*ctx.steps, *ctx.groups] if q.rpartition(".")[2] == name)
    if inside:
        g = _parent(ctx, inside[0])
        sc.error(
            loc,
            f"unknown step '{name}' {what}; '{inside[0]}' is private to group '{g}'",
            f"a group's outputs are its only exports: add it to the outputs of group '{g}' "
            f"and reference ${{steps.{g}.outputs.NAME}}",
        )
        return None
    visible = [
        q.rpartition(".")[2]
        for q in [*ctx.steps, *ctx.groups]
        if (_parent(ctx, q) in sc.chain())
        and (sc.finally_ or not (q in ctx.steps and ctx.steps[q].is_finally))
    ]
    sc.error(loc, f"unknown step '{name}' {what}", did_you_mean(name, visible))
    return None


def _check(ctx: PassContext, sc: _Scope, r: Ref, where: str, deps: set[str]) -> Expr:
    """Check one reference in scope ``sc``; the reference as the IR keeps it (qualified, or a
    sub-flow param's value). Adds the steps/groups it depends on to ``deps``."""
    text = "${" + r.dotted + "}"
    if r.root == "params":
        if sc.params is not None:
            return _bound_param(ctx, sc, r, text)
        if r.path[0] not in ctx.params and r.path[0] not in ctx.model.params:
            hint = did_you_mean(str(r.path[0]), ctx.model.params) or (
                f"params: {', '.join(ctx.model.params)}"
                if ctx.model.params
                else "declare it under 'params:'"
            )
            sc.error(r.loc, f"unknown param '{r.path[0]}' in {text}", hint)
    elif r.root == "secrets":
        if r.path[0] not in ctx.model.secrets:
            hint = did_you_mean(str(r.path[0]), ctx.model.secrets) or (
                "declare it under 'secrets:'"
                + (" of the including flow" if sc.params is not None else "")
            )
            sc.error(r.loc, f"undeclared secret '{r.path[0]}' in {text}", hint)
    elif r.root == "steps":
        name, out = str(r.path[0]), str(r.path[2])
        q = resolve(ctx, sc, name, r.loc, f"in {text}")
        if q is None:
            return r
        if sc.step is not None and q == sc.step:
            sc.error(r.loc, f"step '{q}' references its own output in {text}")
            return r
        if q in sc.chain():
            sc.error(
                r.loc,
                f"{sc.who} is inside group '{q}' and cannot read its exports ({text})",
                "reference the member step itself",
            )
            return r
        if q in ctx.groups:
            exports = [k for k, _ in ctx.groups[q].outputs]
            if out not in exports:
                hint = did_you_mean(out, exports) or (
                    f"its outputs: {', '.join(exports)}"
                    if exports
                    else f"group '{q}' exports nothing: add 'outputs:' to it"
                )
                sc.error(r.loc, f"group '{q}' has no output '{out}' ({text})", hint)
                return r
        else:
            target = ctx.steps.get(q)
            if target is not None and out not in target.outputs:
                hint = did_you_mean(out, target.outputs) or (
                    f"its outputs: {', '.join(target.outputs)}"
                    if target.outputs
                    else f"step '{q}' declares no outputs"
                )
                sc.error(r.loc, f"step '{q}' has no output '{out}' ({text})", hint)
                return r
        deps.add(q)
        return dataclasses.replace(r, path=(q, *r.path[1:]))
    elif r.root == "item":
        if not sc.item_ok or where == "foreach":
            sc.error(
                r.loc,
                f"{text} is only available in a step with 'foreach'",
                "add 'foreach:' to this step (or to its group), or pass the value explicitly",
            )
        elif sc.item_matrix and r.path:
            key = r.path[0]
            if not isinstance(key, str) or key not in sc.item_matrix:
                sc.error(
                    r.loc,
                    f"{text}: the matrix has no key {key!r}",
                    did_you_mean(str(key), sc.item_matrix)
                    or f"its keys: {', '.join(sc.item_matrix)}",
                )
    elif r.root == "run":
        if r.path[0] in FINALLY_ONLY and not sc.finally_:
            sc.error(
                r.loc,
                f"{text} is only available in finally steps ({sc.who})",
                "move the step under 'finally:', which runs once after every other step",
            )
    return r


def _bound_param(ctx: PassContext, sc: _Scope, r: Ref, text: str) -> Expr:
    """``${params.X}`` inside a sub-flow: the value the including ``uses:`` step binds."""
    g = sc.params
    assert g is not None and g.sub_model is not None
    name = str(r.path[0])
    if name not in g.sub_model.params:
        hint = did_you_mean(name, g.sub_model.params) or (
            f"params of the sub-flow: {', '.join(g.sub_model.params)}"
            if g.sub_model.params
            else "declare it under 'params:' of the sub-flow"
        )
        sc.error(r.loc, f"unknown param '{name}' in {text}", hint)
        return r
    return g.bindings.get(name, Lit(None))


def _uses_group(ctx: PassContext, group: str | None) -> GroupBuild | None:
    """The nearest ``uses:`` group among ``group`` and its ancestors (its bindings apply)."""
    while group is not None:
        g = ctx.groups[group]
        if g.uses is not None:
            return g
        group = g.parent
    return None


def _foreach_of(ctx: PassContext, group: str | None) -> GroupBuild | None:
    while group is not None:
        g = ctx.groups[group]
        if g.foreach is not None:
            return g
        group = g.parent
    return None


def _fixer(ctx: PassContext, sc: _Scope, where: str, deps: set[str]) -> Callable[[Ref], Expr]:
    """A :func:`map_refs` function checking each reference in scope ``sc``."""
    return lambda r: _check(ctx, sc, r, where, deps)


def _foreach_check(ctx: PassContext, e: Expr, matrix: tuple[str, ...], loc: Loc, who: str) -> None:
    if matrix:
        items = e.value.items() if isinstance(e, Lit) and isinstance(e.value, dict) else ()
        if isinstance(e, DictOf):
            items = e.items  # type: ignore[assignment]
        for k, v in items:
            if isinstance(v, Format) or (isinstance(v, Lit) and not isinstance(v.value, list)):
                ctx.errors.error(loc, f"matrix key '{k}' of {who} must be a list")
        return
    if isinstance(e, Lit):
        if not isinstance(e.value, list):
            ctx.errors.error(
                loc,
                f"foreach of {who} must be a list, not {e.value!r}",
                "write a list, a list param, or a step output",
            )
    elif isinstance(e, Format):
        ctx.errors.error(
            loc,
            f"foreach of {who} must be a list, not a string",
            "write exactly one ${...} reference",
        )
    elif isinstance(e, Ref) and e.root == "params":
        p = ctx.params.get(str(e.path[0]))
        if p is not None and p.type != "list":
            ctx.errors.error(
                loc,
                f"foreach of {who} iterates param '{p.name}' of type {p.type}; it must be a list",
                f"declare '{p.name}' with type: list",
            )
    elif not isinstance(e, (Ref, ListOf)):
        ctx.errors.error(loc, f"foreach of {who} must be a list")


def _resolve_after(
    ctx: PassContext, sc: _Scope, after: tuple[str, ...], at: tuple[Any, ...], me: str
) -> list[str]:
    """``after:`` names resolved in scope ``sc``; ``at`` = (doc, path of the after list)."""
    out: list[str] = []
    doc, path = at
    kind = "group" if me in ctx.groups else "step"
    for i, a in enumerate(after):
        loc = doc.loc((*path, i))
        if a == me.rpartition(".")[2] and sc.group == _parent(ctx, me):
            ctx.errors.error(loc, f"step '{me}' cannot run after itself")
            continue
        q = resolve(ctx, sc, a, loc, f"in 'after' of {kind} '{me}'")
        if q is None:
            continue
        if q in sc.chain():
            ctx.errors.error(loc, f"'{me}' is inside group '{q}' and cannot run after it")
            continue
        out.append(q)
    return out


def _groups(ctx: PassContext, edges: list[Edge]) -> None:
    """Bindings and foreach of every group (parents first), in the parent's scope."""
    for g in ctx.groups.values():
        outer_uses = _uses_group(ctx, g.parent)
        who = f"group '{g.name}'"
        deps: set[str] = set()
        sc = _Scope(ctx, g.parent, who=who, params=outer_uses)
        if g.foreach is not None:
            g.foreach = map_refs(g.foreach, _fixer(ctx, sc, "foreach", deps))
            _foreach_check(ctx, g.foreach, g.matrix, g.doc.loc((*g.path, "foreach")), who)
        if g.sub_model is not None:
            bindings: dict[str, Expr] = {}
            for k, v in g.with_:
                if k not in g.sub_model.params:
                    ctx.errors.error(
                        g.doc.key_loc((*g.path, "with", k)),
                        f"the sub-flow of '{g.name}' has no param '{k}'",
                        did_you_mean(k, g.sub_model.params)
                        or f"its params: {', '.join(g.sub_model.params) or '(none)'}",
                    )
                    continue
                bindings[k] = map_refs(v, _fixer(ctx, sc, "data", deps))
            for pname, pm in g.sub_model.params.items():
                if pname in bindings:
                    continue
                if pm.required and pm.default is None:
                    ctx.errors.error(
                        g.doc.key_loc((*g.path, "uses")),
                        f"'{g.name}' does not set the sub-flow's required param '{pname}'",
                        f"add it to 'with:' of '{g.name}'",
                    )
                bindings[pname] = Lit(pm.default)
            g.bindings = bindings
        after = _resolve_after(ctx, sc, g.after, (g.doc, (*g.path, "after")), g.name)
        g.after = tuple(after)
        for src in sorted(deps):
            edges.append(Edge(src, g.name, "data"))
        for a in after:
            edges.append(Edge(a, g.name, "order"))
        g.upstream = tuple(sorted({*deps, *after}))  # refined by the graph pass


def _exports(ctx: PassContext) -> None:
    for g in ctx.groups.values():
        sc = _Scope(
            ctx,
            g.name,
            who=f"the outputs of group '{g.name}'",
            params=_uses_group(ctx, g.name),
            self_group=g.name,
        )
        deps: set[str] = set()
        g.outputs = [(k, map_refs(v, _fixer(ctx, sc, "export", deps))) for k, v in g.outputs]


def run(ctx: PassContext) -> None:
    edges: list[Edge] = []
    _groups(ctx, edges)
    for name, s in list(ctx.steps.items()):
        _step(ctx, name, s, edges)
    _finish(ctx, edges)


def _step(ctx: PassContext, name: str, s: Step, edges: list[Edge]) -> None:
    """Resolve and check every reference of one step; its edges, upstream and secrets."""
    ups: set[str] = set()
    secrets: set[str] = set()
    data_srcs: set[tuple[str, str]] = set()
    when_srcs: set[tuple[str, str]] = set()
    run_refs: list[Ref] = []
    fe = _foreach_of(ctx, s.group)
    sc = _Scope(
        ctx,
        s.group,
        who=f"step '{name}'",
        step=name,
        finally_=s.is_finally,
        item_ok=s.foreach is not None or fe is not None,
        item_matrix=s.matrix if s.foreach is not None else (fe.matrix if fe else None),
        params=_uses_group(ctx, s.group),
    )

    def check(r: Ref, where: str) -> Expr:
        out = _check(ctx, sc, r, where, set())
        for q in out.refs():  # a sub-flow param's value brings its own references
            if q.root == "run":
                run_refs.append(q)
            elif q.root == "secrets":
                secrets.add(str(q.path[0]))
            elif q.root == "steps" and (q.path[0] in ctx.steps or q.path[0] in ctx.groups):
                (when_srcs if where == "when" else data_srcs).add((str(q.path[0]), str(q.path[2])))
        return out

    def fix(e: Expr, where: str) -> Expr:
        return map_refs(e, lambda r: check(r, where))

    s = dataclasses.replace(
        s,
        with_=tuple((k, fix(v, "data")) for k, v in s.with_),
        command=None if s.command is None else tuple(fix(a, "data") for a in s.command),
        env=tuple((k, fix(v, "data")) for k, v in s.env),
        foreach=None if s.foreach is None else fix(s.foreach, "foreach"),
        when=None if s.when is None else fix(s.when, "when"),
    )
    for src, out in sorted(data_srcs):
        edges.append(Edge(src, name, "data", out))
        ups.add(src)
    for src, out in sorted(when_srcs - data_srcs):
        edges.append(Edge(src, name, "when", out))
        ups.add(src)
    after = _resolve_after(
        ctx,
        sc,
        s.after,
        (
            ctx.step_docs.get(name, ctx.doc),
            (*ctx.step_paths.get(name, ("steps", name)), "after"),
        ),
        name,
    )
    for a in after:
        edges.append(Edge(a, name, "order"))
        ups.add(a)
    if s.is_finally:
        # a finally step runs after every other step: only finally steps gate it
        ups = {u for u in ups if u in ctx.steps and ctx.steps[u].is_finally}
    if s.foreach is not None:
        _foreach_check(ctx, s.foreach, s.matrix, ctx.step_loc(name, "foreach"), f"step '{name}'")
    ctx.steps[name] = dataclasses.replace(
        s,
        after=tuple(after) if after or not s.after else s.after,
        upstream=tuple(sorted(ups)),
        secrets=tuple(sorted(secrets)),
        run_refs=tuple(run_refs),
    )


def _finish(ctx: PassContext, edges: list[Edge]) -> None:
    """Group exports, flow outputs and channel locations; then the edges."""
    _exports(ctx)
    if ctx.flow_outputs:
        sc = _Scope(ctx, None, who="the flow's outputs")
        ctx.flow_outputs = [
            (k, map_refs(v, _fixer(ctx, sc, "output", set()))) for k, v in ctx.flow_outputs
        ]
    for cname, c in ctx.channels.items():
        if c.location is not None:
            csc = _Scope(ctx, None, who=f"channel '{cname}'")
            for r in c.location.refs():
                if r.root in ("steps", "item"):
                    ctx.errors.error(
                        r.loc, f"channel '{cname}' location may not use ${{{r.dotted}}}"
                    )
                else:
                    _check(ctx, csc, r, "channel", set())
    ctx.edges.extend(edges)


def check_ref(ctx: PassContext, r: Ref, step: Step | None, where: str) -> str | None:
    """Check one reference of a top-level step (or none); "ok", or None after reporting."""
    sc = _Scope(
        ctx,
        None,
        who=f"step '{step.name}'" if step else "the flow",
        step=step.name if step else None,
        item_ok=step is not None and step.foreach is not None,
    )
    _check(ctx, sc, r, where, set())
    return "ok" if sc.ok else None
