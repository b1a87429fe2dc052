"""Secrets in configuration, resolved where the code runs: a stack component's settings or a
plugin's config hold ``${secrets.NAME}`` as the compiler wrote it -- ``{"$ref": ["secrets",
NAME], "env": VAR}`` (``env``: the secret's declared ``env`` source, when it has one), or a
``{"$fmt": [...]}`` string holding such references -- never a value. :func:`resolve_config`
replaces them by the secrets' values just before the component or plugin is built, in the
process that uses it (a ``flowc run`` step, a Kubernetes step pod with the ``secretKeyRef`` env
the k8s target added, an Airflow worker, a KFP executor)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

Resolver = Callable[[str, Mapping[str, Any]], "str | None"]


class SecretMissing(Exception):
    """A referenced secret does not resolve here (the message names it and its source)."""


def is_secret_ref(value: Any) -> bool:
    if not isinstance(value, dict) or "$ref" not in value:
        return False
    ref = value["$ref"]
    return isinstance(ref, list) and len(ref) == 2 and ref[0] == "secrets"


def _is_secret_fmt(value: Any) -> bool:
    if not isinstance(value, dict) or set(value) != {"$fmt"} or not isinstance(value["$fmt"], list):
        return False
    parts = value["$fmt"]
    return all(isinstance(p, str) or is_secret_ref(p) for p in parts) and any(
        is_secret_ref(p) for p in parts
    )


def has_secrets(value: Any) -> bool:
    """Whether configuration data holds a secret reference."""
    if is_secret_ref(value) or _is_secret_fmt(value):
        return True
    if isinstance(value, dict):
        return any(has_secrets(v) for v in value.values())
    if isinstance(value, list):
        return any(has_secrets(v) for v in value)
    return False


def resolve_config(
    config: Any,
    secrets: Mapping[str, Mapping[str, Any]] | None = None,
    resolver: Resolver | None = None,
) -> Any:
    """``config`` with every secret reference replaced by its value: ``resolver(name, spec)``
    (default: the environment, ``$<env source>`` else ``$NAME`` upper-cased); ``spec`` is the
    plan's declaration from ``secrets`` when given, else what the reference carries. Raises
    :class:`SecretMissing` for one that does not resolve. Data without references is returned
    as is."""
    from flowc.runtime.step_common import env_secret_resolver

    if not has_secrets(config):
        return config
    specs = dict(secrets or {})
    resolve = resolver or env_secret_resolver

    def value_of(ref: dict[str, Any]) -> str:
        name = str(ref["$ref"][1])
        spec = specs.get(name) or ({"env": ref["env"]} if ref.get("env") else {})
        value = resolve(name, spec)
        if value is None:
            var = spec.get("env") or name.upper()
            raise SecretMissing(f"secret '{name}' is missing at run time: set {var}")
        return value

    def walk(value: Any) -> Any:
        if is_secret_ref(value):
            return value_of(value)
        if _is_secret_fmt(value):
            return "".join(p if isinstance(p, str) else value_of(p) for p in value["$fmt"])
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    return walk(config)
