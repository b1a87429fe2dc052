"""Pass 80: cycle detection (the error prints the path ``a -> b -> a``) and the topological order
of ``ctx.steps`` (ties broken by written order). Linear in steps + edges.

With groups (docs/control-flow.md) the graph is checked level by level: every dependency of a
step or group is lifted to the innermost level holding both ends (``g.a`` reading top-level
``x`` is the edge ``x -> g`` at the top level), so a cycle through a group is reported with the
group's name. The order expands each group in place (members stay together, in their own
topological order); ``finally:`` steps come last. Fills each group's ``upstream`` (its
sibling-level dependencies), ``steps``/``groups`` (topological order) and ``leaves``."""

from __future__ import annotations

import heapq

from flowc.compiler.errors import Loc
from flowc.compiler.passes import PassContext

ORDER = 80
NEEDS_CLEAN = True


def run(ctx: PassContext) -> None:
    if not ctx.groups:
        _flat(ctx)
        return
    _levels(ctx)


def _parent(ctx: PassContext, n: str) -> str | None:
    if n in ctx.groups:
        return ctx.groups[n].parent
    return ctx.steps[n].group


def _ancestors(ctx: PassContext, n: str) -> list[str | None]:
    """The levels holding ``n``, innermost first, ending with None (the top level)."""
    out: list[str | None] = []
    p = _parent(ctx, n)
    while p is not None:
        out.append(p)
        p = ctx.groups[p].parent
    out.append(None)
    return out


def _node_at(ctx: PassContext, n: str, level: str | None) -> str:
    while _parent(ctx, n) != level:
        n = _parent(ctx, n)  # type: ignore[assignment]
    return n


def _levels(ctx: PassContext) -> None:
    regular = [n for n, s in ctx.steps.items() if not s.is_finally]
    finals = [n for n, s in ctx.steps.items() if s.is_finally]
    # written order of every node of every level
    children: dict[str | None, list[str]] = {None: []}
    for g in ctx.groups:
        children[g] = []
    seen: set[str] = set()
    for n in regular:
        chain = [n]
        p = _parent(ctx, n)
        while p is not None:
            chain.append(p)
            p = ctx.groups[p].parent
        for node in reversed(chain):
            if node not in seen:
                seen.add(node)
                children[_parent(ctx, node)].append(node)
    for g in ctx.groups:  # groups without steps (an empty sub-flow)
        if g not in seen:
            seen.add(g)
            children[_parent(ctx, g)].append(g)
    index = {n: i for lvl in children.values() for i, n in enumerate(lvl)}
    ups: dict[str, set[str]] = {n: set() for n in index}

    def lift(src: str, dst: str) -> None:
        dst_levels = _ancestors(ctx, dst)
        src_levels = set(_ancestors(ctx, src))
        level = next(lvl for lvl in dst_levels if lvl in src_levels)
        a, b = _node_at(ctx, dst, level), _node_at(ctx, src, level)
        if a != b:
            ups[a].add(b)

    for n in regular:
        for u in ctx.steps[n].upstream:
            if u in index:
                lift(u, n)
    for g in ctx.groups.values():
        for u in g.upstream:
            if u in index:
                lift(u, g.name)
    order: dict[str | None, list[str]] = {}
    for level, nodes in children.items():
        got = _topo(nodes, ups, index)
        if got is None:
            _report_cycle(ctx, nodes, ups, index, level)
            return
        order[level] = got

    def expand(level: str | None) -> list[str]:
        out: list[str] = []
        for node in order[level]:
            out.extend(expand(node) if node in ctx.groups else [node])
        return out

    flat = expand(None)
    final_order = _topo(
        finals,
        {n: set(ctx.steps[n].upstream) for n in finals},
        {n: i for i, n in enumerate(finals)},
    )
    if final_order is None:
        _flat_cycle(ctx, finals)
        return
    ctx.steps = {n: ctx.steps[n] for n in [*flat, *final_order]}
    for g in ctx.groups.values():
        g.upstream = tuple(sorted(ups[g.name]))
        g.steps = [n for n in order[g.name] if n not in ctx.groups]
        g.groups = [n for n in order[g.name] if n in ctx.groups]
        members = [n for n in flat if n.startswith(g.name + ".")]
        g.leaves = tuple(m for m in members if _is_leaf(ctx, m, g.name, ups))


