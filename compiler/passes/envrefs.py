"""Pass 58: ``${env.X}`` in steps (with, command, env, foreach, when) and channel locations is
resolved at compile time from the compiling process's environment (``:-default`` when unset);
an unset variable without a default is a located error. ``env`` never reaches the plan. A
variable that is a declared secret's ``env`` source is a located error instead (its value would
be compiled in): the hint is ``${secrets.NAME}``."""

from __future__ import annotations

import dataclasses

from flowc.compiler.ir import Expr
from flowc.compiler.passes import PassContext
from flowc.compiler.passes._util import resolve_env_expr
from flowc.compiler.passes.secrets import env_naming_secret

ORDER = 58


def _has_env(e: Expr | None) -> bool:
    return e is not None and any(r.root == "env" for r in e.refs())


def run(ctx: PassContext) -> None:
    def fix(e: Expr) -> Expr:
        if not _has_env(e) or env_naming_secret(ctx, e):
            return e
        return resolve_env_expr(ctx, e)

    for name, s in list(ctx.steps.items()):
        changes: dict = {}
        if any(_has_env(v) for _, v in s.with_):
            changes["with_"] = tuple((k, fix(v)) for k, v in s.with_)
        if any(_has_env(v) for _, v in s.env):
            changes["env"] = tuple((k, fix(v)) for k, v in s.env)
        if s.command and any(_has_env(a) for a in s.command):
            changes["command"] = tuple(fix(a) for a in s.command)
        for f in ("foreach", "when"):
            if _has_env(getattr(s, f)):
                changes[f] = fix(getattr(s, f))
        if changes:
            ctx.steps[name] = dataclasses.replace(s, **changes)
    for name, c in list(ctx.channels.items()):
        if _has_env(c.location):
            ctx.channels[name] = dataclasses.replace(c, location=fix(c.location))
