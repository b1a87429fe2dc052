"""The trust rule for user code at validate/compile time, and the one place that applies it.

A flow names Python code: ``functions:`` modules, operator classes (``run: module:Class``),
integration classes, ``components:`` classes (``module:Class`` or ``path/file.py:Class``).
The compiler reads that code to check signatures. The rule (docs/trust.md):

- code is taken only from the flow's **project** -- its repository root, the nearest folder
  above the flow holding ``.git`` or ``pyproject.toml``, or the flow's own folder when there is
  none -- or from **installed** code: the interpreter's own ``sys.path`` (stdlib,
  site-packages, ``PYTHONPATH``), not the folders flowc adds while importing (the flow's folder
  and the current directory). A reference resolving anywhere else (``../elsewhere/evil.py:X``,
  an absolute path, a module found only through the current directory outside the project) is
  an error, reported before anything is executed;
- modules are located without executing anything (:func:`locate_module` asks the import
  finders for specs, parents included, and never imports a parent package);
- with imports off (``flowc validate --no-import``, :func:`no_imports`), nothing is imported:
  :func:`import_module` returns a stand-in module built from the source's AST (functions and
  classes with their signatures, an operator class's constructor parameters), so the passes run
  their checks unchanged on it.
"""

from __future__ import annotations

import ast
import contextlib
import contextvars
import importlib
import importlib.machinery
import inspect
import os
import sys
import types
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from flowc.compiler.errors import FlowcError, Loc

__all__ = [
    "check_file",
    "import_allowed",
    "import_module",
    "import_path",
    "locate_module",
    "no_imports",
    "project_root",
    "relocated",
    "static_module",
]

#: A referenced module's source larger than this is not parsed by ``--no-import``.
MAX_SOURCE_BYTES = 4 * 1024 * 1024

_IMPORTS: contextvars.ContextVar[bool] = contextvars.ContextVar("flowc_imports", default=True)
_ADDED: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar(
    "flowc_added_paths", default=()
)

TRUST_HINT = (
    "flowc imports code only from the flow's project (the folder holding .git or pyproject.toml "
    "above the flow, else the flow's folder) and installed packages: move the code into the "
    "project or install it"
)


@contextlib.contextmanager
def no_imports(active: bool = True) -> Iterator[None]:
    """Inside, :func:`import_module` executes nothing (static stand-ins from the AST)."""
    token = _IMPORTS.set(not active and _IMPORTS.get())
    try:
        yield
    finally:
        _IMPORTS.reset(token)


def import_allowed() -> bool:
    """False inside :func:`no_imports`."""
    return _IMPORTS.get()


def project_root(flow_file: str) -> Path:
    """The flow's project: the nearest folder at or above the flow's folder holding ``.git``
    or ``pyproject.toml``; the flow's folder when there is none."""
    folder = Path(os.path.abspath(flow_file)).parent
    for cand in (folder, *folder.parents):
        if (cand / ".git").exists() or (cand / "pyproject.toml").is_file():
            return cand.resolve()
    return folder.resolve()


@contextlib.contextmanager
def import_path(flow_file: str) -> Iterator[None]:
    """The flow file's folder and the current directory on ``sys.path`` while importing (as
    ``flowc run`` has them); code found through them must still be inside the project."""
    extra = [os.path.dirname(os.path.abspath(flow_file)), os.getcwd()]
    added = [p for p in extra if p not in sys.path]
    sys.path[:0] = added
    token = _ADDED.set(_ADDED.get() + tuple(extra))
    try:
        yield
    finally:
        _ADDED.reset(token)
        for p in added:
            with contextlib.suppress(ValueError):
                sys.path.remove(p)


def relocated(err: FlowcError, loc: Loc | None) -> FlowcError:
    """``err`` with ``loc`` on every diagnostic that has none."""
    return FlowcError([replace(d, loc=d.loc or loc) for d in err.diagnostics])


def _installed_roots() -> list[Path]:
    """The interpreter's own import folders: ``sys.path`` without the current directory and
    the folders :func:`import_path` added."""
    skip = {"", os.getcwd(), *_ADDED.get()}
    out = []
    for entry in sys.path:
        if entry in skip or not isinstance(entry, str):
            continue
        with contextlib.suppress(OSError):
            out.append(Path(entry).resolve())
    return out


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _trusted(origin: Path, flow_file: str) -> bool:
    if _inside(origin, project_root(flow_file)):
        return True
    return any(_inside(origin, root) for root in _installed_roots())


