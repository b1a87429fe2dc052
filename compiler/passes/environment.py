"""Pass 10: the ``-e ENV`` overlay: picks the environment, merges its ``defaults`` into the flow's
(key-wise for ``resources`` and ``env``), and records its params and stack for later passes."""

from __future__ import annotations

from typing import Any

from flowc.compiler.errors import did_you_mean
from flowc.compiler.passes import PassContext
from flowc.compiler.schema import DefaultsModel, ResourcesModel

ORDER = 10


def merge_defaults(base: DefaultsModel, over: DefaultsModel) -> DefaultsModel:
    """``over`` wins key by key; ``resources`` and ``env`` merge per key."""
    data: dict[str, Any] = {n: getattr(base, n) for n in DefaultsModel.model_fields}
    for n in over.model_fields_set:
        v = getattr(over, n)
        if n == "resources" and base.resources is not None and v is not None:
            merged = {k: getattr(base.resources, k) for k in base.resources.model_fields_set}
            merged.update({k: getattr(v, k) for k in v.model_fields_set})
            v = ResourcesModel.model_construct(**merged)
            v.__pydantic_fields_set__ = set(merged)
        elif n == "env" and base.env is not None and v is not None:
            v = {**base.env, **v}
        data[n] = v
    out = DefaultsModel.model_construct(**data)
    out.__pydantic_fields_set__ = set(base.model_fields_set) | set(over.model_fields_set)
    return out


def run(ctx: PassContext) -> None:
    ctx.defaults = ctx.model.defaults
    if ctx.environment is None:
        return
    envs = ctx.model.environments
    if ctx.environment not in envs:
        known = sorted(envs)
        hint = did_you_mean(ctx.environment, known) or (
            f"environments: {', '.join(known)}" if known else "the flow declares no environments"
        )
        ctx.errors.error(None, f"unknown environment '{ctx.environment}' (-e)", hint)
        return
    env = envs[ctx.environment]
    ctx.env_model = env
    if env.defaults is not None:
        ctx.defaults = merge_defaults(ctx.model.defaults, env.defaults)
