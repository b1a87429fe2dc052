"""Pass 35: function modules (FlowerPower / Hamilton): ``functions: [module, ...]`` -> one step
per public function.

The compiler **imports these modules at compile time** to read the functions' signatures (with
the flow file's folder and the current directory on ``sys.path``, as ``flowc run`` has them),
through :mod:`flowc.compiler.trust`: only from the flow's project or installed packages, and with
imports off (``validate --no-import``) from their source's AST.
A public function is one defined in the module itself whose name does not start with ``_``;
steps come in definition order, modules in the order listed. Each step is
``run: module:function`` with a single output named after the function. Its ``with:`` comes from
the parameters, in signature order (docs/functions.md):

1. a value given in ``steps: {FUNCTION: {with: {PARAM: ...}}}`` (FlowerPower's per-function
   params) wins;
2. a parameter named like another function is a data edge from it
   (``${steps.F.outputs.F}``);
3. a parameter named like a pipeline param takes it (``${params.P}``);
4. a parameter with a default is left out (the function's default applies);
5. anything else is a located error. ``ctx`` is the runtime context, as for any callable.

A ``steps:`` entry without ``run``/``command`` sets the other step options (retries, cache,
resources, ``when``, ``after``...) with ``defaults:`` cascaded like a hand-listed step. A
function named like a param or like a hand-listed step is an error.
"""

from __future__ import annotations

import inspect
from dataclasses import replace
from types import ModuleType
from typing import Any

from flowc.compiler import trust
from flowc.compiler.errors import FlowcError, did_you_mean
from flowc.compiler.expr import value_expr
from flowc.compiler.ir import Expr, Ref
from flowc.compiler.passes import PassContext
from flowc.compiler.passes._util import NAME_RE
from flowc.compiler.schema import StepModel

ORDER = 35

IMPORT_HINT = (
    "the compiler imports function modules to read their signatures: make the module importable "
    "(installed, on PYTHONPATH, or next to the flow file)"
)


def import_module(name: str, flow_file: str) -> ModuleType:
    """Import a function module under the trust rule (:mod:`flowc.compiler.trust`; a stand-in
    read from its source when imports are off); FlowcError (without location) when it cannot
    be imported or lies outside the project."""
    try:
        return trust.import_module(name, flow_file, f"function module '{name}'")
    except FlowcError:
        raise
    except ModuleNotFoundError as e:
        raise FlowcError.at(
            None, f"cannot import function module '{name}': {e}", IMPORT_HINT
        ) from None
    except Exception as e:  # the user's module raised while importing
        raise FlowcError.at(
            None, f"importing function module '{name}' failed: {type(e).__name__}: {e}"
        ) from None


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


_relocate = trust.relocated


def run(ctx: PassContext) -> None:
    m = ctx.model
    if not m.functions:
        return
    ctx.functions = tuple(m.functions)
    # 1. collect every public function of every module
    funcs: dict[str, tuple[str, Any, int]] = {}
    complete = True  # every module imported (else unknown names are not worth reporting)
    for i, modname in enumerate(m.functions):
        loc = ctx.loc("functions", i)
        if not isinstance(modname, str) or not modname:
            ctx.errors.error(loc, "a function module is a dotted module name")
            continue
        try:
            module = import_module(modname, ctx.file)
        except FlowcError as e:
            ctx.errors.extend(_relocate(e, loc))
            complete = False
            continue
        found = public_functions(module)
        if not found:
            ctx.errors.error(loc, f"function module '{modname}' defines no public function")
        for name, fn in found:
            if name in funcs:
                ctx.errors.error(
                    loc,
                    f"function '{name}' is defined in both '{funcs[name][0]}' and '{modname}'",
                    "step names must be unique: rename one of them",
                )
                continue
            funcs[name] = (modname, fn, i)

    # 2. steps: entries without run/command must name a function
    for name in ctx.function_steps:
        if name not in funcs and complete:
            hint = did_you_mean(name, funcs) or (
                "give it 'run' or 'command', or define the function in "
                + ", ".join(repr(x) for x in m.functions)
            )
            ctx.errors.error(
                ctx.key_loc("steps", name),
                f"step '{name}' has no 'run' or 'command' and no function module defines "
                f"'{name}'",
                hint,
            )

    # 3. one step per function
    for name, (modname, fn, i) in funcs.items():
        _function_step(ctx, name, modname, fn, i, funcs)


