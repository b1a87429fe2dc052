"""The plan's structure as the schedulers need it (Hamilton's graph functions): groups and
their members, the foreach group a step runs in, what a dependency on a group means (its
leaves), the dependencies a step inherits from its groups' ``after:``, finally steps, and the
``--only`` selection. Pure: reads the plan, runs nothing.

Names are qualified (``per_shard.prep``); a plan without groups has top-level steps only and
every function here degenerates to the flat graph.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, cast

from flowc.runtime import exprs
from flowc.runtime.plan import Plan, StepData


def opt(data: Mapping[str, Any] | StepData, key: str, default: Any = None) -> Any:
    """A plan entry's optional control-flow key (absent when it has its default value)."""
    value = cast(Mapping[str, Any], data).get(key)
    return default if value is None else value


class PlanGraph:
    """Read-only views of one plan's steps and groups."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.steps: Mapping[str, StepData] = plan["steps"]
        self.order: list[str] = list(plan.get("order") or self.steps)
        self.groups: dict[str, dict[str, Any]] = dict(
            cast(Mapping[str, Any], plan).get("groups") or {}
        )
        self._members: dict[str, list[str]] = {g: [] for g in self.groups}
        for name in self.order:
            g = self.group_of(name)
            while g is not None:
                self._members[g].append(name)
                g = self.groups[g].get("parent")
        self._foreach_group: dict[str, str | None] = {}
        for name in self.order:
            g = self.group_of(name)
            found = None
            while g is not None:
                if self.groups[g].get("foreach") is not None:
                    found = g
                    break
                g = self.groups[g].get("parent")
            self._foreach_group[name] = found
        self._deps = {name: self._effective_deps(name) for name in self.order}

    # -- structure -----------------------------------------------------------------------------

    def group_of(self, step: str) -> str | None:
        """The innermost group holding ``step`` (None at the top level)."""
        return cast(str | None, opt(self.steps[step], "group"))

    def is_group(self, name: str) -> bool:
        return name in self.groups

    def is_finally(self, step: str) -> bool:
        return bool(opt(self.steps[step], "finally", False))

    def members(self, group: str) -> list[str]:
        """Every step inside ``group`` (recursively), plan order."""
        return self._members.get(group, [])

    def inside(self, name: str, group: str) -> bool:
        """Whether step or group ``name`` is inside ``group`` (at any depth)."""
        return name.startswith(group + ".")

    def foreach_group(self, step: str) -> str | None:
        """The (only) foreach group ``step`` runs in, once per item; None when it runs once."""
        return self._foreach_group.get(step)

    def leaves(self, name: str) -> list[str]:
        """The steps a dependency on ``name`` waits for: a step itself; a group's leaves (its
        member steps no other member depends on)."""
        if name not in self.groups:
            return [name]
        leaves = self.groups[name].get("leaves")
        if leaves:
            return list(leaves)
        members = self.members(name)  # no leaves written: every member (always correct)
        return members

    def deps(self, step: str) -> list[str]:
        """Direct dependencies of ``step`` (steps or groups): its ``upstream``, plus the
        ``after:`` of each enclosing group for which it is a root (no upstream inside it)."""
        return self._deps[step]

    def _effective_deps(self, step: str) -> list[str]:
        out = list(self.steps[step].get("upstream") or ())
        g = self.group_of(step)
        while g is not None:
            if not any(self.inside(u, g) for u in out):
                out.extend(self.groups[g].get("after") or ())
            g = self.groups[g].get("parent")
        return list(dict.fromkeys(out))

    def group_deps(self, group: str) -> list[str]:
        """What a foreach group waits for before its items are known: its ``upstream``,
        ``after:`` and the steps its ``foreach`` references."""
        data = self.groups[group]
        out = list(data.get("upstream") or ()) + list(data.get("after") or ())
        for path in exprs.refs(data.get("foreach")):
            if path and path[0] == "steps" and len(path) > 1:
                out.append(str(path[1]))
        return list(dict.fromkeys(o for o in out if o in self.steps or o in self.groups))

    def finally_steps(self) -> list[str]:
        return [s for s in self.order if self.is_finally(s)]

    # -- selection -----------------------------------------------------------------------------

    def select(self, only: Iterable[str]) -> list[str]:
        """The steps ``--only`` runs: those named (a group: its members) and everything they
        need upstream, in plan order (every step without ``only``)."""
        todo = list(only)
        if not todo:
            return list(self.order)
        keep: set[str] = set()
        seen: set[str] = set()
        while todo:
            s = todo.pop()
            if s in seen:
                continue
            seen.add(s)
            if s in self.groups:
                todo.extend(self.members(s))
                continue
            keep.add(s)
            todo.extend(self.deps(s))
            f = self.foreach_group(s)
            if f is not None:
                todo.extend(self.group_deps(f))
        return [s for s in self.order if s in keep]

    def known(self, name: str) -> bool:
        return name in self.steps or name in self.groups
