"""Pass 30: steps with ``defaults`` cascaded in (``resources``/``env`` merged per key, the step
wins), names and shapes checked, durations converted, every expression parsed (``${env.X}`` in
``image`` resolved here, before the stack's registry prefixes it). Steps of a flow
with ``functions:`` that have neither ``run`` nor ``command`` are set aside in
``ctx.function_steps`` for the function-modules pass.

Control flow (docs/control-flow.md): groups (a step with ``steps:``) and ``uses:`` sub-flows
(loaded relative to the including file, validated with positions in their own file, refused
when missing or recursive) are flattened here into qualified step names (``group.member``) and
registered in ``ctx.groups``; ``finally:`` steps and flow ``outputs:`` are parsed; trigger,
skip_on_exit_code, retry_backoff/retry_max_delay and a foreach mapping (a matrix) are checked.
A foreach inside a foreach group is refused."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flowc.compiler.errors import FlowcError, did_you_mean
from flowc.compiler.expr import parse_condition, parse_template, value_expr
from flowc.compiler.ir import TRIGGERS, Expr, Lit, Resources, Step
from flowc.compiler.loader import Doc
from flowc.compiler.passes import GroupBuild, PassContext
from flowc.compiler.passes._util import IDENT_RE, check_name, duration, resolve_config
from flowc.compiler.schema import DefaultsModel, StepModel

ORDER = 30

RUN_RE = re.compile(r"[^\s:]+:[A-Za-z_][A-Za-z0-9_.]*\Z")


def _str_scalar(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v)


def run(ctx: PassContext) -> None:
    has_functions = bool(ctx.model.functions)
    _walk(ctx, ctx.model.steps, ctx.doc, ("steps",), None, ctx.defaults, has_functions, ())
    for name, m in ctx.model.finally_.items():
        path = ("finally", name)
        loc = ctx.key_loc(*path)
        if name in ctx.model.steps:
            ctx.errors.error(
                loc, f"finally step '{name}' has the name of a step", "give it another name"
            )
            continue
        if m.steps is not None or m.uses is not None:
            ctx.errors.error(
                loc, f"finally step '{name}' cannot be a group", "finally steps are plain steps"
            )
            continue
        if m.foreach is not None:
            ctx.errors.error(
                ctx.loc(*path, "foreach"),
                f"finally step '{name}' cannot have 'foreach'",
                "a finally step runs once per run",
            )
        _one_step(ctx, name, m, path, None, ctx.defaults, False, ctx.doc, finally_=True)
    for k, v in ctx.model.outputs.items():
        if not IDENT_RE.match(k):
            ctx.errors.error(ctx.key_loc("outputs", k), f"invalid flow output name '{k}'")
            continue
        try:
            ctx.flow_outputs.append((k, _expr(ctx, v, ("outputs", k))))
        except FlowcError as e:
            ctx.errors.extend(e)


def _walk(
    ctx: PassContext,
    models: dict[str, StepModel],
    doc: Doc,
    base: tuple[Any, ...],
    group: str | None,
    defaults: DefaultsModel,
    has_functions: bool,
    uses_chain: tuple[str, ...],
    in_foreach: bool = False,
) -> None:
    """Build the steps of one level (the flow's, a group's or a sub-flow's) into ``ctx.steps``
    with qualified names, registering groups (parents before children) in ``ctx.groups``."""
    for name, m in models.items():
        path = (*base, name)
        qual = f"{group}.{name}" if group else name
        with _in_doc(ctx, doc):
            loc = ctx.key_loc(*path)
            if not check_name(ctx, name, "step", loc):
                continue
            if m.steps is None and m.uses is None:
                if in_foreach and m.foreach is not None:
                    ctx.errors.error(
                        ctx.loc(*path, "foreach"),
                        f"step '{qual}' has 'foreach' inside foreach group '{group}'",
                        "a foreach inside a foreach group is not supported on any target; "
                        "iterate a matrix (foreach: {a: [...], b: [...]}) on the group instead",
                    )
                    continue
                _one_step(ctx, qual, m, path, group, defaults, has_functions, doc)
                continue
            g = _group(ctx, qual, m, path, group, doc, in_foreach)
        if g is None:
            continue
        if m.steps is not None:
            _walk(
                ctx,
                m.steps,
                doc,
                (*path, "steps"),
                qual,
                defaults,
                has_functions,
                uses_chain,
                in_foreach or g.foreach is not None,
            )
            _group_outputs(ctx, g, m.outputs if isinstance(m.outputs, dict) else {}, doc, path)
        elif m.uses is not None:
            _subflow(ctx, g, m, doc, path, has_functions, uses_chain, in_foreach)


def _group(
    ctx: PassContext,
    qual: str,
    m: StepModel,
    path: tuple[Any, ...],
    parent: str | None,
    doc: Doc,
    in_foreach: bool,
) -> GroupBuild | None:
    """Check a group's own keys and register it (its members come after)."""
    loc = ctx.key_loc(*path)
    if m.steps is not None and m.uses is not None:
        ctx.errors.error(loc, f"step '{qual}' has both 'steps' and 'uses'", "keep one")
        return None
    kind = "'steps'" if m.steps is not None else "'uses'"
    allowed = ("steps", "foreach", "outputs", "after", "description")
    if m.uses is not None:
        allowed = ("uses", "with", "foreach", "after", "description")
    ok = True
    for key in sorted(m.model_fields_set):
        alias = StepModel.model_fields[key].alias or key
        if alias in allowed:
            continue
        hint = "set it on the member steps"
        if alias == "outputs":
            hint = "a sub-flow's exports are the 'outputs:' of its file"
        ctx.errors.error(
            ctx.key_loc(*path, alias),
            f"'{alias}' is not allowed on group '{qual}' (a step with {kind})",
            hint,
        )
        ok = False
    if m.steps is not None and isinstance(m.outputs, list) and m.outputs:
        ctx.errors.error(
            ctx.loc(*path, "outputs"),
            f"the outputs of group '{qual}' must be a mapping of exports",
            "write outputs: {NAME: '${steps.MEMBER.outputs.OUT}'}",
        )
        ok = False
    if m.steps is not None and not m.steps:
        ctx.errors.error(ctx.loc(*path, "steps"), f"group '{qual}' has no steps")
        ok = False
    foreach, matrix = None, ()
    if m.foreach is not None:
        if in_foreach:
            ctx.errors.error(
                ctx.loc(*path, "foreach"),
                f"group '{qual}' has 'foreach' inside a foreach group",
                "a foreach inside a foreach group is not supported on any target; "
                "iterate a matrix (foreach: {a: [...], b: [...]}) on the outer group instead",
            )
            ok = False
        else:
            foreach, matrix = _foreach(ctx, m.foreach, path)
    if not ok:
        return None
    g = GroupBuild(
        name=qual,
        parent=parent,
        doc=doc,
        path=path,
        loc=loc,
        foreach=foreach,
        matrix=matrix,
        after=tuple(m.after),
        description=m.description,
    )
    ctx.groups[qual] = g
    ctx.step_paths[qual] = path
    ctx.step_docs[qual] = doc
    if parent is not None:
        ctx.groups[parent].groups.append(qual)
    return g


def _group_outputs(
    ctx: PassContext, g: GroupBuild, outputs: dict[str, Any], doc: Doc, path: tuple[Any, ...]
) -> None:
    """A group's exports (``outputs:`` of the group, or of the sub-flow file)."""
    with _in_doc(ctx, doc):
        for k, v in outputs.items():
            opath = (*path, "outputs", k)
            if not IDENT_RE.match(k):
                ctx.errors.error(ctx.key_loc(*opath), f"invalid output name '{k}'")
                continue
            try:
                g.outputs.append((k, _expr(ctx, v, opath)))
                g.output_paths[k] = (doc, opath)
            except FlowcError as e:
                ctx.errors.extend(e)


_SUBFLOW_REFUSED = (
    "schedule",
    "secrets",
    "environments",
    "stacks",
    "components",
    "plugins",
    "integration_framework",
    "config",
    "search_paths",
    "functions",
    "final",
    "channels",
    "finally",
)


def _subflow(
    ctx: PassContext,
    g: GroupBuild,
    m: StepModel,
    doc: Doc,
    path: tuple[Any, ...],
    has_functions: bool,
    uses_chain: tuple[str, ...],
    in_foreach: bool,
) -> None:
    """Load and validate the sub-flow of a ``uses:`` step; its steps become members of ``g``,
    its ``outputs:`` the group's exports, and the including step's ``with:`` its params."""
    import os

    from flowc.compiler import loader, schema

    assert m.uses is not None
    uses_loc = doc.loc((*path, "uses"))
    file = loader.subflow_path(doc.file, m.uses)
    real = os.path.realpath(file)
    chain = (*uses_chain, os.path.realpath(doc.file))
    if real in chain:
        names = [os.path.basename(c) for c in (*chain[chain.index(real) :], real)]
        ctx.errors.error(
            uses_loc,
            f"recursive sub-flow: {' -> '.join(names)}",
            "a sub-flow may not use itself, directly or through other sub-flows",
        )
        return
    try:
        sub_doc = loader.load_subflow(doc.file, m.uses, uses_loc)
        sub = schema.validate(sub_doc)
    except FlowcError as e:
        ctx.errors.extend(e)
        return
    for key in _SUBFLOW_REFUSED:
        field = "finally_" if key == "finally" else key
        if field in sub.model_fields_set or (key == "finally" and sub.finally_):
            ctx.errors.error(
                sub_doc.key_loc((key,)),
                f"a sub-flow may not declare '{key}:' (used by '{g.name}' in {doc.file})",
                "declare it in the including flow; a sub-flow has params, defaults, steps "
                "and outputs",
            )
    for key in sub.layers:
        ctx.errors.error(
            sub_doc.key_loc((key,)), f"a sub-flow may not declare integration layer '{key}:'"
        )
    g.uses = _repo_relative(ctx, doc, m.uses)
    g.sub_model = sub
    g.sub_doc = sub_doc
    with _in_doc(ctx, doc):
        for k, v in m.with_.items():
            try:
                g.with_.append((k, _expr(ctx, v, (*path, "with", k))))
            except FlowcError as e:
                ctx.errors.extend(e)
    with _in_doc(ctx, sub_doc):
        for pname in sub.params:
            check_name(ctx, pname, "param", ctx.key_loc("params", pname))
    _walk(
        ctx,
        sub.steps,
        sub_doc,
        ("steps",),
        g.name,
        sub.defaults,
        has_functions,
        chain,
        in_foreach or g.foreach is not None,
    )
    _group_outputs(ctx, g, sub.outputs, sub_doc, ())


def _repo_relative(ctx: PassContext, doc: Doc, uses: str) -> str:
    """The sub-flow file relative to the repository: joined to the including file's own
    repository-relative path (never absolute)."""
    import posixpath

    from flowc.compiler.loader import subflow_path

    known: dict[str, str] = ctx.extra.setdefault("doc_sources", {})
    base = ctx.source.path if doc is ctx.doc else known.get(doc.file, doc.file)
    rel = posixpath.normpath(posixpath.join(posixpath.dirname(base), uses.replace("\\", "/")))
    known[subflow_path(doc.file, uses)] = rel
    return rel


def _foreach(ctx: PassContext, value: Any, path: tuple[Any, ...]) -> tuple[Expr | None, tuple]:
    """The foreach expression and, for a mapping (a matrix: the cross product of its lists),
    its keys in written order."""
    try:
        e = _expr(ctx, value, (*path, "foreach"))
    except FlowcError as err:
        ctx.errors.extend(err)
        return None, ()
    if not isinstance(value, dict):
        return e, ()
    if not value:
        ctx.errors.error(
            ctx.loc(*path, "foreach"), "a foreach mapping (matrix) needs at least one key"
        )
        return None, ()
    for k, v in value.items():
        if not IDENT_RE.match(k):
            ctx.errors.error(
                ctx.key_loc(*path, "foreach", k),
                f"invalid matrix key '{k}'",
                "use letters, digits and '_' (it is read as ${item.KEY})",
            )
        elif isinstance(v, list):
            if not v:
                ctx.errors.error(
                    ctx.loc(*path, "foreach", k),
                    f"matrix key '{k}' has an empty list",
                    "give at least one value",
                )
        elif not (isinstance(v, str) and v.strip().startswith("${") and v.strip().endswith("}")):
            ctx.errors.error(
                ctx.loc(*path, "foreach", k),
                f"matrix key '{k}' must be a list (or one ${{...}} reference to a list)",
                "write foreach: {KEY: [a, b], OTHER: [1, 2]}",
            )
    return e, tuple(value)


@contextmanager
def _in_doc(ctx: PassContext, doc: Doc) -> Iterator[None]:
    """Locate errors in ``doc`` (a sub-flow file) while building its parts."""
    saved = ctx.doc
    ctx.doc = doc
    try:
        yield
    finally:
        ctx.doc = saved


def _one_step(
    ctx: PassContext,
    qual: str,
    m: StepModel,
    path: tuple[Any, ...],
    group: str | None,
    defaults: DefaultsModel,
    has_functions: bool,
    doc: Doc,
    finally_: bool = False,
) -> None:
    with _in_doc(ctx, doc):
        loc = ctx.key_loc(*path)
        ctx.step_paths[qual] = path
        ctx.step_docs[qual] = doc
        ctx.step_models[qual] = m
        if finally_ and not check_name(ctx, qual, "step", loc):
            return
        if m.run is not None and m.command is not None:
            ctx.errors.error(loc, f"step '{qual}' has both 'run' and 'command'", "keep one")
            return
        if m.run is None and m.command is None:
            if has_functions and group is None and not finally_:
                ctx.function_steps[qual] = m
                return
            ctx.errors.error(loc, f"step '{qual}' needs 'run' (module:function) or 'command'")
            return
        if isinstance(m.outputs, dict):
            ctx.errors.error(
                ctx.loc(*path, "outputs"),
                f"the outputs of step '{qual}' must be a list of names",
                "only a group (a step with 'steps:') exports a mapping of outputs",
            )
            return
        try:
            step = _build(ctx, qual, m, path, defaults)
        except FlowcError as e:
            ctx.errors.extend(e)
            return
        step = dataclasses.replace(step, group=group, is_finally=finally_)
        ctx.steps[qual] = step
        if group is not None:
            ctx.groups[group].steps.append(qual)


def _expr(ctx: PassContext, value: Any, path: tuple[Any, ...]) -> Expr:
    return value_expr(value, ctx.locate, path)


def _cascade(m: Any, d: Any, key: str, path: tuple[Any, ...]) -> tuple[Any, tuple[Any, ...]]:
    """The step's value of ``key`` and its doc path, else the ``defaults:`` one and its path."""
    value = getattr(m, key)
    if value is not None:
        return value, (*path, key)
    return getattr(d, key), ("defaults", key)


# a PEP 508 requirement as pip reads it from a requirements line: a name, then extras, version
# specifiers, a URL or markers; never an option (``-e``, ``--index-url``) or a second line
REQUIREMENT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9._,\s-]*\])?([^\n\r]*)")
INDEX_RE = re.compile(r"(https?|file)://[^\s'\"]+")


