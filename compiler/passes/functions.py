"""Pass 35: function modules (FlowerPower / Hamilton) -> one step per node of the function graph.

``functions: [module, ...]`` or ``functions: {modules: [...], config: {...}}`` (Hamilton's driver
config; ``environments.E.functions.config`` merges per key over it). The graph is Hamilton's own
when apache-hamilton is installed (:mod:`flowc.compiler.hamilton`): decorators such as
``@parameterize``, ``@extract_columns``, ``@config.when``, ``@check_output`` resolve as in
Hamilton's driver, and each resulting node is a step named after it, with one output named after
it. Without Hamilton, and with imports off (``validate --no-import``: a stand-in read from the
source), each public function is one node read from its signature.

The compiler **imports these modules at compile time** through :mod:`flowc.compiler.trust`
(only from the flow's project or installed packages). A node's inputs, in order
(docs/functions.md):

1. a value given in ``steps: {NODE: {with: {PARAM: ...}}}`` (FlowerPower's per-function
   params) wins;
2. an input that is another node is a data edge from it (``${steps.N.outputs.N}``);
3. an input named like a pipeline param takes it (``${params.P}``);
4. an input named like a Hamilton config key takes the config value;
5. an optional input (a default) is left out (the function's default applies);
6. anything else is a located error at the flow line, naming the function's file:line.
   ``ctx`` is the runtime context, as for any callable.

A ``steps:`` entry without ``run``/``command`` sets the other step options (retries, cache,
resources, ``when``, ``after``...) with ``defaults:`` cascaded like a hand-listed step. A
node named like a param or like a hand-listed step is an error.
"""

from __future__ import annotations

from dataclasses import replace
from types import ModuleType
from typing import Any

from flowc.compiler import hamilton, trust
from flowc.compiler.errors import FlowcError, did_you_mean
from flowc.compiler.expr import value_expr
from flowc.compiler.ir import Expr, Lit, Ref
from flowc.compiler.passes import PassContext
from flowc.compiler.passes._util import NAME_RE
from flowc.compiler.schema import FunctionsModel, StepModel

ORDER = 35
NODE_ARG = "hamilton_node"  # flowc.runtime.hamilton.NODE_ARG (the runtime is never imported)

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
        if (e.name or "").split(".")[0] == "hamilton":
            raise FlowcError.at(
                None,
                f"function module '{name}' uses Hamilton, which is not installed",
                hamilton.INSTALL_HINT,
            ) from None
        raise FlowcError.at(
            None, f"cannot import function module '{name}': {e}", IMPORT_HINT
        ) from None
    except Exception as e:  # the user's module raised while importing
        raise FlowcError.at(
            None, f"importing function module '{name}' failed: {type(e).__name__}: {e}"
        ) from None


public_functions = hamilton.public_functions


_relocate = trust.relocated


def spec(ctx: PassContext) -> tuple[list[Any], tuple[Any, ...], dict[str, Any]]:
    """The modules, the path of the module list in the flow file, and the Hamilton config (the
    flow's, then the environment's merged per key)."""
    m = ctx.model
    if isinstance(m.functions, FunctionsModel):
        modules, path, config = (
            list(m.functions.modules),
            ("functions", "modules"),
            dict(m.functions.config),
        )
    else:
        modules, path, config = list(m.functions), ("functions",), {}
    env = ctx.env_model
    if env is not None and env.functions is not None:
        config.update(env.functions.config)
    return modules, path, config


