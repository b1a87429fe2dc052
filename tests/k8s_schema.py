"""Kubernetes manifest checks shared by the k8s tests and the fake API server.

``schema_errors`` validates one object against the *strict* JSON schemas shipped by
``kubernetes-validate`` (unknown fields are errors) for a Kubernetes version and returns EVERY
error (``jsonschema``'s ``iter_errors``), not only the first as ``kubernetes_validate.validate``
does. ``semantic_errors`` adds what schemas miss: DNS-1123 names, label syntax, ``restartPolicy``
of Job pods, cron syntax, resource quantities, RoleBinding -> Role / ServiceAccount references.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import jsonschema
import kubernetes_validate
import referencing
from kubernetes_validate import utils as kv

VERSIONS = ("1.30.0", kubernetes_validate.utils.latest_version())
"""Kubernetes versions every manifest is checked against (1.30 and the newest shipped)."""

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
QUANTITY = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)(([KMGTPE]i)|[numkMGTPE]|([eE][+-]?\d+))?$")


@cache
def _validator(kind: str, api_version: str, version: str) -> jsonschema.protocols.Validator:
    schema_dir = f"v{version}-local-strict"
    group = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    schema = kv.schema_contents(
        f"kubernetes-json-schema/{schema_dir}/{kind.lower()}-{group}.json", version
    )
    defs = kv.schema_contents(f"kubernetes-json-schema/{schema_dir}/_definitions.json", version)
    registry = referencing.Resource.from_contents(schema) @ referencing.Registry()
    registry = referencing.Resource.from_contents(defs) @ registry
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


def schema_errors(obj: dict[str, Any], version: str) -> list[str]:
    """Every strict-schema error of ``obj`` for Kubernetes ``version`` (``"1.30.0"``)."""
    where = f"{obj.get('kind')}/{(obj.get('metadata') or {}).get('name')}"
    try:
        validator = _validator(obj["kind"], obj["apiVersion"], version)
    except (KeyError, FileNotFoundError) as e:
        return [f"{where}: no schema for {obj.get('apiVersion')} {obj.get('kind')} ({e})"]
    out = []
    for err in sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path))):
        path = ".".join(str(p) for p in err.absolute_path)
        out.append(f"{where} (k8s {version}): {path}: {err.message}")
    return out


def all_schema_errors(obj: dict[str, Any]) -> list[str]:
    return [e for v in VERSIONS for e in schema_errors(obj, v)]


def valid_cron(expr: str) -> bool:
    from croniter import croniter

    return len(expr.split()) == 5 and croniter.is_valid(expr)


def _check_labels(where: str, labels: dict[str, Any] | None, out: list[str]) -> None:
    for k, v in (labels or {}).items():
        name = k.rsplit("/", 1)[-1]
        if not LABEL_NAME.match(name) or len(name) > 63:
            out.append(f"{where}: bad label name {k!r}")
        if not isinstance(v, str) or len(v) > 63 or not LABEL_VALUE.match(v):
            out.append(f"{where}: bad label value {k}={v!r}")


def _check_pod(where: str, pod: dict[str, Any], out: list[str], job: bool) -> None:
    if job and pod.get("restartPolicy") not in ("Never", "OnFailure"):
        out.append(f"{where}: a Job pod needs restartPolicy Never or OnFailure")
    names = [c.get("name") for c in pod.get("containers") or []]
    if len(set(names)) != len(names):
        out.append(f"{where}: duplicate container names {names}")
    volumes = {v["name"] for v in pod.get("volumes") or []}
    for c in pod.get("containers") or []:
        if not DNS1123_LABEL.match(c.get("name", "")):
            out.append(f"{where}: container name {c.get('name')!r} is not DNS-1123")
        for section in ("requests", "limits"):
            for res, q in ((c.get("resources") or {}).get(section) or {}).items():
                if not QUANTITY.match(str(q)):
                    out.append(f"{where}: {section}.{res} {q!r} is not a quantity")
        for m in c.get("volumeMounts") or []:
            if m["name"] not in volumes:
                out.append(f"{where}: volumeMount {m['name']!r} has no volume")
        for e in c.get("env") or []:
            ref = (e.get("valueFrom") or {}).get("secretKeyRef")
            if "value" in e and ref:
                out.append(f"{where}: env {e['name']} has both value and valueFrom")


def semantic_errors(docs: list[dict[str, Any]]) -> list[str]:
    """Checks the schemas miss, across one manifest stream."""
    out: list[str] = []
    seen: set[tuple[str, str]] = set()
    by_kind: dict[str, set[str]] = {}
    for d in docs:
        md = d.get("metadata") or {}
        name = md.get("name", "")
        where = f"{d.get('kind')}/{name}"
        if (d.get("kind"), name) in seen:
            out.append(f"{where}: duplicate object")
        seen.add((d.get("kind"), name))
        by_kind.setdefault(d.get("kind", ""), set()).add(name)
        limit = 52 if d.get("kind") == "CronJob" else 63
        if not DNS1123_LABEL.match(name) or len(name) > limit:
            out.append(f"{where}: name is not a DNS-1123 label of at most {limit} characters")
        if md.get("namespace") and not DNS1123_LABEL.match(md["namespace"]):
            out.append(f"{where}: bad namespace {md['namespace']!r}")
        _check_labels(where, md.get("labels"), out)
        if d.get("kind") == "Job":
            _check_pod(where, d["spec"]["template"]["spec"], out, job=True)
            _check_labels(where, d["spec"]["template"].get("metadata", {}).get("labels"), out)
        if d.get("kind") == "CronJob":
            spec = d["spec"]
            if not valid_cron(spec["schedule"]):
                out.append(f"{where}: bad cron schedule {spec['schedule']!r}")
            if spec.get("concurrencyPolicy") != "Forbid":
                out.append(f"{where}: concurrencyPolicy must be Forbid")
            tz = spec.get("timeZone")
            if tz:
                from zoneinfo import ZoneInfo

                try:
                    ZoneInfo(tz)
                except Exception:
                    out.append(f"{where}: unknown timeZone {tz!r}")
            _check_pod(where, spec["jobTemplate"]["spec"]["template"]["spec"], out, job=True)
    for d in docs:
        if d.get("kind") != "RoleBinding":
            continue
        where = f"RoleBinding/{d['metadata']['name']}"
        ref = d["roleRef"]
        if ref.get("kind") != "Role" or ref.get("name") not in by_kind.get("Role", set()):
            out.append(f"{where}: roleRef {ref} is not a Role of this manifest")
        for s in d.get("subjects") or []:
            if s.get("kind") == "ServiceAccount" and s["name"] not in by_kind.get(
                "ServiceAccount", set()
            ):
                out.append(f"{where}: subject ServiceAccount {s['name']!r} is not in the manifest")
    for d in docs:
        if d.get("kind") == "Role":
            for rule in d.get("rules") or []:
                if "*" in rule.get("verbs", []) or "*" in rule.get("resources", []):
                    out.append(f"Role/{d['metadata']['name']}: wildcard rule {rule}")
        if d.get("kind") in ("ClusterRole", "ClusterRoleBinding"):
            out.append(f"{d['kind']}/{d['metadata']['name']}: nothing cluster-wide")
    return out
