"""Instance expansion: the items of a ``foreach`` (a list, or the cross product of a mapping of
lists: a matrix), and the scheduling keys of step instances with what each waits for.

A step outside foreach groups is one scheduling key, ``("step", name)`` (its own ``foreach``
items are its instances, started together). A foreach group is opened once by
``("open", group)``; then every member step (recursively) gets one key per item,
``("unit", name, index)``, which waits for the SAME item of the members it depends on inside
the group (item-wise: item 0's second step starts as soon as item 0's first step finished) and
for the whole of anything outside it. The member's ``("step", name)`` key is released once all
its units are done.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Sequence
from typing import Any

from flowc.runtime.graph import PlanGraph

Key = tuple[Any, ...]
"""``("step", name)`` | ``("unit", name, index)`` | ``("open", group)`` | ``("ops",)``."""


class ForeachError(ValueError):
    """A foreach value that is not a list (or, for a matrix, not a mapping of lists)."""


def step_key(name: str) -> Key:
    return ("step", name)


def unit_key(name: str, index: int) -> Key:
    return ("unit", name, index)


def open_key(group: str) -> Key:
    return ("open", group)


def foreach_items(value: Any, matrix: Sequence[str] = ()) -> list[Any]:
    """The items of an evaluated ``foreach``: the list itself; with ``matrix`` keys (foreach
    written as a mapping), one dict per combination, ``itertools.product`` order over the keys
    in written order (the last key varies fastest)."""
    if matrix:
        if not isinstance(value, dict):
            raise ForeachError(f"foreach must be a mapping of lists, got {type(value).__name__}")
        lists = []
        for k in matrix:
            v = value.get(k)
            if not isinstance(v, list | tuple):
                raise ForeachError(f"foreach key '{k}' must be a list, got {type(v).__name__}")
            lists.append(list(v))
        return [dict(zip(matrix, combo, strict=True)) for combo in itertools.product(*lists)]
    if not isinstance(value, list | tuple):
        raise ForeachError(f"foreach must be a list, got {type(value).__name__}")
    return list(value)


def step_deps(graph: PlanGraph, step: str, selected: set[str]) -> list[Key]:
    """The keys whole step ``step`` (outside foreach groups) waits for. A finally step waits for
    every selected non-finally step, then for its own upstream."""
    keys = [step_key(leaf) for u in graph.deps(step) for leaf in graph.leaves(u)]
    if graph.is_finally(step):
        keys += [step_key(s) for s in graph.order if s in selected and not graph.is_finally(s)]
    return list(dict.fromkeys(k for k in keys if k[1] in selected))


def open_deps(graph: PlanGraph, group: str, selected: set[str]) -> list[Key]:
    """The keys foreach group ``group`` waits for before evaluating its items."""
    keys = [step_key(leaf) for u in graph.group_deps(group) for leaf in graph.leaves(u)]
    return list(dict.fromkeys(k for k in keys if k[1] in selected))


def unit_deps(graph: PlanGraph, step: str, index: int, selected: set[str]) -> list[Key]:
    """The keys instance ``index`` of ``step`` (a member of a foreach group) waits for."""
    group = graph.foreach_group(step)
    keys: list[Key] = []
    for u in graph.deps(step):
        for leaf in graph.leaves(u):
            if leaf not in selected:
                continue
            if group is not None and graph.inside(leaf, group):
                keys.append(unit_key(leaf, index))
            else:
                keys.append(step_key(leaf))
    return list(dict.fromkeys(keys))


def initial_keys(
    graph: PlanGraph, selected: Sequence[str], finished: Collection[str]
) -> list[tuple[Key, list[Key]]]:
    """The keys a run starts with and what each waits for: one per step outside foreach
    groups, one ``open`` key per foreach group (its units are added when it opens). Steps in
    ``finished`` (a resumed run's) and streaming operators (scheduled as one group by the
    executor) get none."""
    sel = set(selected)
    out: list[tuple[Key, list[Key]]] = []
    opened: set[str] = set()
    for s in selected:
        if s in finished or graph.steps[s].get("operator"):
            continue
        group = graph.foreach_group(s)
        if group is None:
            out.append((step_key(s), step_deps(graph, s, sel)))
        elif group not in opened:
            opened.add(group)
            out.append((open_key(group), open_deps(graph, group, sel)))
    return out
