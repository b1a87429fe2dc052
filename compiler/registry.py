"""Entry-point registries: ``flowc.targets``, ``flowc.components``, ``flowc.plugins``.

Like sqlglot dialects, targets are found by name through the ``flowc.targets`` entry point group;
third parties register their own in their pyproject.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points
from typing import Any

from flowc.compiler.errors import FlowcError, did_you_mean


@cache
def _group(group: str) -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=group)}


def target_names() -> list[str]:
    return sorted(_group("flowc.targets"))


def target_entry(name: str) -> Any:
    """The entry point object for a target name (has ``.value`` "module:Class")."""
    return _group("flowc.targets")[name]


def load_target(name: str) -> Any:
    """An instance of the target registered under ``name``."""
    eps = _group("flowc.targets")
    if name not in eps:
        raise FlowcError.at(
            None,
            f"unknown target '{name}'",
            did_you_mean(name, eps) or f"known targets: {', '.join(sorted(eps))}",
        )
    return eps[name].load()()
