"""Pass 15: ``secrets:`` -> SecretRef (references only; no value is ever read).

Also the secret rules the configuration passes share (:func:`config_value`,
:func:`env_naming_secret`): ``${secrets.NAME}`` in stack, plugin and integration configuration
stays a reference -- the plan's expression encoding ``{"$ref": ["secrets", NAME], "env": VAR}``
(``env``: the secret's env source; or a ``{"$fmt": [...]}`` around it), resolved where the code
runs (``flowc.runtime.config_secrets``) -- and ``${env.X}`` naming a
declared secret's ``env`` source is a located error whose hint is the ``${secrets.NAME}``
spelling (its value would be copied into the compiled files)."""

from __future__ import annotations

from typing import Any

from flowc.compiler.errors import did_you_mean
from flowc.compiler.ir import Expr, Lit, Ref, SecretRef, encode_expr
from flowc.compiler.passes import PassContext
from flowc.compiler.passes._util import IDENT_RE, resolve_config, resolve_env_expr

ORDER = 15


def run(ctx: PassContext) -> None:
    for name, s in ctx.model.secrets.items():
        loc = ctx.key_loc("secrets", name)
        if not IDENT_RE.match(name):
            ctx.errors.error(loc, f"invalid secret name '{name}'", "use letters, digits and '_'")
            continue
        if s.airflow is not None and (s.airflow.variable is None) == (s.airflow.connection is None):
            ctx.errors.error(
                ctx.loc("secrets", name, "airflow"),
                f"secret '{name}': airflow needs exactly one of 'variable' or 'connection'",
            )
        if not (s.env or s.k8s or s.airflow or s.vertex):
            ctx.errors.error(
                loc,
                f"secret '{name}' has no source",
                "give at least one of env, k8s, airflow, vertex",
            )
        ctx.secrets[name] = SecretRef(
            name=name,
            env=s.env,
            k8s_name=s.k8s.name if s.k8s else None,
            k8s_key=s.k8s.key if s.k8s else None,
            airflow_variable=s.airflow.variable if s.airflow else None,
            airflow_connection=s.airflow.connection if s.airflow else None,
            vertex=s.vertex.secret if s.vertex else None,
            loc=loc,
        )


def env_naming_secret(ctx: PassContext, e: Expr) -> bool:
    """Report every ``${env.X}`` in ``e`` whose X is a declared secret's ``env`` source (a
    located error, the hint ``${secrets.NAME}``); True when there was one."""
    sources = {ref.env: name for name, ref in ctx.secrets.items() if ref.env}
    found = False
    for r in e.refs():
        if r.root == "env" and r.path and r.path[0] in sources:
            name = sources[r.path[0]]
            ctx.errors.error(
                r.loc,
                f"${{env.{r.path[0]}}} is the source of secret '{name}': its value would be "
                "written into the compiled files",
                f"write ${{secrets.{name}}} (resolved where the code runs, never compiled in)",
            )
            found = True
    return found


def config_value(ctx: PassContext, value: Any, path: tuple[Any, ...], where: str) -> Any:
    """Configuration data as :func:`flowc.compiler.passes._util.resolve_config` resolves it
    (``${env.X}`` at compile time, other references refused), except that ``${secrets.NAME}``
    of a declared secret stays a reference: the string becomes its plan encoding (``{"$ref":
    ["secrets", NAME]}``, or ``{"$fmt": [...]}`` when it holds more than the reference)."""
    if isinstance(value, dict):
        return {k: config_value(ctx, v, (*path, k), where) for k, v in value.items()}
    if isinstance(value, list):
        return [config_value(ctx, v, (*path, i), where) for i, v in enumerate(value)]
    if not isinstance(value, str) or "$" not in value:
        return value
    from flowc.compiler.errors import FlowcError
    from flowc.compiler.expr import parse_template

    try:
        e = parse_template(value, ctx.locate(path))
    except FlowcError as err:
        ctx.errors.extend(err)
        return value
    if env_naming_secret(ctx, e):
        return value
    refs = e.refs()
    if all(r.root == "env" for r in refs):
        return resolve_config(ctx, value, path, where)
    bad = False
    for r in refs:
        if r.root == "secrets" and (len(r.path) != 1 or r.path[0] not in ctx.secrets):
            name = r.path[0] if r.path else ""
            hint = did_you_mean(name, sorted(ctx.secrets)) or "declare it under `secrets:`"
            ctx.errors.error(r.loc or ctx.doc.loc(path), f"unknown secret '{name}'", hint)
            bad = True
        elif r.root not in ("secrets", "env"):
            ctx.errors.error(
                r.loc or ctx.doc.loc(path),
                f"only ${{env.X}} and ${{secrets.NAME}} may be used in {where}, not "
                f"${{{r.dotted}}}",
                "configuration is resolved at compile time (secrets where the code runs)",
            )
            bad = True
    if bad:
        return value
    e = resolve_env_expr(ctx, e)
    if isinstance(e, Lit):  # pragma: no cover - a secrets reference never folds away
        return e.value
    if any(isinstance(r, Ref) and r.root == "env" for r in e.refs()):
        return value  # an unset variable, already reported
    return _with_sources(ctx, encode_expr(e))


def _with_sources(ctx: PassContext, enc: Any) -> Any:
    """Every secrets reference in ``enc`` with ``"env"``: the secret's ``env`` source (the
    runtime resolves a component's settings without the plan at hand)."""
    if isinstance(enc, dict):
        ref = enc.get("$ref")
        if isinstance(ref, list) and len(ref) == 2 and ref[0] == "secrets":
            source = ctx.secrets[ref[1]].env
            return {**enc, "env": source} if source else enc
        return {k: _with_sources(ctx, v) for k, v in enc.items()}
    if isinstance(enc, list):
        return [_with_sources(ctx, v) for v in enc]
    return enc
