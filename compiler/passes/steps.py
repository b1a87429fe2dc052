"""Pass 30: steps with ``defaults`` cascaded in (``resources``/``env`` merged per key, the step
wins), names and shapes checked, durations converted, every expression parsed (``${env.X}`` in
``image`` resolved here, before the stack's registry prefixes it). Steps of a flow
with ``functions:`` that have neither ``run`` nor ``command`` are set aside in
``ctx.function_steps`` for the function-modules pass."""

from __future__ import annotations

import json
import re
from typing import Any

from flowc.compiler.errors import FlowcError
from flowc.compiler.expr import parse_condition, parse_template, value_expr
from flowc.compiler.ir import Expr, Lit, Resources, Step
from flowc.compiler.passes import PassContext
from flowc.compiler.passes._util import IDENT_RE, check_name, duration, resolve_config

ORDER = 30

RUN_RE = re.compile(r"[^\s:]+:[A-Za-z_][A-Za-z0-9_.]*\Z")


def _str_scalar(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v)


def run(ctx: PassContext) -> None:
    d = ctx.defaults
    has_functions = bool(ctx.model.functions)
    for name, m in ctx.model.steps.items():
        path = ("steps", name)
        loc = ctx.key_loc(*path)
        ctx.step_paths[name] = path
        if not check_name(ctx, name, "step", loc):
            continue
        if m.run is not None and m.command is not None:
            ctx.errors.error(loc, f"step '{name}' has both 'run' and 'command'", "keep one")
            continue
        if m.run is None and m.command is None:
            if has_functions:
                ctx.function_steps[name] = m
                continue
            ctx.errors.error(loc, f"step '{name}' needs 'run' (module:function) or 'command'")
            continue
        try:
            ctx.steps[name] = _build(ctx, name, m, path, d)
        except FlowcError as e:
            ctx.errors.extend(e)


def _expr(ctx: PassContext, value: Any, path: tuple[Any, ...]) -> Expr:
    return value_expr(value, ctx.locate, path)


def _cascade(m: Any, d: Any, key: str, path: tuple[Any, ...]) -> tuple[Any, tuple[Any, ...]]:
    """The step's value of ``key`` and its doc path, else the ``defaults:`` one and its path."""
    value = getattr(m, key)
    if value is not None:
        return value, (*path, key)
    return getattr(d, key), ("defaults", key)


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
    foreach = None
    if m.foreach is not None:
        try:
            foreach = _expr(ctx, m.foreach, (*path, "foreach"))
        except FlowcError as e:
            ctx.errors.extend(e)
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
    image, ipath = _cascade(m, d, "image", path)
    if image is not None and "$" in image:
        image = resolve_config(ctx, image, ipath, "an image")
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
        env=tuple(env),
        resources=Resources(**res),
        description=m.description,
        operator=m.operator,
        produces=tuple(m.produces),
        consumes=tuple(m.consumes),
        log_level=m.log_level,
        loc=loc,
    )
