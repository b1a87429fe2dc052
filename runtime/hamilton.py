"""Run one node of a Hamilton function graph outside Hamilton's driver.

A function-module step whose Hamilton node is not the plain function (``@parameterize`` makes
several nodes of one function, ``@extract_columns`` makes column nodes, ``@config.when`` picks a
variant, ``@check_output`` adds validator nodes) compiles to ``run: flowc.runtime.hamilton:node``
with one extra keyword argument, :data:`NODE_ARG` = ``{"modules": [...], "config": {...},
"node": NAME}``. In the step's process this module rebuilds the graph from the same modules and
config with Hamilton's own ``FunctionGraph`` (once per process) and calls
``graph.nodes[NAME].callable(**inputs)``: the callable exactly as Hamilton resolved it.

Hamilton is imported lazily, only when such a step runs; the compiler is never imported.
"""

from __future__ import annotations

import functools
import importlib
import json
from collections.abc import Mapping
from typing import Any

NODE_ARG = "hamilton_node"


@functools.lru_cache(maxsize=32)
def _graph(modules: tuple[str, ...], config_json: str) -> Any:
    """Hamilton's FunctionGraph of ``modules`` under ``config`` (cached per process)."""
    from hamilton import graph as hamilton_graph  # lazy: optional extra 'hamilton'

    loaded = [importlib.import_module(name) for name in modules]
    return hamilton_graph.FunctionGraph.from_modules(*loaded, config=json.loads(config_json))


def node(hamilton_node: Mapping[str, Any], **inputs: Any) -> Any:
    """Call Hamilton node ``hamilton_node["node"]`` with its dependencies as ``inputs``."""
    modules = tuple(hamilton_node.get("modules") or ())
    config = json.dumps(hamilton_node.get("config") or {}, sort_keys=True)
    name = hamilton_node["node"]
    graph = _graph(modules, config)
    try:
        target = graph.nodes[name]
    except KeyError:
        raise LookupError(
            f"Hamilton node '{name}' is not in the graph of {', '.join(modules)}: the module "
            "changed since the flow was compiled (recompile it)"
        ) from None
    return target.callable(**inputs)
