"""The node graph of function modules: Hamilton's own (apache-hamilton), or -- when Hamilton is
not installed, or imports are off (``validate --no-import``) -- one node per public function read
from its signature (which is Hamilton's graph for plain, undecorated functions).

A :class:`FunctionNode` is what the functions pass (``compiler/passes/functions.py``) turns into a
step: the node's name, the module and function it came from (for ``file:line`` in errors), its
dependencies in order, with whether each is required, and what the runtime calls: the plain
function (``module:function``) when Hamilton's node *is* that function, else
``flowc.runtime.hamilton:node``, which rebuilds the same graph in the step's process.
"""

from __future__ import annotations

import importlib.util
import inspect
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

HAMILTON_PACKAGE = "apache-hamilton"
INSTALL_HINT = f"install Hamilton: pip install '{HAMILTON_PACKAGE}' (or the extra flowc[hamilton])"
NODE_RUN = "flowc.runtime.hamilton:node"


@dataclass(frozen=True)
class FunctionNode:
    """One node of the function graph."""

    name: str
    module_index: int  # which ``functions:`` entry it came from
    module: str
    function: Any  # the originating function (for its file:line)
    deps: tuple[tuple[str, bool], ...]  # (name, required), in parameter order
    run: str  # the runtime reference
    via_hamilton: bool  # whether the runtime rebuilds Hamilton's graph to call it
    type_name: str = ""
    positional_only: tuple[str, ...] = ()
    accepts_any: bool = False  # takes **kwargs


class GraphError(Exception):
    """Hamilton refused the modules/config; ``function`` is the one it names, when known."""

    def __init__(self, message: str, function: Any = None):
        super().__init__(message)
        self.function = function


def hamilton_available() -> bool:
    """Whether apache-hamilton is importable (without importing it)."""
    try:
        return importlib.util.find_spec("hamilton") is not None
    except (ImportError, ValueError):
        return False


def where(fn: Any) -> str:
    """``path:line`` of a function's definition, or ``''``."""
    try:
        fn = inspect.unwrap(fn)
        code = fn.__code__
        path = Path(code.co_filename)
    except (AttributeError, TypeError, ValueError):
        return ""
    try:
        path = path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        pass
    return f"{path.as_posix()}:{code.co_firstlineno}"


def _line(fn: Any) -> int:
    try:
        return int(inspect.unwrap(fn).__code__.co_firstlineno)
    except (AttributeError, TypeError, ValueError):
        return 0


def signature_nodes(modules: list[tuple[int, str, ModuleType]]) -> list[FunctionNode]:
    """One node per public function, dependencies from its signature (no Hamilton)."""
    out: list[FunctionNode] = []
    for index, modname, module in modules:
        for name, fn in public_functions(module):
            try:
                sig = inspect.signature(fn)
            except (TypeError, ValueError) as e:
                raise GraphError(f"cannot read the signature of '{name}': {e}", fn) from None
            deps, posonly = [], []
            for pname, p in sig.parameters.items():
                if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                    continue
                if p.kind is p.POSITIONAL_ONLY:
                    posonly.append(pname)
                    continue
                deps.append((pname, p.default is p.empty))
            out.append(
                FunctionNode(
                    name=name,
                    module_index=index,
                    module=modname,
                    function=fn,
                    deps=tuple(deps),
                    run=f"{modname}:{name}",
                    via_hamilton=False,
                    positional_only=tuple(posonly),
                    accepts_any=any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()),
                )
            )
    return out


def public_functions(module: ModuleType) -> list[tuple[str, Any]]:
    """The functions a module defines itself (not imported ones), not ``_private``, in
    definition order."""
    out = []
    for name, obj in vars(module).items():
        if name.startswith("_") or not inspect.isfunction(obj):
            continue
        if obj.__module__ != module.__name__:
            continue
        out.append((name, obj))
    return out


def hamilton_nodes(
    modules: list[tuple[int, str, ModuleType]], config: Mapping[str, Any]
) -> list[FunctionNode]:
    """Hamilton's graph of ``modules`` under driver ``config``: every non-external node, in
    definition order (module order, then the originating function's line, then Hamilton's
    order among the nodes of one function)."""
    from hamilton import graph as hamilton_graph  # lazy: optional extra

    loaded = [m for _, _, m in modules]
    quiet = logging.getLogger("hamilton")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL + 1)  # Hamilton logs a traceback before raising
    try:
        fg = hamilton_graph.FunctionGraph.from_modules(*loaded, config=dict(config))
    except Exception as e:  # Hamilton's own validation: decorators, types, duplicates
        message = " ".join(str(e).split())
        raise GraphError(
            f"{type(e).__name__}: {message}", _named_function(message, modules)
        ) from None
    finally:
        quiet.setLevel(level)
    by_module = {m.__name__: (i, name) for i, name, m in modules}
    ranked: list[tuple[tuple[int, int, int], FunctionNode]] = []
    for order, n in enumerate(fg.nodes.values()):
        if n.user_defined:
            continue
        origins = tuple(n.originating_functions or ())
        fn = origins[0] if origins else None
        index, modname = by_module.get(getattr(fn, "__module__", ""), (0, modules[0][1]))
        module = next(m for i, _, m in modules if i == index)
        plain = fn is not None and n.callable is fn and getattr(module, n.name, None) is fn
        deps = tuple(
            (dep, str(kind.name) == "REQUIRED") for dep, (_, kind) in n.input_types.items()
        )
        node = FunctionNode(
            name=n.name,
            module_index=index,
            module=modname,
            function=fn,
            deps=deps,
            run=f"{modname}:{n.name}" if plain else NODE_RUN,
            via_hamilton=not plain,
            type_name=getattr(n.type, "__name__", str(n.type)),
        )
        ranked.append(((index, _line(fn), order), node))
    return [node for _, node in sorted(ranked, key=lambda x: x[0])]


_NAMING = (
    r"function:? '?(\w+)",  # "Missing type hint for return value in function a."
    r"^(?:Error: )?(\w+) is expecting",  # an edge whose types differ
    r"'(\w+)'",
)


def _named_function(message: str, modules: list[tuple[int, str, ModuleType]]) -> Any:
    """The public function Hamilton's message names, if any."""
    functions = {name: fn for _, _, m in modules for name, fn in public_functions(m)}
    for pattern in _NAMING:
        for found in re.findall(pattern, message):
            if found in functions:
                return functions[found]
    return None


def uses_hamilton(module: ModuleType) -> bool:
    """Whether a module refers to Hamilton at its top level (imports a decorator, a type or a
    Hamilton module): only such a module can make nodes that are not its plain functions."""
    for obj in vars(module).values():
        name = obj.__name__ if isinstance(obj, ModuleType) else getattr(obj, "__module__", None)
        if isinstance(name, str) and (name == "hamilton" or name.startswith("hamilton.")):
            return True
    return False