def check_file(target: str, flow_file: str, what: str) -> Path:
    """The file ``target`` (relative to the flow's folder) resolved; FlowcError (no location)
    when it lies outside the project."""
    path = Path(target)
    if not path.is_absolute():
        path = Path(os.path.abspath(flow_file)).parent / path
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError) as e:
        raise FlowcError.at(None, f"{what}: cannot resolve {target}: {e}") from None
    root = project_root(flow_file)
    if not _inside(resolved, root):
        raise FlowcError.at(
            None,
            f"{what}: '{target}' is outside the flow's project ({root})",
            TRUST_HINT,
        )
    return resolved


def _find_spec(name: str, path: list[str] | None) -> importlib.machinery.ModuleSpec | None:
    for finder in sys.meta_path:
        find = getattr(finder, "find_spec", None)
        if find is None:
            continue
        spec = find(name, path)
        if spec is not None:
            return spec
    return None


def locate_module(name: str, flow_file: str, what: str) -> Path | None:
    """Where module ``name`` (and each parent package) would be loaded from, found without
    executing any of it; None when it is not found, or is built in. FlowcError (no location)
    when it (or a parent) would come from outside the project and installed packages."""
    return _locate(name, flow_file, what)[0]


def _locate(name: str, flow_file: str, what: str) -> tuple[Path | None, str | None]:
    """``(origin, None)``, or ``(None, the first dotted prefix not found)``."""
    origin: Path | None = None
    path: list[str] | None = None
    parts = name.split(".")
    with import_path(flow_file):
        for i in range(len(parts)):
            full = ".".join(parts[: i + 1])
            mod = sys.modules.get(full)
            spec = getattr(mod, "__spec__", None) if mod is not None else None
            if spec is None:
                try:
                    spec = _find_spec(full, path)
                except (ImportError, ValueError, AttributeError):
                    spec = None
            if spec is None:
                return None, full
            if spec.has_location and spec.origin:
                origin = Path(spec.origin).resolve()
                if not _trusted(origin, flow_file):
                    raise FlowcError.at(
                        None,
                        f"{what}: module '{full}' would be imported from {origin}, outside the "
                        f"flow's project ({project_root(flow_file)})",
                        TRUST_HINT,
                    )
            else:
                origin = None
            locations = spec.submodule_search_locations
            path = list(locations) if locations is not None else []
    return origin, None


def import_module(name: str, flow_file: str, what: str) -> types.ModuleType:
    """Module ``name`` for the flow ``flow_file`` under the trust rule: located first (an
    untrusted place is a FlowcError without location), then imported with the flow's folder on
    the path -- or, inside :func:`no_imports`, a stand-in built from its source (never
    executed). A module that is not found raises ModuleNotFoundError as an import would."""
    origin, missing = _locate(name, flow_file, what)
    if import_allowed():
        with import_path(flow_file):
            return importlib.import_module(name)
    if name in sys.modules:  # already loaded by this process (flowc itself, stdlib)
        return sys.modules[name]
    if missing is not None:
        raise ModuleNotFoundError(f"No module named '{missing}'", name=missing)
    if origin is None:  # built in, frozen or a namespace package: nothing to read
        return _opaque_module(name)
    if origin.suffix != ".py":  # compiled extension or bytecode only: nothing to read
        return _opaque_module(name)
    return static_module(origin, name, what)


# -- stand-ins built from source -------------------------------------------------------------