def _is_leaf(ctx: PassContext, step: str, group: str, ups: dict[str, set[str]]) -> bool:
    """No node inside ``group`` depends on ``step`` (or on a group inside ``group`` holding it)."""
    node: str | None = step
    while node is not None and node != group:
        level = _parent(ctx, node)
        for sib, deps in ups.items():
            if node in deps and _parent(ctx, sib) == level:
                return False
        node = level
    return True


def _topo(nodes: list[str], ups: dict[str, set[str]], index: dict[str, int]) -> list[str] | None:
    members = set(nodes)
    indeg = {n: 0 for n in nodes}
    down: dict[str, list[str]] = {n: [] for n in nodes}
    for n in nodes:
        for u in ups.get(n, ()):
            if u in members:
                indeg[n] += 1
                down[u].append(n)
    heap = [index[n] for n in nodes if indeg[n] == 0]
    heapq.heapify(heap)
    out: list[str] = []
    while heap:
        n = nodes[heapq.heappop(heap)]
        out.append(n)
        for d in down[n]:
            indeg[d] -= 1
            if indeg[d] == 0:
                heapq.heappush(heap, index[d])
    return out if len(out) == len(nodes) else None


def _report_cycle(
    ctx: PassContext,
    nodes: list[str],
    ups: dict[str, set[str]],
    index: dict[str, int],
    level: str | None,
) -> None:
    local = {n: i for i, n in enumerate(nodes)}
    members = set(nodes)
    remaining = {n: {u for u in ups[n] if u in members} for n in nodes}
    # peel off nodes that are not on a cycle (no upstream left)
    changed = True
    left = set(nodes)
    while changed:
        changed = False
        for n in list(left):
            if not (remaining[n] & left):
                left.discard(n)
                changed = True
    cycle = _cycle_in(left, lambda n: sorted(remaining[n] & left, key=local.__getitem__), local)
    first = min(cycle[:-1], key=lambda n: local[n])
    via = [n for n in cycle[:-1] if n in ctx.groups]
    where = f" through group '{via[0]}'" if via else ""
    inside = f" (inside group '{level}')" if level else ""
    loc: Loc | None = ctx.groups[first].loc if first in ctx.groups else ctx.steps[first].loc
    ctx.errors.error(
        loc,
        f"dependency cycle{where}{inside}: " + " -> ".join(cycle),
        "remove one of these references or 'after' entries"
        + ("; a group waits for everything its members read from outside it" if via else ""),
    )


def _cycle_in(left: set[str], upstream, index: dict[str, int]) -> list[str]:  # type: ignore[no-untyped-def]
    """A cycle among ``left`` (each has an upstream in ``left``), in execution direction,
    starting at its earliest written node."""
    start = min(left, key=lambda n: index[n])
    path: list[str] = []
    pos: dict[str, int] = {}
    n = start
    while n not in pos:
        pos[n] = len(path)
        path.append(n)
        n = upstream(n)[0]
    cyc = path[pos[n] :] + [n]
    cyc.reverse()  # upstream links reversed: print in execution direction
    body = cyc[:-1]
    k = min(range(len(body)), key=lambda i: index[body[i]])
    body = body[k:] + body[:k]
    return body + [body[0]]


def _flat(ctx: PassContext) -> None:
    names = list(ctx.steps)
    regular = [n for n in names if not ctx.steps[n].is_finally]
    finals = [n for n in names if ctx.steps[n].is_finally]
    index = {n: i for i, n in enumerate(regular)}
    ups = {n: set(ctx.steps[n].upstream) for n in regular}
    order = _topo(regular, ups, index)
    if order is None:
        _flat_cycle(ctx, regular)
        return
    final_order = _topo(
        finals,
        {n: set(ctx.steps[n].upstream) for n in finals},
        {n: i for i, n in enumerate(finals)},
    )
    if final_order is None:
        _flat_cycle(ctx, finals)
        return
    ctx.steps = {n: ctx.steps[n] for n in [*order, *final_order]}


def _flat_cycle(ctx: PassContext, names: list[str]) -> None:
    index = {n: i for i, n in enumerate(names)}
    members = set(names)
    ups = {n: {u for u in ctx.steps[n].upstream if u in members} for n in names}
    left = set(names)
    changed = True
    while changed:
        changed = False
        for n in list(left):
            if not (ups[n] & left):
                left.discard(n)
                changed = True
    cycle = _cycle_in(left, lambda n: sorted(ups[n] & left, key=index.__getitem__), index)
    first = min(cycle[:-1], key=lambda n: index[n])
    ctx.errors.error(
        ctx.steps[first].loc,
        "dependency cycle: " + " -> ".join(cycle),
        "remove one of these references or 'after' entries",
    )
