"""Pass 80: cycle detection (the error prints the path ``a -> b -> a``) and the topological order
of ``ctx.steps`` (ties broken by written order). Linear in steps + edges."""

from __future__ import annotations

import heapq

from flowc.compiler.passes import PassContext

ORDER = 80
NEEDS_CLEAN = True


def run(ctx: PassContext) -> None:
    names = list(ctx.steps)
    index = {n: i for i, n in enumerate(names)}
    indeg = {n: 0 for n in names}
    down: dict[str, list[str]] = {n: [] for n in names}
    for n, s in ctx.steps.items():
        for u in s.upstream:
            if u in index:
                indeg[n] += 1
                down[u].append(n)
    heap = [index[n] for n in names if indeg[n] == 0]
    heapq.heapify(heap)
    order: list[str] = []
    while heap:
        n = names[heapq.heappop(heap)]
        order.append(n)
        for d in down[n]:
            indeg[d] -= 1
            if indeg[d] == 0:
                heapq.heappush(heap, index[d])
    if len(order) == len(names):
        ctx.steps = {n: ctx.steps[n] for n in order}
        return
    left = {n for n in names if indeg[n] > 0}
    cycle = _find_cycle(ctx, left, index)
    first = min(cycle[:-1], key=lambda n: index[n])
    ctx.errors.error(
        ctx.steps[first].loc,
        "dependency cycle: " + " -> ".join(cycle),
        "remove one of these references or 'after' entries",
    )


def _find_cycle(ctx: PassContext, left: set[str], index: dict[str, int]) -> list[str]:
    """A cycle among ``left`` starting at its first written step, following upstream links."""
    start = min(left, key=lambda n: index[n])
    path: list[str] = []
    pos: dict[str, int] = {}
    n = start
    while n not in pos:
        pos[n] = len(path)
        path.append(n)
        ups = sorted((u for u in ctx.steps[n].upstream if u in left), key=lambda u: index[u])
        n = ups[0]
    cyc = path[pos[n] :] + [n]
    cyc.reverse()  # upstream links reversed: print in execution direction
    # rotate so it starts at the earliest written step
    body = cyc[:-1]
    k = min(range(len(body)), key=lambda i: index[body[i]])
    body = body[k:] + body[:k]
    return body + [body[0]]
