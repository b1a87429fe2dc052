"""Helpers shared by the passes: names, durations, compile-time ``${env.X}`` resolution."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from flowc.compiler.errors import FlowcError, Loc
from flowc.compiler.ir import Expr, Lit, Ref

if TYPE_CHECKING:
    from flowc.compiler.passes import PassContext

NAME_RE = re.compile(r"[a-z][a-z0-9_]*\Z")
IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_DUR_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
DURATION_HINT = "write a number with a unit: 500ms, 30s, 15m, 2h, 1d (or seconds as a number)"


def check_name(ctx: PassContext, name: Any, what: str, loc: Loc) -> bool:
    if isinstance(name, str) and NAME_RE.match(name):
        return True
    ctx.errors.error(
        loc,
        f"invalid {what} name '{name}'",
        "names are lowercase letters, digits and '_', starting with a letter ([a-z][a-z0-9_]*)",
    )
    return False


def parse_duration(value: Any) -> float | None:
    """Seconds for ``500ms``/``30s``/``15m``/``2h``/``1d``/``1h30m`` or a number; None if bad."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if value >= 0 else None
    if not isinstance(value, str):
        return None
    text = value.strip()
    pos, total = 0, 0.0
    for m in _DUR_PART.finditer(text):
        if m.start() != pos:
            return None
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        return None
    return total


def duration(ctx: PassContext, value: Any, path: tuple[Any, ...]) -> float | None:
    if value is None:
        return None
    got = parse_duration(value)
    if got is None:
        ctx.errors.error(ctx.doc.loc(path), f"invalid duration {value!r}", DURATION_HINT)
    return got


def env_lookup(ctx: PassContext) -> Any:
    """A lookup for :func:`flowc.compiler.expr.substitute_env` reading ``ctx.environ``."""

    def lookup(ref: Ref) -> str:
        name = ref.path[0]
        if name in ctx.environ:
            return ctx.environ[name]
        if ref.default is not None:
            return ref.default
        raise FlowcError.at(
            ref.loc,
            f"environment variable '{name}' is not set (${{env.{name}}})",
            f"set it, or write ${{env.{name}:-default}}",
        )

    return lookup


def resolve_env_expr(ctx: PassContext, e: Expr) -> Expr:
    from flowc.compiler.expr import substitute_env

    try:
        return substitute_env(e, env_lookup(ctx))
    except FlowcError as err:
        ctx.errors.extend(err)
        return e


def resolve_config(ctx: PassContext, value: Any, path: tuple[Any, ...], where: str) -> Any:
    """Plain data with every ``${env.X}`` in its strings resolved; other references are an
    error here (configuration is fixed at compile time)."""
    if isinstance(value, dict):
        return {k: resolve_config(ctx, v, (*path, k), where) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_config(ctx, v, (*path, i), where) for i, v in enumerate(value)]
    if not isinstance(value, str) or "$" not in value:
        return value
    from flowc.compiler.expr import parse_template

    try:
        e = parse_template(value, ctx.locate(path))
    except FlowcError as err:
        ctx.errors.extend(err)
        return value
    e = resolve_env_expr(ctx, e)
    if isinstance(e, Lit):
        return e.value
    others = [r for r in e.refs() if r.root != "env"]
    if not others:
        return value  # an unset variable, already reported
    ref = others[0]
    ctx.errors.error(
        (ref.loc if ref else None) or ctx.doc.loc(path),
        f"only ${{env.X}} may be used in {where}, not ${{{ref.dotted if ref else '...'}}}",
        "configuration is resolved at compile time",
    )
    return value
