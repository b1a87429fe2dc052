"""All problems of a file in one pass: after the schema rejects a flow, the offending keys and
values are pruned from a copy of the data so that the passes can still check the rest.

:func:`diagnose` returns the schema's diagnostics plus the passes' diagnostics on the pruned
flow, minus those that only follow from a pruned value (a step whose ``run`` had the wrong type
is not also reported as having no ``run``), sorted and each once. When pruning cannot give a
valid model (a required key is missing or wrong), only the schema's diagnostics are returned.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from typing import Any

from flowc.compiler.errors import Diagnostic, FlowcError, Loc, sorted_unique
from flowc.compiler.loader import Doc

#: Pruning rounds before giving up (each round removes every path pydantic reported).
MAX_ROUNDS = 4


def diagnose(
    doc: Doc, first: FlowcError, run_passes: Callable[[Doc, Any], None]
) -> list[Diagnostic]:
    """The schema's diagnostics (``first``) plus what ``run_passes(pruned_doc, model)`` finds."""
    pruned = _prune(doc)
    if pruned is None:
        return sorted_unique(first.diagnostics)
    pruned_doc, model, paths = pruned
    try:
        run_passes(pruned_doc, model)
    except FlowcError as e:
        quiet = _cascade_locs(doc, paths)
        more = [d for d in e.diagnostics if d.loc is None or d.loc not in quiet]
        return sorted_unique([*first.diagnostics, *more])
    return sorted_unique(first.diagnostics)


def _prune(doc: Doc) -> tuple[Doc, Any, list[tuple[Any, ...]]] | None:
    from pydantic import ValidationError

    from flowc.compiler import schema

    data = copy.deepcopy(doc.data)
    removed: list[tuple[Any, ...]] = []
    for _ in range(MAX_ROUNDS):
        probe = dataclasses.replace(doc, data=data)
        try:
            return probe, schema.validate(probe), removed
        except FlowcError:
            pass
        tree = data.get("integration_framework")
        names = schema.layer_names(tree if isinstance(tree, dict) else schema.DEFAULT_LAYERS)
        plain = {k: v for k, v in data.items() if not (k in names and k not in schema.TOP_KEYS)}
        try:
            schema.FlowModel.model_validate(plain)
        except ValidationError as e:
            errors = e.errors(include_url=False)
        else:  # the model accepts it; a validator of schema.validate itself did not
            return None
        for err in errors:
            if err["type"] == "missing":
                return None
            path = doc.data_path(err["loc"])
            if err["type"] == "extra_forbidden":
                path = (*doc.data_path(err["loc"][:-1]), err["loc"][-1])
            while path and isinstance(path[-1], int):  # a bad list item: drop the whole list
                path = path[:-1]
            if not path or not _delete(data, path):
                return None
            if err["type"] != "extra_forbidden" or len(path) == 1:
                removed.append(path)
    return None


def _delete(data: Any, path: tuple[Any, ...]) -> bool:
    node = data
    for part in path[:-1]:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return False
    last = path[-1]
    if isinstance(node, dict) and last in node:
        del node[last]
        return True
    return False


def _cascade_locs(doc: Doc, paths: list[tuple[Any, ...]]) -> set[Loc]:
    """Where a diagnostic that only follows from pruning ``paths`` would point: each pruned
    value and the objects around it below the top-level sections; the flow itself when a
    top-level key (misspelled ``stepz:``, say) was pruned."""
    out: set[Loc] = set()
    if any(len(path) == 1 for path in paths):  # a flow-level complaint ("no steps") follows
        out.add(Loc(doc.file, 1, 1))
    for path in paths:
        for n in range(min(2, len(path)), len(path) + 1):
            out.add(doc.loc(path[:n]))
            out.add(doc.key_loc(path[:n]))
    return out
