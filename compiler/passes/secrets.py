"""Pass 15: ``secrets:`` -> SecretRef (references only; no value is ever read)."""

from __future__ import annotations

from flowc.compiler.ir import SecretRef
from flowc.compiler.passes import PassContext
from flowc.compiler.passes._util import IDENT_RE

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