def run(ctx: PassContext) -> None:
    m = ctx.model
    if not m.functions:
        return
    modnames, mpath, config = spec(ctx)
    if not modnames:
        ctx.errors.error(ctx.loc(*mpath), "'functions' lists no module")
        return
    ctx.functions = tuple(str(x) for x in modnames)
    # 1. import every module
    loaded: list[tuple[int, str, ModuleType]] = []
    complete = True  # every module imported (else unknown names are not worth reporting)
    for i, modname in enumerate(modnames):
        loc = ctx.loc(*mpath, i)
        if not isinstance(modname, str) or not modname:
            ctx.errors.error(loc, "a function module is a dotted module name")
            complete = False
            continue
        try:
            module = import_module(modname, ctx.file)
        except FlowcError as e:
            ctx.errors.extend(_relocate(e, loc))
            complete = False
            continue
        if not public_functions(module):
            ctx.errors.error(loc, f"function module '{modname}' defines no public function")
        loaded.append((i, modname, module))
    if not loaded:
        return
    # 2. the node graph: Hamilton's when it can be built, else one node per function
    # a module that never refers to Hamilton has plain functions only, whose Hamilton graph is
    # the signature graph: Hamilton (and the pandas it imports) is loaded only when it can matter
    wants = bool(config) or any(hamilton.uses_hamilton(mod) for _, _, mod in loaded)
    use_hamilton = trust.import_allowed() and wants and hamilton.hamilton_available()
    if config and not use_hamilton and trust.import_allowed():
        ctx.errors.error(
            ctx.loc("functions"),
            "'functions.config' is Hamilton's driver config and Hamilton is not installed",
            hamilton.INSTALL_HINT,
        )
    try:
        if use_hamilton:
            nodes = hamilton.hamilton_nodes(loaded, config)
        else:
            nodes = hamilton.signature_nodes(loaded)
    except hamilton.GraphError as e:
        at = hamilton.where(e.function)
        ctx.errors.error(
            ctx.loc(*mpath, loaded[0][0]),
            f"Hamilton cannot build the graph of {', '.join(repr(n) for _, n, _ in loaded)}"
            + (f" (at {at})" if at else "")
            + f": {e}",
            "Hamilton's rules apply (a return annotation on every function, matching types on "
            "every edge, valid decorators): fix the module or the 'functions.config' it uses",
        )
        return
    funcs: dict[str, hamilton.FunctionNode] = {}
    for node in nodes:
        if node.name in funcs:
            first = funcs[node.name]
            ctx.errors.error(
                ctx.loc(*mpath, node.module_index),
                f"function '{node.name}' is defined in both '{first.module}' and "
                f"'{node.module}'",
                "step names must be unique: rename one of them",
            )
            continue
        funcs[node.name] = node

    # 3. steps: entries without run/command must name a node
    for name in ctx.function_steps:
        if name not in funcs and complete:
            hint = did_you_mean(name, funcs) or (
                "give it 'run' or 'command', or define the function in "
                + ", ".join(repr(x) for x in modnames)
            )
            ctx.errors.error(
                ctx.key_loc("steps", name),
                f"step '{name}' has no 'run' or 'command' and no function module defines "
                f"'{name}'",
                hint,
            )

    # 4. one step per node
    for node in funcs.values():
        _function_step(ctx, node, funcs, mpath, config, [n for _, n, _ in loaded])


def _function_step(
    ctx: PassContext,
    node: hamilton.FunctionNode,
    funcs: dict[str, hamilton.FunctionNode],
    mpath: tuple[Any, ...],
    config: dict[str, Any],
    modnames: list[str],
) -> None:
    m = ctx.model
    name, modname = node.name, node.module
    floc = ctx.loc(*mpath, node.module_index)
    at = hamilton.where(node.function)
    what = f"function '{name}' of '{modname}'"
    defined = f" (defined at {at})" if at else ""
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
    path: tuple[Any, ...] = ("steps", name) if user is not None else (*mpath, node.module_index)
    loc = ctx.key_loc(*path)
    if user is not None and user.outputs:
        ctx.errors.error(
            ctx.key_loc(*path, "outputs"),
            f"a function step has one output named after the function ('{name}')",
            "remove 'outputs'",
        )
    for pname in node.positional_only:
        ctx.errors.error(
            floc,
            f"parameter '{pname}' of {what} is positional-only",
            "step callables get keyword arguments: remove the '/'",
        )
    user_with = dict(user.with_) if user is not None else {}
    with_: list[tuple[str, Expr]] = []
    for pname, required in node.deps:
        if pname == "ctx":
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
        elif pname in config:
            with_.append((pname, Lit(config[pname])))
        elif not required:
            continue
        else:
            hint = did_you_mean(pname, [*funcs, *m.params]) or (
                f"add it under steps.{name}.with, declare a param '{pname}', define a function "
                f"'{pname}', or give it a default"
            )
            ctx.errors.error(
                loc,
                f"parameter '{pname}' of {what} is not a function, a param or a 'with:' "
                f"value{defined}",
                hint,
            )
    if not node.accepts_any:
        for k in user_with:
            ctx.errors.error(
                ctx.key_loc(*path, "with", k),
                f"{what} has no parameter '{k}'",
                did_you_mean(k, [d for d, _ in node.deps]),
            )
    if node.via_hamilton:
        ref = {"modules": list(modnames), "config": dict(sorted(config.items())), "node": name}
        with_.append((NODE_ARG, Lit(ref)))
    # the other options (defaults cascaded) exactly like a hand-listed step
    from flowc.compiler.passes.steps import _build

    base = user.model_copy(update={"with_": {}}) if user is not None else StepModel()
    base = base.model_copy(update={"run": node.run, "outputs": [name]})
    try:
        step = _build(ctx, name, base, path, ctx.defaults)
    except FlowcError as e:
        ctx.errors.extend(e)
        return
    ctx.steps[name] = replace(step, with_=tuple(with_), loc=loc)
    ctx.step_paths[name] = path
    # the reference pass checks ${steps.X...} against the flow's steps: make it one
    if name not in m.steps:
        m.steps[name] = StepModel.model_validate({"run": node.run, "outputs": [name]}, strict=False)