class _OpenMeta(type):
    """Classes whose bases are unknown statically: any attribute may exist (checks relax)."""

    def __getattr__(cls, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _open_function(name, cls.__module__)


def _stub(name: str, module: str, sig: inspect.Signature, qualname: str | None = None) -> Any:
    def stub(*args: Any, **kwargs: Any) -> None:  # pragma: no cover - never called
        raise RuntimeError("a static stand-in is never called")

    stub.__name__ = name
    stub.__qualname__ = qualname or name
    stub.__module__ = module
    stub.__signature__ = sig  # type: ignore[attr-defined]
    return stub


def _open_signature(self: bool = False) -> inspect.Signature:
    P = inspect.Parameter
    params = [P("self", P.POSITIONAL_OR_KEYWORD)] if self else []
    params += [P("args", P.VAR_POSITIONAL), P("kwargs", P.VAR_KEYWORD)]
    return inspect.Signature(params)


def _open_function(name: str, module: str) -> Any:
    return _stub(name, module, _open_signature(self=True))


class _Default:
    """A default value the AST does not spell as a literal."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _default(node: ast.expr) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return _Default(ast.unparse(node))


def _signature(args: ast.arguments) -> inspect.Signature:
    P = inspect.Parameter
    params: list[inspect.Parameter] = []

    def ann(a: ast.arg) -> Any:
        return ast.unparse(a.annotation) if a.annotation is not None else P.empty

    positional = [*args.posonlyargs, *args.args]
    defaults = [P.empty] * (len(positional) - len(args.defaults)) + [
        _default(d) for d in args.defaults
    ]
    for i, (a, d) in enumerate(zip(positional, defaults, strict=True)):
        kind = P.POSITIONAL_ONLY if i < len(args.posonlyargs) else P.POSITIONAL_OR_KEYWORD
        params.append(P(a.arg, kind, default=d, annotation=ann(a)))
    if args.vararg is not None:
        params.append(P(args.vararg.arg, P.VAR_POSITIONAL, annotation=ann(args.vararg)))
    for a, kd in zip(args.kwonlyargs, args.kw_defaults, strict=True):
        d = P.empty if kd is None else _default(kd)
        params.append(P(a.arg, P.KEYWORD_ONLY, default=d, annotation=ann(a)))
    if args.kwarg is not None:
        params.append(P(args.kwarg.arg, P.VAR_KEYWORD, annotation=ann(args.kwarg)))
    try:
        return inspect.Signature(params)
    except ValueError:  # e.g. a duplicate name: the source would not compile either
        return _open_signature()


def _class(node: ast.ClassDef, module: str, prefix: str = "") -> type:
    qualname = f"{prefix}{node.name}"
    body: dict[str, Any] = {"__module__": module, "__qualname__": qualname}
    for item in node.body:
        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
            body[item.name] = _stub(
                item.name, module, _signature(item.args), f"{qualname}.{item.name}"
            )
        elif isinstance(item, ast.ClassDef):
            body[item.name] = _class(item, module, f"{qualname}.")
    known_bases = all(isinstance(b, ast.Name) and b.id == "object" for b in node.bases)
    open_bases = not known_bases or bool(node.keywords)
    if "__init__" not in body and open_bases:
        body["__init__"] = _stub("__init__", module, _open_signature(self=True))
    meta = _OpenMeta if open_bases else type
    return meta(node.name, (), body)


def _opaque_module(name: str) -> types.ModuleType:
    mod = types.ModuleType(name)

    def __getattr__(attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _OpenMeta(attr, (), {"__module__": f"{name}.<unknown>"})

    mod.__getattr__ = __getattr__  # type: ignore[attr-defined]
    return mod


def _top_level(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """The module's statements, with those of top-level ``if``/``try``/``with`` blocks (a
    function defined in either branch may exist; the last definition wins, as on import)."""
    for node in body:
        if isinstance(node, ast.If):
            yield from _top_level(node.body)
            yield from _top_level(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, *(h.body for h in node.handlers), node.orelse):
                yield from _top_level(block)
            yield from _top_level(node.finalbody)
        elif isinstance(node, ast.With):
            yield from _top_level(node.body)
        else:
            yield node


def static_module(path: Path, name: str, what: str) -> types.ModuleType:
    """A stand-in for module ``name`` read from ``path`` without executing it: its top-level
    functions (with signatures) and classes (methods, nested classes), also inside top-level
    ``if``/``try``/``with`` blocks; a name bound any other way (import, assignment) is an open
    class that relaxes every check."""
    try:
        size = path.stat().st_size
        if size > MAX_SOURCE_BYTES:
            raise FlowcError.at(
                None, f"{what}: {path} is larger than {MAX_SOURCE_BYTES} bytes; not read"
            )
        source = path.read_bytes()
    except OSError as e:
        raise FlowcError.at(None, f"{what}: cannot read {path}: {e.strerror or e}") from None
    try:
        tree = ast.parse(source, filename=str(path))
    except (SyntaxError, ValueError, RecursionError, MemoryError) as e:
        where = f" (line {e.lineno})" if isinstance(e, SyntaxError) and e.lineno else ""
        raise FlowcError.at(None, f"{what}: cannot parse {path}{where}: {e}") from None
    mod = types.ModuleType(name)
    mod.__file__ = str(path)
    other: set[str] = set()
    star = False
    for node in _top_level(tree.body):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            setattr(mod, node.name, _stub(node.name, name, _signature(node.args)))
        elif isinstance(node, ast.ClassDef):
            setattr(mod, node.name, _class(node, name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                if alias.name == "*":
                    star = True
                else:
                    other.add(alias.asname or alias.name.split(".")[0])
        else:
            for sub in ast.walk(node):
                if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
                    other.add(sub.id)

    def __getattr__(attr: str) -> Any:
        if attr.startswith("__") or not (star or attr in other):
            raise AttributeError(attr)
        return _OpenMeta(attr, (), {"__module__": f"{name}.<unknown>"})

    mod.__getattr__ = __getattr__  # type: ignore[attr-defined]
    return mod
