"""Pass 57: static checks of the integration framework (lolpop), after pass 55 built it.

* a layer nested inside itself (``pipeline > component > pipeline``): a cycle, printed as a path
  (sibling passing follows the written order, so it cannot cycle by itself);
* a top-level section with integrations for a layer that is neither the root nor a child of the
  root (its integrations belong inside the integration that owns them);
* the root layer holding more than one integration;
* classes: imported at compile time when their module is importable here (the flow file's folder
  and the current directory on ``sys.path``; through :mod:`flowc.compiler.trust`: only from the
  project or installed packages, read from the source with imports off); a class missing from every importable place is an
  error listing the places tried. Nothing importable at all is not an error: the code may exist
  only in the image;
* ``run: "integration:OBJ.METHOD"`` steps: the framework exists, ``OBJ`` is wired (the tree is
  built with placeholder classes by the runtime's own builder, so the attributes are exactly the
  ones lolpop's rules give at run time) and, when its class was imported, it has ``METHOD``
  and the step's ``with:`` fits the method's parameters.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from flowc.compiler import trust
from flowc.compiler.errors import FlowcError, Loc, did_you_mean
from flowc.compiler.ir import FrameworkNode, Integration, IntegrationFramework, Layer
from flowc.compiler.passes import PassContext

if TYPE_CHECKING:
    from flowc.runtime.integrations import IntegrationTree

ORDER = 57


def run(ctx: PassContext) -> None:
    fw = ctx.integrations
    steps = [s for s in ctx.steps.values() if s.is_integration]
    if fw is None:
        for s in steps:
            ctx.errors.error(
                _run_loc(ctx, s.name),
                f"step '{s.name}' runs '{s.run}' but the flow declares no integration framework",
                "add layer sections (runner:, pipeline:, component:) or integration_framework:",
            )
        return
    before = len(ctx.errors.diagnostics)
    _cycles(ctx, fw.root, (), ("integration_framework", fw.root.layer))
    _placement(ctx, fw)
    classes: dict[tuple[str, str, tuple[str, ...]], type | None] = {}
    with trust.import_path(ctx.file):
        for layer in fw.layers:
            _check_classes(ctx, fw, layer, classes)
    if len(ctx.errors.diagnostics) == before:
        _check_steps(ctx, fw, steps, classes)


def _run_loc(ctx: PassContext, step: str) -> Loc:
    path = ctx.step_paths.get(step, ("steps", step))
    return ctx.loc(*path, "run")


def _cycles(
    ctx: PassContext, node: FrameworkNode, ancestors: tuple[str, ...], path: tuple[Any, ...]
) -> None:
    chain = (*ancestors, node.layer)
    if node.layer in ancestors:
        ctx.errors.error(
            ctx.key_loc(*path),
            f"layer '{node.layer}' is nested inside itself: {' > '.join(chain)}",
            "a layer cannot be its own descendant; give the inner one another name",
        )
        return
    for c in node.children:
        _cycles(ctx, c, chain, (*path, c.layer))


def _placement(ctx: PassContext, fw: IntegrationFramework) -> None:
    root = fw.root.layer
    top = {c.layer for c in fw.root.children}
    parents: dict[str, str] = {}

    def walk(n: FrameworkNode) -> None:
        for c in n.children:
            parents.setdefault(c.layer, n.layer)
            walk(c)

    walk(fw.root)
    for layer in fw.layers:
        if layer.name == root:
            if len(layer.integrations) > 1:
                extra = layer.integrations[1]
                ctx.errors.error(
                    extra.loc or layer.loc,
                    f"the root layer '{root}' holds one integration (the root object), found "
                    f"{len(layer.integrations)}: {', '.join(i.key for i in layer.integrations)}",
                    f"move the others to a layer below '{root}'",
                )
            continue
        if layer.name not in top and layer.integrations:
            owner = parents.get(layer.name, root)
            ctx.errors.error(
                layer.loc,
                f"layer section '{layer.name}' declares integrations, but '{layer.name}' is not a "
                f"child of the root layer '{root}'",
                f"declare them inside the integration that owns them: {owner}: {{KEY: {{class: "
                f"..., {layer.name}: {{...}}}}}}",
            )


def _import(ctx: PassContext, module: str, loc: Loc | None) -> Any:
    """The module, None when it is not importable here, or False after reporting an error."""
    try:
        return trust.import_module(module, ctx.file, f"integration module '{module}'")
    except FlowcError as e:  # outside the project (trust rule), or unreadable source
        ctx.errors.extend(trust.relocated(e, loc))
        return False
    except ModuleNotFoundError:
        return None  # the module (or a dependency of it) is not here: it may be in the image
    except Exception as e:
        ctx.errors.error(loc, f"importing '{module}' failed: {type(e).__name__}: {e}")
        return False


def _check_classes(
    ctx: PassContext,
    fw: IntegrationFramework,
    layer: Layer,
    classes: dict[tuple[str, str, tuple[str, ...]], type | None],
) -> None:
    from flowc.runtime import integrations as rt  # only flows with integrations need it

    top = fw.layer(layer.name)
    paths = rt.search_path_order(
        layer.search_paths, top.search_paths if top else (), fw.search_paths
    )
    for integ in layer.integrations:
        classes[(integ.class_ref, layer.name, paths)] = _find_class(ctx, integ, layer.name, paths)
        for sub in integ.layers:
            _check_classes(ctx, fw, sub, classes)


def _find_class(
    ctx: PassContext, integ: Integration, layer: str, paths: Sequence[str]
) -> type | None:
    from flowc.runtime import integrations as rt

    where = f"'{layer}.{integ.key}'"
    tried = rt.candidate_modules(integ.class_ref, layer, paths)
    if not tried:
        ctx.errors.error(
            integ.loc,
            f"class '{integ.class_ref}' of {where} is a bare name but no search_paths are set",
            "write module:Class, or add search_paths (global, or in the layer section)",
        )
        return None
    importable = False
    for module, attr in tried:
        mod = _import(ctx, module, integ.loc)
        if mod is False:
            return None
        if mod is None:
            continue
        importable = True
        obj: Any = mod
        try:
            for part in attr.split("."):
                obj = getattr(obj, part)
        except AttributeError:
            continue
        if not inspect.isclass(obj):
            ctx.errors.error(integ.loc, f"'{module}:{attr}' of {where} is not a class")
            return None
        return obj
    if importable:
        names = ", ".join(f"{m}:{a}" for m, a in tried)
        ctx.errors.error(
            integ.loc,
            f"class '{integ.class_ref}' of {where} not found; tried: {names}",
            "check the class name, or add the module that defines it to search_paths",
        )
    return None


def _check_steps(
    ctx: PassContext,
    fw: IntegrationFramework,
    steps: Sequence[Any],
    classes: dict[tuple[str, str, tuple[str, ...]], type | None],
) -> None:
    if not steps:
        return
    from flowc.runtime import integrations as rt

    def loader(ref: str, layer: str, paths: Sequence[str]) -> type:
        real = classes.get((ref, layer, tuple(paths)))
        return type("Placeholder", (), {"_flowc_real": real, "_flowc_ref": ref})

    try:
        tree = rt.build(fw.to_data(), loader)
    except rt.IntegrationError:
        return  # reported by the checks above
    assert tree is not None
    for s in steps:
        ref = s.run.removeprefix("integration:")
        loc = _run_loc(ctx, s.name)
        owner, _, method = ref.rpartition(".")
        if not owner:
            ctx.errors.error(
                loc,
                f"'{s.run}' names no method",
                "write integration:OBJECT.METHOD, e.g. integration:train.fit",
            )
            continue
        obj = _walk(ctx, tree, s, owner, loc)
        if obj is None:
            continue
        real = getattr(type(obj), "_flowc_real", None)
        if real is None or method in vars(obj):
            continue  # class not importable here, or the name is a wired integration
        if not callable(getattr(real, method, None)) or method.startswith("_"):
            public = [n for n in dir(real) if not n.startswith("_") and callable(getattr(real, n))]
            ctx.errors.error(
                loc,
                f"step '{s.name}': integration '{owner}' ({real.__module__}.{real.__qualname__}) "
                f"has no method '{method}'",
                did_you_mean(method, public) or f"its methods: {', '.join(public) or 'none'}",
            )
            continue
        _check_arguments(ctx, s, f"{owner}.{method}", getattr(real, method))


def _check_arguments(ctx: PassContext, s: Any, what: str, fn: Any) -> None:
    """The step's ``with:`` against the method's signature (``self``/``ctx`` excluded)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    params = list(sig.parameters.values())
    if params and params[0].name == "self" and inspect.isfunction(fn):
        params = params[1:]
    given = [k for k, _ in s.with_]
    path = ctx.step_paths.get(s.name, ("steps", s.name))
    if not any(p.kind is p.VAR_KEYWORD for p in params):
        accepted = {p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.POSITIONAL_ONLY)}
        for k in given:
            if k not in accepted:
                ctx.errors.error(
                    ctx.key_loc(*path, "with", k),
                    f"step '{s.name}': method '{what}' has no parameter '{k}'",
                    did_you_mean(k, accepted) or f"its parameters: {', '.join(accepted) or 'none'}",
                )
    for p in params:
        if p.name == "ctx" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.default is p.empty and p.name not in given:
            ctx.errors.error(
                _run_loc(ctx, s.name),
                f"step '{s.name}': parameter '{p.name}' of method '{what}' has no value",
                f"add it under steps.{s.name}.with",
            )


def _walk(ctx: PassContext, tree: IntegrationTree, s: Any, owner: str, loc: Loc) -> Any:
    """Follow ``owner`` through the wired placeholder tree; report where it breaks."""
    parts = owner.split(".")
    obj: Any = tree.root
    if tree.root_key is not None and parts[0] == tree.root_key:
        parts = parts[1:]
    for i, part in enumerate(parts):
        attrs = sorted(k for k in vars(obj) if not k.startswith("_"))
        if i == 0 and tree.root_key is not None:
            attrs.append(tree.root_key)
        if part.startswith("_") or part not in vars(obj):
            where = "'" + ".".join(parts[:i]) + "'" if i else "the root integration"
            ctx.errors.error(
                loc,
                f"step '{s.name}': '{s.run}': {where} has no integration '{part}'",
                did_you_mean(part, attrs) or f"integrations there: {', '.join(attrs) or 'none'}",
            )
            return None
        obj = vars(obj)[part]
    return obj
