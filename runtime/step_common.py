"""What every part of a step attempt shares: the ``MISSING`` sentinel, :class:`StepError`,
:class:`Skip` (from :mod:`flowc.runtime.skip`), and secrets (resolving a step's secret from its
source, the values to mask, masking)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from flowc.runtime import masking
from flowc.runtime.plan import Plan
from flowc.runtime.skip import Skip

__all__ = [
    "MISSING",
    "SecretResolver",
    "Skip",
    "StepError",
    "env_secret_resolver",
    "known_secret_values",
    "mask",
    "resolve_secret",
]


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Any = _Missing()
"""Sentinel: "this instance is not a foreach item" (``None`` is a valid item)."""

SecretResolver = Callable[[str, Mapping[str, Any]], "str | None"]
"""``resolver(secret_name, secret_spec) -> value or None`` (spec = ``plan["secrets"][name]``)."""


class StepError(Exception):
    """A step attempt failed for a reason flowc can explain (missing output, missing secret,
    command exit code, bad reference). ``step`` names the step."""

    def __init__(self, step: str, message: str):
        self.step = step
        self.message = message
        super().__init__(f"step '{step}': {message}")


def env_secret_resolver(name: str, spec: Mapping[str, Any]) -> str | None:
    """The default resolver: ``secrets: {x: {env: VAR}}`` reads ``$VAR`` (then ``$X`` upper-cased
    name when no ``env`` source is declared)."""
    var = spec.get("env") or name.upper()
    return os.environ.get(var)


def resolve_secret(plan: Plan, step: str, name: str, resolver: SecretResolver | None = None) -> str:
    """The value of secret ``name`` at run time, or a clear :class:`StepError`."""
    spec = (plan.get("secrets") or {}).get(name)
    if spec is None:
        raise StepError(step, f"secret '{name}' is not declared in the flow's secrets")
    value = (resolver or env_secret_resolver)(name, spec)
    if value is None:
        where = f"environment variable {spec['env']}" if spec.get("env") else "its source"
        raise StepError(step, f"secret '{name}' is missing at run time: set {where}")
    return value


def known_secret_values(plan: Plan, resolver: SecretResolver | None = None) -> list[str]:
    """The values of the plan's declared secrets that resolve now (a resolver that fails counts
    as unset): what to mask in logs and errors."""
    out = []
    for name, spec in (plan.get("secrets") or {}).items():
        try:
            value = (resolver or env_secret_resolver)(name, spec)
        except Exception:
            value = None
        if value:
            out.append(value)
    return out


def mask(text: str, secrets: list[str] | tuple[str, ...]) -> str:
    """``text`` with every secret value replaced by ``***``, in every form it takes in text
    (as is, JSON-escaped, ``repr()``-escaped: :func:`flowc.runtime.masking.mask`)."""
    return masking.mask(text, secrets) if secrets else text