def _function_step(
    ctx: PassContext,
    name: str,
    modname: str,
    fn: Any,
    index: int,
    funcs: dict[str, tuple[str, Any, int]],
) -> None:
    m = ctx.model
    floc = ctx.loc("functions", index)
    what = f"function '{name}' of '{modname}'"
    if not NAME_RE.match(name):
        ctx.errors.error(
            floc,
            f"{what} is not a valid step name",
            "step names are lowercase letters, digits and '_' ([a-z][a-z0-9_]*); make it private "
            "(_name) to leave it out",
        )
        return
    if name in ctx.steps or (name in m.steps and name not in ctx.function_steps):
        ctx.errors.error(
            ctx.key_loc("steps", name),
            f"step '{name}' clashes with {what}",
            "a step with 'run'/'command' cannot share a name with a function; rename one, or drop "
            "'run'/'command' to configure the function step",
        )
        return
    if name in m.params:
        ctx.errors.error(
            ctx.key_loc("params", name),
            f"param '{name}' has the same name as {what}",
            "a parameter named like it would be ambiguous (param or data edge): rename one",
        )
        return
    user = ctx.function_steps.get(name)
    path: tuple[Any, ...] = ("steps", name) if user is not None else ("functions", index)
    loc = ctx.key_loc(*path)
    if user is not None and user.outputs:
        ctx.errors.error(
            ctx.key_loc(*path, "outputs"),
            f"a function step has one output named after the function ('{name}')",
            "remove 'outputs'",
        )
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError) as e:
        ctx.errors.error(floc, f"cannot read the signature of {what}: {e}")
        return
    user_with = dict(user.with_) if user is not None else {}
    with_: list[tuple[str, Expr]] = []
    accepts_any = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    for pname, p in sig.parameters.items():
        if pname == "ctx" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.kind is p.POSITIONAL_ONLY:
            ctx.errors.error(
                floc,
                f"parameter '{pname}' of {what} is positional-only",
                "step callables get keyword arguments: remove the '/'",
            )
            continue
        if pname in user_with:
            wpath = (*path, "with", pname)
            try:
                with_.append((pname, value_expr(user_with.pop(pname), ctx.locate, wpath)))
            except FlowcError as e:
                ctx.errors.extend(e)
        elif pname in funcs and pname != name:
            with_.append((pname, Ref("steps", (pname, "outputs", pname), loc=loc)))
        elif pname in m.params:
            with_.append((pname, Ref("params", (pname,), loc=loc)))
        elif p.default is not p.empty:
            continue
        else:
            hint = did_you_mean(pname, [*funcs, *m.params]) or (
                f"add it under steps.{name}.with, declare a param '{pname}', define a function "
                f"'{pname}', or give it a default"
            )
            ctx.errors.error(
                loc,
                f"parameter '{pname}' of {what} is not a function, a param or a 'with:' value",
                hint,
            )
    if not accepts_any:
        for k in user_with:
            ctx.errors.error(
                ctx.key_loc(*path, "with", k),
                f"{what} has no parameter '{k}'",
                did_you_mean(k, list(sig.parameters)),
            )
    # the other options (defaults cascaded) exactly like a hand-listed step
    from flowc.compiler.passes.steps import _build

    base = user.model_copy(update={"with_": {}}) if user is not None else StepModel()
    base = base.model_copy(update={"run": f"{modname}:{name}", "outputs": [name]})
    try:
        step = _build(ctx, name, base, path, ctx.defaults)
    except FlowcError as e:
        ctx.errors.extend(e)
        return
    ctx.steps[name] = replace(step, with_=tuple(with_), loc=loc)
    ctx.step_paths[name] = path
    # the reference pass checks ${steps.X...} against the flow's steps: make it one
    if name not in m.steps:
        m.steps[name] = StepModel.model_validate(
            {"run": f"{modname}:{name}", "outputs": [name]}, strict=False
        )
