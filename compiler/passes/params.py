"""Pass 20: typed params. Checks defaults (type, enum, min/max, required-with-default), applies
the environment overlay's values and then CLI ``--param k=v`` (coerced per dsl.md Conventions)."""

from __future__ import annotations

import json
from typing import Any

from flowc.compiler.errors import Loc, did_you_mean
from flowc.compiler.ir import Param
from flowc.compiler.passes import PassContext
from flowc.compiler.passes._util import check_name

ORDER = 20

_PY = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "list": (list,),
    "dict": (dict,),
}
_WORD = {
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "list": "a list",
    "dict": "a mapping",
}


def type_ok(ptype: str, value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, bool) and ptype != "bool":
        return False
    return isinstance(value, _PY[ptype])


def coerce(ptype: str, text: str) -> tuple[bool, Any]:
    """Coerce a CLI string to ``ptype``: str verbatim, numbers, true/false, JSON list/dict."""
    if ptype == "str":
        return True, text
    if ptype == "bool":
        if text in ("true", "false"):
            return True, text == "true"
        return False, None
    if ptype == "int":
        try:
            return True, int(text, 10)
        except ValueError:
            return False, None
    if ptype == "float":
        try:
            v = float(text)
        except ValueError:
            return False, None
        if v != v or v in (float("inf"), float("-inf")):
            return False, None
        return True, v
    try:
        v = json.loads(text)
    except ValueError:
        return False, None
    return (True, v) if type_ok(ptype, v) and v is not None else (False, None)


def _check_value(ctx: PassContext, p: Param, value: Any, loc: Loc | None, what: str) -> bool:
    if not type_ok(p.type, value):
        ctx.errors.error(loc, f"{what} for param '{p.name}' must be {_WORD[p.type]}, not {value!r}")
        return False
    if p.enum is not None and value not in p.enum:
        ctx.errors.error(loc, f"{what} {value!r} for param '{p.name}' is not one of {list(p.enum)}")
        return False
    if p.type in ("int", "float") and value is not None:
        if p.min is not None and value < p.min:
            ctx.errors.error(loc, f"{what} {value!r} for param '{p.name}' is below min {p.min}")
            return False
        if p.max is not None and value > p.max:
            ctx.errors.error(loc, f"{what} {value!r} for param '{p.name}' is above max {p.max}")
            return False
    return True


def run(ctx: PassContext) -> None:
    for name, m in ctx.model.params.items():
        path = ("params", name)
        loc = ctx.key_loc(*path)
        if not check_name(ctx, name, "param", loc):
            continue
        has_default = "default" in m.model_fields_set
        if m.required and has_default:
            ctx.errors.error(
                ctx.key_loc(*path, "default"),
                f"param '{name}' is required and has a default",
                "drop 'required: true' or the default",
            )
        if (m.min is not None or m.max is not None) and m.type not in ("int", "float"):
            ctx.errors.error(
                ctx.key_loc(*path, "min" if m.min is not None else "max"),
                f"min/max only apply to int and float params, not '{m.type}'",
            )
        if m.enum is not None:
            for i, v in enumerate(m.enum):
                if not type_ok(m.type, v):
                    ctx.errors.error(
                        ctx.loc(*path, "enum", i),
                        f"enum value {v!r} of param '{name}' is not {_WORD[m.type]}",
                    )
        p = Param(
            name=name,
            type=m.type,
            default=m.default,
            has_default=has_default,
            required=m.required,
            description=m.description,
            enum=tuple(m.enum) if m.enum is not None else None,
            min=m.min,
            max=m.max,
            loc=loc,
        )
        if has_default:
            _check_value(ctx, p, m.default, ctx.loc(*path, "default"), "default")
        ctx.params[name] = p

    def assign(name: str, value: Any) -> None:
        p = ctx.params[name]
        ctx.params[name] = Param(
            name=p.name,
            type=p.type,
            default=value,
            has_default=True,
            required=False,
            description=p.description,
            enum=p.enum,
            min=p.min,
            max=p.max,
            loc=p.loc,
        )

    env = ctx.env_model
    if env is not None and env.params:
        for name, value in env.params.items():
            path = ("environments", ctx.environment, "params", name)
            if name not in ctx.params:
                if name not in ctx.model.params:
                    ctx.errors.error(
                        ctx.key_loc(*path),
                        f"unknown param '{name}' in environment " f"'{ctx.environment}'",
                        did_you_mean(name, ctx.params),
                    )
                continue
            if _check_value(ctx, ctx.params[name], value, ctx.loc(*path), "value"):
                assign(name, value)

    for name, text in ctx.cli_params.items():
        if name not in ctx.params:
            if name not in ctx.model.params:
                hint = did_you_mean(name, ctx.params) or (
                    f"params: {', '.join(ctx.params)}"
                    if ctx.params
                    else "the flow declares no params"
                )
                ctx.errors.error(None, f"unknown param '{name}' (--param {name}=...)", hint)
            continue
        p = ctx.params[name]
        ok, value = coerce(p.type, text)
        if not ok:
            ctx.errors.error(
                None,
                f"--param {name}={text}: expected {_WORD[p.type]} for "
                f"param '{name}' ({p.type})",
            )
            continue
        if _check_value(ctx, p, value, None, "--param value"):
            assign(name, value)
