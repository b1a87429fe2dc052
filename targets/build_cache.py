"""The build cache one compile hands to its targets: work that several targets of one flow share
(the KFP PipelineSpec, which the kfp and vertex targets both embed) is done once per IR.

A target opts in with ``uses_build_cache = True`` and an ``emit(ir, cache=...)`` keyword;
:func:`flowc.compiler.api.emit` passes the cache it is given to such targets only. Without a
cache every target builds what it needs itself: nothing is kept between compiles (no module
global), so a long-lived process never holds an old flow.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from flowc.compiler.ir import Pipeline

T = TypeVar("T")


class BuildCache:
    """Results keyed by a name and the IR object they were built from (an IR is not changed
    after the passes, so the same object gives the same result). Values are shared between
    targets: they must not be changed."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, int], tuple[Pipeline, Any]] = {}
        self._aliases: dict[int, tuple[Pipeline, Pipeline]] = {}

    def alias(self, ir: Pipeline, same_as: Pipeline) -> None:
        """Let ``ir`` share ``same_as``'s entries: a copy that differs only where builds do not
        look (the output folder named in the provenance header)."""
        self._aliases[id(ir)] = (ir, same_as)

    def get(self, key: str, ir: Pipeline, build: Callable[[], T]) -> T:
        """The value built for ``(key, ir)``, building it with ``build()`` the first time."""
        alias = self._aliases.get(id(ir))
        if alias is not None and alias[0] is ir:
            ir = alias[1]
        slot = (key, id(ir))
        hit = self._entries.get(slot)
        if hit is not None and hit[0] is ir:  # the entry holds ir, so its id is not reused
            return hit[1]  # type: ignore[no-any-return]
        value = build()
        self._entries[slot] = (ir, value)
        return value

    def __len__(self) -> int:
        return len(self._entries)
