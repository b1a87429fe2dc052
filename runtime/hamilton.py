"""Run one node of a Hamilton function graph outside Hamilton's driver.

A function-module step whose Hamilton node is not the plain function (``@parameterize`` makes
several nodes of one function, ``@extract_columns`` makes column nodes, ``@config.when`` picks a
variant, ``@check_output`` adds validator nodes) compiles to ``run: flowc.runtime.hamilton:node``
with one extra keyword argument, :data:`NODE_ARG` = ``{"modules": [...], "config": {...},
"node": NAME}``. In the step's process this module rebuilds the graph from the same modules and
config with Hamilton's own ``FunctionGraph`` (once per process) and calls
``graph.nodes[NAME].callable(**inputs)``: the callable exactly as Hamilton resolved it.

Hamilton is imported lazily, only when such a step runs (or its cache key is computed); the
compiler is never imported.

:func:`code_version` is the code part of such a step's ``cache: true`` key: Hamilton's own code
version of the node (``HamiltonNode.version``, what Hamilton's caching keys on: the source of the
node's originating function, decorators included, docstrings and comments stripped) and the
values Hamilton bound into the node's callable (``@parameterize``'s ``value(...)``). The key's
other parts (the resolved inputs, hence the upstream values) are the executor's, as for any step.
"""

from __future__ import annotations

import functools
import importlib
import json
import re
from collections.abc import Mapping
from typing import Any

NODE_ARG = "hamilton_node"
NODE_REF = "flowc.runtime.hamilton:node"
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


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


def code_version(data: Mapping[str, Any]) -> str:
    """The code version of the Hamilton node a step runs, for its cache key; ``''`` for a step
    that does not run ``flowc.runtime.hamilton:node`` (its callable's source is the code part).

    Hamilton's own ``HamiltonNode.version``: a hash of the node's originating function's source
    (its decorators included: ``@parameterize``'s ``value(...)``, ``@check_output``'s bounds),
    docstrings and comments stripped, and the values bound into the node's callable (which
    may be computed at import time, as FlowerPower's ``PARAMS``). Editing another function of the module does not change it;
    a change upstream reaches the key through the step's inputs (the upstream outputs), as in
    Hamilton's caching, where a node's key is its code version and its dependencies' data
    versions. When the graph cannot be built or the node is gone, the reason is the version (no
    cache entry can match it; the step itself then fails with the error)."""
    if data.get("run") != NODE_REF:
        return ""
    spec = (data.get("with") or {}).get(NODE_ARG)
    if isinstance(spec, Mapping) and "$lit" in spec:  # the plan's literal encoding
        spec = spec["$lit"]
    if not isinstance(spec, Mapping) or "node" not in spec:
        return ""
    modules = tuple(spec.get("modules") or ())
    config = json.dumps(spec.get("config") or {}, sort_keys=True)
    name = str(spec["node"])
    try:
        from hamilton import graph_types  # lazy: optional extra 'hamilton'

        target = _graph(modules, config).nodes[name]
        version = graph_types.HamiltonNode.from_node(target).version
    except Exception as e:  # the step's own run reports it, located
        return f"unversioned: {type(e).__name__}: {e}"
    if version is None:  # no source (Hamilton logs why): the modules' files stand in
        return "modules: " + "".join(_module_text(m) for m in modules)
    return f"hamilton: {version} bound: {_bound(target.callable)}"


def _bound(fn: Any) -> str:
    """The values Hamilton bound into a node's callable (``@parameterize``'s ``value(...)``,
    possibly computed at import time, e.g. FlowerPower's ``PARAMS`` from ``conf/``): the
    arguments of its ``functools.partial`` layers, as JSON (other objects by their ``repr``
    without memory addresses)."""
    layers = []
    while isinstance(fn, functools.partial):
        layers.append({"args": list(fn.args), "kwargs": dict(fn.keywords)})
        fn = fn.func
    return json.dumps(layers, sort_keys=True, default=lambda o: _ADDRESS.sub("", repr(o)))


def _module_text(name: str) -> str:
    """A module's file text, or its name when it has none."""
    path = getattr(importlib.import_module(name), "__file__", None)
    if not path:
        return name
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()
