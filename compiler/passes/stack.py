"""Pass 50: the active stack (``--stack`` or the environment's ``stack:``), custom components and
plugins. ``${env.X}`` in their settings is resolved at compile time, only for the active stack;
``${secrets.NAME}`` stays a reference (:func:`flowc.compiler.passes.secrets.config_value`)."""

from __future__ import annotations

import re

from flowc.compiler.errors import did_you_mean
from flowc.compiler.ir import ComponentConfig, CustomComponent, Plugin, Stack
from flowc.compiler.passes import PassContext
from flowc.compiler.passes._util import duration
from flowc.compiler.passes.secrets import config_value

ORDER = 50

CLASS_RE = re.compile(r"[^\s:]+:[A-Za-z_][A-Za-z0-9_.]*\Z")


def run(ctx: PassContext) -> None:
    m = ctx.model
    name, loc = ctx.stack_name, None
    if name is None and ctx.env_model is not None and ctx.env_model.stack is not None:
        name = ctx.env_model.stack
        loc = ctx.loc("environments", ctx.environment, "stack")
    if name is not None:
        if name not in m.stacks:
            known = sorted(m.stacks)
            hint = did_you_mean(name, known) or (
                f"stacks: {', '.join(known)}" if known else "the flow declares no stacks"
            )
            ctx.errors.error(loc, f"unknown stack '{name}'", hint)
        else:
            comps = []
            for kind, c in m.stacks[name].items():
                path = ("stacks", name, kind)
                extra = dict(c.model_extra or {})
                settings = config_value(ctx, extra, path, f"stack '{name}'")
                comps.append(
                    ComponentConfig(
                        kind=kind,
                        type=c.type,
                        settings=tuple(settings.items()),
                        loc=ctx.key_loc(*path),
                    )
                )
            ctx.stack = Stack(name=name, components=tuple(comps), loc=ctx.key_loc("stacks", name))
    for cname, c in m.components.items():
        path = ("components", cname)
        if not CLASS_RE.match(c.class_):
            ctx.errors.error(
                ctx.loc(*path, "class"),
                f"invalid class reference {c.class_!r}",
                "write 'package.module:Class' or 'path/to/file.py:Class'",
            )
        ctx.components.append(
            CustomComponent(name=cname, kind=c.kind, class_ref=c.class_, loc=ctx.key_loc(*path))
        )
    for pname, p in m.plugins.items():
        path = ("plugins", pname)
        config = config_value(ctx, p.config, (*path, "config"), f"plugin '{pname}'")
        health_timeout = duration(ctx, p.health_timeout, (*path, "health_timeout"))
        if health_timeout == 0:
            ctx.errors.error(
                ctx.loc(*path, "health_timeout"), "health_timeout must be more than 0", "e.g. 10s"
            )
        ctx.plugins.append(
            Plugin(
                name=pname,
                type=p.type,
                enabled=p.enabled,
                config=tuple(config.items()),
                loc=ctx.key_loc(*path),
                health_timeout=health_timeout,
            )
        )
