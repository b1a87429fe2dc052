"""Output types from the step callables' return annotations -> ``Step.output_types``.

A target that can carry typed values (KFP: NUMBER_INTEGER, NUMBER_DOUBLE, STRING, BOOLEAN, LIST,
STRUCT output parameters) reads them from the IR. The annotation is read from the module's
*source* with :mod:`ast`; nothing is imported or executed: the module file is looked up on the
path the runtime would import it from (the flow file's folder, the current directory, then
``sys.path``), or taken from an already imported module's ``__file__``.

What counts (anything else leaves the output untyped, carried as JSON as before):

- one output: ``-> int``, ``-> float``, ``-> str``, ``-> bool``, ``-> list``/``list[...]``/
  ``typing.List[...]``, ``-> dict``/``dict[...]``/``typing.Dict[...]`` (also as a string);
- several outputs: ``-> R`` with ``class R(TypedDict)`` in the same module, a field per output;
- only a plain top-level ``def`` (a decorator may change what is returned), never a union,
  ``Optional`` or ``None`` (a value KFP cannot type);
- only ``run:`` steps outside ``foreach``/``replicas`` (their outputs are collected as lists).

Outputs annotated as a value that is not JSON (``DataFrame``, ``Series``, ``ndarray``,
``Tensor``, ``bytes``: :data:`NON_JSON`) go to ``Step.non_json_outputs`` instead, with what
they are: a target whose values cross as JSON refuses them (``Capabilities.non_json_values``).

A module whose source is not found where it would be imported from leaves its outputs untyped:
compile where the step code is (as ``flowc run`` needs it), or the KFP spec differs.
"""

from __future__ import annotations

import ast
import dataclasses
import os
import sys
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flowc.compiler.ir import Step
    from flowc.compiler.passes import PassContext

ORDER = 85
NEEDS_CLEAN = True

_NAMES = {
    "int": "int",
    "float": "float",
    "str": "str",
    "bool": "bool",
    "list": "list",
    "List": "list",
    "dict": "dict",
    "Dict": "dict",
}
_GENERIC = {"list": "list", "List": "list", "dict": "dict", "Dict": "dict"}
NON_JSON = {
    "DataFrame": "a DataFrame",
    "Series": "a Series",
    "ndarray": "a numpy array",
    "Tensor": "a tensor",
    "bytes": "bytes",
    "bytearray": "bytes",
}
"""Return annotations (their last name) of values that are not JSON: they cross step boundaries
pickled in the artifact store (``flowc run``, the k8s target) or through Airflow's XCom serde;
a target whose values are JSON parameters (KFP, Vertex) refuses them at compile time."""


def run(ctx: PassContext) -> None:
    roots = (os.path.dirname(os.path.abspath(ctx.file)), os.getcwd(), *sys.path)
    files: dict[str, str | None] = {}  # module -> its source file (looked up once)
    for name, step in list(ctx.steps.items()):
        types = step_output_types(step, roots, files)
        opaque = tuple((o, t) for o, t in types if t in NON_JSON.values())
        types = tuple((o, t) for o, t in types if t not in NON_JSON.values())
        if types or opaque:
            ctx.steps[name] = dataclasses.replace(step, output_types=types, non_json_outputs=opaque)


def step_output_types(
    step: Step, roots: tuple[str, ...], files: dict[str, str | None] | None = None
) -> tuple[tuple[str, str], ...]:
    """``((output, type), ...)`` for the outputs of ``step`` whose type its callable declares
    (``files``: a cache of :func:`module_file` results)."""
    if (
        step.kind != "run"
        or not step.outputs
        or not step.run
        or step.is_integration
        or step.foreach is not None
        or step.replicas > 1
    ):
        return ()
    module, sep, attr = step.run.partition(":")
    if not sep or "." in attr:
        return ()
    files = {} if files is None else files
    if module not in files:
        files[module] = module_file(module, roots)
    path = files[module]
    if path is None:
        return ()
    found = _annotations(path).get(attr)
    if found is None:
        return ()
    single, fields = found
    if len(step.outputs) == 1:
        return ((step.outputs[0], single),) if single else ()
    return tuple((o, fields[o]) for o in step.outputs if o in fields)


def module_file(module: str, roots: tuple[str, ...]) -> str | None:
    """The source file of ``module`` without importing it (or its packages), else None."""
    loaded = sys.modules.get(module)
    if loaded is not None:
        file = getattr(loaded, "__file__", None)
        return file if file and file.endswith(".py") else None
    parts = module.split(".")
    if not all(p.isidentifier() for p in parts):
        return None
    for root in roots:
        base = os.path.join(root or ".", *parts)
        for candidate in (base + ".py", os.path.join(base, "__init__.py")):
            if os.path.isfile(candidate):
                return candidate
    return None


@lru_cache(maxsize=256)
def _annotations_cached(path: str, mtime_ns: int) -> dict[str, tuple[str | None, dict[str, str]]]:
    try:
        with open(path, "rb") as fh:
            tree = ast.parse(fh.read(), filename=path)
    except (OSError, SyntaxError, ValueError):
        return {}
    typed_dicts: dict[str, dict[str, str]] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and any(_last(b) == "TypedDict" for b in node.bases):
            fields = {}
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    kind = _type_of(item.annotation)
                    if kind:
                        fields[item.target.id] = kind
            typed_dicts[node.name] = fields
    out: dict[str, tuple[str | None, dict[str, str]]] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if (
                node.decorator_list
                or node.returns is None
                or isinstance(node, ast.AsyncFunctionDef)
            ):
                out.pop(node.name, None)
                continue
            returns = _unquote(node.returns)
            fields = typed_dicts.get(_last(returns) or "", {})
            out[node.name] = (_type_of(returns), fields)
        elif isinstance(
            node, (ast.Assign, ast.AnnAssign, ast.ClassDef, ast.Import, ast.ImportFrom)
        ):
            for name in _bound_names(node):  # a later binding replaces the def
                out.pop(name, None)
    return out


def _annotations(path: str) -> dict[str, tuple[str | None, dict[str, str]]]:
    """``{function: (type of its return, {TypedDict field: type})}`` of a module's source."""
    try:
        mtime = os.stat(path).st_mtime_ns
    except OSError:
        return {}
    return _annotations_cached(path, mtime)


def _bound_names(node: ast.stmt) -> list[str]:
    if isinstance(node, ast.ClassDef):
        return [node.name]
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return [(a.asname or a.name).split(".")[0] for a in node.names]
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    return [t.id for t in targets if isinstance(t, ast.Name)]


def _unquote(node: ast.expr) -> ast.expr:
    """A string annotation (``-> "int"``) as the expression it holds."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        try:
            return ast.parse(node.value, mode="eval").body
        except SyntaxError:
            return node
    return node


def _last(node: ast.expr) -> str | None:
    """``x`` of ``x`` / ``typing.x``."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _type_of(node: ast.expr) -> str | None:
    node = _unquote(node)
    if isinstance(node, ast.Subscript):
        last = _last(node.value) or ""
        return _GENERIC.get(last) or NON_JSON.get(last)  # npt.NDArray[...] is not counted
    last = _last(node) or ""
    return _NAMES.get(last) or NON_JSON.get(last)