def _packages(
    ctx: PassContext, m: Any, d: Any, path: tuple[Any, ...]
) -> tuple[tuple[str, ...], str | None]:
    """The step's ``packages`` (its own list replaces the defaults' one) and its
    ``package_index``; problems are located errors."""
    packages, ppath = _cascade(m, d, "packages", path)
    index, ipath = _cascade(m, d, "package_index", path)
    if index is not None and not INDEX_RE.fullmatch(index):
        ctx.errors.error(
            ctx.doc.loc(ipath),
            f"'package_index' must be an http(s):// or file:// URL, not {index!r}",
            "the simple index pip installs `packages` from (pip's --index-url)",
        )
        index = None
    if not packages:
        return (), index
    out: list[str] = []
    for i, req in enumerate(packages):
        if not REQUIREMENT_RE.fullmatch(req) or req.strip() != req:
            ctx.errors.error(
                ctx.doc.loc((*ppath, i)),
                f"{req!r} in 'packages' is not a requirement",
                "write a pip requirement such as 'pandas==2.2.2' or 'scikit-learn>=1.4' "
                "(an index goes in 'package_index')",
            )
            continue
        out.append(req)
    return tuple(out), index


def _build(ctx: PassContext, name: str, m: Any, path: tuple[Any, ...], d: Any) -> Step:
    loc = ctx.key_loc(*path)
    if m.run is not None and not RUN_RE.match(m.run):
        ctx.errors.error(
            ctx.loc(*path, "run"),
            f"invalid callable {m.run!r}",
            "write 'package.module:function' or 'integration:object.method'",
        )
    command = None
    if m.command is not None:
        if not m.command:
            ctx.errors.error(ctx.loc(*path, "command"), "'command' is an empty list")
        command = tuple(
            (
                parse_template(a, ctx.locate((*path, "command", i)))
                if isinstance(a, str)
                else Lit(_str_scalar(a))
            )
            for i, a in enumerate(m.command)
        )
    with_ = []
    for k, v in m.with_.items():
        try:
            with_.append((k, _expr(ctx, v, (*path, "with", k))))
        except FlowcError as e:
            ctx.errors.extend(e)
    outputs = tuple(m.outputs)
    for i, o in enumerate(outputs):
        if not IDENT_RE.match(o):
            ctx.errors.error(
                ctx.loc(*path, "outputs", i),
                f"invalid output name '{o}'",
                "use letters, digits and '_'",
            )
        elif o in outputs[:i]:
            ctx.errors.error(ctx.loc(*path, "outputs", i), f"duplicate output '{o}'")
    foreach, matrix = None, ()
    if m.foreach is not None:
        foreach, matrix = _foreach(ctx, m.foreach, path)
    when = None
    if isinstance(m.when, bool):
        when = Lit(m.when)
    elif m.when is not None:
        try:
            when = parse_condition(m.when, ctx.locate((*path, "when")))
        except FlowcError as e:
            ctx.errors.extend(e)
    retries = m.retries if m.retries is not None else (d.retries or 0)
    if retries < 0:
        ctx.errors.error(ctx.loc(*path, "retries"), "'retries' must be >= 0")
    retry_delay = duration(ctx, *_cascade(m, d, "retry_delay", path))
    timeout = duration(ctx, *_cascade(m, d, "timeout", path))
    replicas = m.replicas if m.replicas is not None else (d.replicas or 1)
    if replicas < 1:
        ctx.errors.error(ctx.loc(*path, "replicas"), "'replicas' must be >= 1")
    res: dict[str, Any] = {}
    for src in (d.resources, m.resources):
        if src is not None:
            res.update({k: getattr(src, k) for k in src.model_fields_set})
    if "cpu" in res and res["cpu"] is not None and not isinstance(res["cpu"], str):
        res["cpu"] = _str_scalar(res["cpu"])
    env_vals: dict[str, Any] = {**(d.env or {}), **(m.env or {})}
    env = []
    for k, v in env_vals.items():
        epath = (*path, "env", k) if m.env and k in m.env else ("defaults", "env", k)
        if isinstance(v, str):
            try:
                env.append((k, parse_template(v, ctx.locate(epath))))
            except FlowcError as e:
                ctx.errors.extend(e)
        else:
            env.append((k, Lit("" if v is None else _str_scalar(v))))
    trigger = m.trigger or "all_success"
    if trigger not in TRIGGERS:
        ctx.errors.error(
            ctx.loc(*path, "trigger"),
            f"unknown trigger {trigger!r} of step '{name}'",
            did_you_mean(trigger, TRIGGERS) or "triggers: " + ", ".join(TRIGGERS),
        )
        trigger = "all_success"
    skip_codes: tuple[int, ...] = ()
    if m.skip_on_exit_code is not None:
        codes = m.skip_on_exit_code
        skip_codes = tuple(dict.fromkeys([codes] if isinstance(codes, int) else codes))
        if m.command is None:
            ctx.errors.error(
                ctx.key_loc(*path, "skip_on_exit_code"),
                f"'skip_on_exit_code' of step '{name}' needs a 'command' step",
                "a python step skips itself by raising flowc.runtime.Skip",
            )
        for c in skip_codes:
            if not 1 <= c <= 255:
                ctx.errors.error(
                    ctx.loc(*path, "skip_on_exit_code"),
                    f"exit code {c} in 'skip_on_exit_code' of step '{name}' is not 1..255",
                    "0 means success; exit codes are 1..255",
                )
    backoff, bpath = _cascade(m, d, "retry_backoff", path)
    if backoff is None:
        backoff = 1.0
    elif isinstance(backoff, bool) or backoff < 1:
        ctx.errors.error(
            ctx.doc.loc(bpath),
            f"'retry_backoff' must be a number >= 1, not {backoff!r}",
            "the multiplier of the delay between retries: 2 doubles it each time",
        )
        backoff = 1.0
    retry_max_delay = duration(ctx, *_cascade(m, d, "retry_max_delay", path))
    image, ipath = _cascade(m, d, "image", path)
    if image is not None and "$" in image:
        image = resolve_config(ctx, image, ipath, "an image")
    packages, package_index = _packages(ctx, m, d, path)
    return Step(
        name=name,
        kind="run" if m.run is not None else "command",
        run=m.run,
        command=command,
        with_=tuple(with_),
        outputs=outputs,
        after=tuple(m.after),
        foreach=foreach,
        when=when,
        retries=retries,
        retry_delay=retry_delay or 0.0,
        timeout=timeout,
        cache=bool(m.cache if m.cache is not None else d.cache),
        replicas=replicas,
        image=image,
        packages=packages,
        package_index=package_index,
        env=tuple(env),
        resources=Resources(**res),
        description=m.description,
        operator=m.operator,
        produces=tuple(m.produces),
        consumes=tuple(m.consumes),
        log_level=m.log_level,
        trigger=trigger,  # type: ignore[arg-type]
        skip_on_exit_code=skip_codes,
        retry_backoff=float(backoff),
        retry_max_delay=retry_max_delay,
        matrix=matrix,
        loc=loc,
    )
