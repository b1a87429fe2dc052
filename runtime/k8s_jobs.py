"""The Kubernetes pieces the driver, the step pods and ``flowc k8s`` share: labels and store names,
reading a plan mounted (or stored in ConfigMaps) in parts, the API client and namespace, opening
the run's artifact store, building one step Job from its compiled template, and reading a Job's
state. The ``kubernetes`` client is imported lazily."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

IN_PREFIX = "_k8s_in_"  # store names of a step instance's inputs / an attempt's result
OUT_PREFIX = "_k8s_out_"
ATTEMPT_PREFIX = "_k8s_attempt_"  # how many attempts of a step instance have started
RUN_LABEL = "flowc.dev/run"
STEP_LABEL = "flowc.dev/step"


class DriverError(Exception):
    """The run cannot go on (a step failed, a bad expression, the API refused a Job)."""


PLAN_FILES = ("k8s.json", "plan.json")


def join_parts(data: Mapping[str, str], key: str) -> str | None:
    """The text of file ``key`` from ConfigMap data: ``data[key]`` (a plan that fits one
    ConfigMap), else the parts ``key.0``, ``key.1``, ... concatenated until one is missing (a
    plan split over ConfigMaps ``<name>-0``, ``<name>-1``, ... by the k8s target; the data of
    all of them merged, in any order). None when there is neither."""
    if key in data:
        return data[key]
    parts: list[str] = []
    while f"{key}.{len(parts)}" in data:
        parts.append(data[f"{key}.{len(parts)}"])
    return "".join(parts) if parts else None


def read_mounted(path: str | Path) -> str:
    """The text of a mounted plan file (``/etc/flowc/plan.json``): the file, else its parts
    ``plan.json.0``, ``plan.json.1``, ... next to it (a split plan's ConfigMaps, projected into
    one volume) concatenated in order. FileNotFoundError when there is neither."""
    p = Path(path)
    if p.exists():
        return p.read_text(encoding="utf-8")
    names = {c.name for c in p.parent.iterdir()} if p.parent.is_dir() else set()
    text = join_parts(_LazyFiles(p.parent, names), p.name)
    if text is None:
        raise FileNotFoundError(f"no {p} (nor {p.name}.0, ...)")
    return text


class _LazyFiles(Mapping[str, str]):
    """The files of a folder as a mapping, each read when asked for."""

    def __init__(self, folder: Path, names: set[str]):
        self.folder, self.names = folder, names

    def __getitem__(self, key: str) -> str:
        if key not in self.names:
            raise KeyError(key)
        return (self.folder / key).read_text(encoding="utf-8")

    def __contains__(self, key: object) -> bool:
        return key in self.names

    def __iter__(self) -> Any:
        return iter(sorted(self.names))

    def __len__(self) -> int:
        return len(self.names)


def read_mounted_data(path: str | Path) -> Any:
    """:func:`read_mounted` parsed (JSON, with the runtime's value encoding)."""
    from flowc.runtime.entry import from_jsonable

    return from_jsonable(json.loads(read_mounted(path)))


def read_configmap_files(core: Any, name: str, namespace: str) -> dict[str, str]:
    """``{"plan.json": ..., "k8s.json": ...}`` of a deployed plan: ConfigMap ``name``, else (a
    split plan) ``name-0``, ``name-1``, ... until one is not found. Only ``get`` calls."""

    def read(n: str) -> dict[str, str] | None:
        try:
            return dict(core.read_namespaced_config_map(n, namespace).data or {})
        except Exception as e:
            if getattr(e, "status", None) == 404:
                return None
            raise

    data = read(name)
    if data is None:
        data = {}
        for i in range(10_000):
            part = read(f"{name}-{i}")
            if part is None:
                break
            data.update(part)
    files = {k: join_parts(data, k) for k in PLAN_FILES}
    missing = [k for k, v in files.items() if v is None]
    if missing:
        raise DriverError(f"ConfigMap {name} (or {name}-0, ...) holds no {missing[0]}")
    return {k: v for k, v in files.items() if v is not None}


def open_store(config: Mapping[str, Any]) -> Any:
    """The artifact store named in ``k8s.json`` (``$FLOWC_ARTIFACT_ROOT`` overrides a local
    store's path: the mount point of ``artifact_pvc``)."""
    from flowc.runtime.store import open_artifact_store

    settings = dict(config.get("store") or {"type": "local", "path": ".flowc/artifacts"})
    if settings.get("type", "local") == "local" and os.environ.get("FLOWC_ARTIFACT_ROOT"):
        settings["path"] = os.environ["FLOWC_ARTIFACT_ROOT"]
    return open_artifact_store(settings)


def api_client(kubeconfig: str | None = None, context: str | None = None) -> Any:
    """A ``kubernetes.client.ApiClient``: an explicit kubeconfig, else in-cluster config when
    running in a pod, else the standard kubeconfig (``$KUBECONFIG`` / ``~/.kube/config``)."""
    from kubernetes import client, config

    if kubeconfig is None and context is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        cfg = client.Configuration()
        config.load_incluster_config(client_configuration=cfg)
        return client.ApiClient(cfg)
    return config.new_client_from_config(config_file=kubeconfig, context=context)


def current_namespace(kubeconfig: str | None = None, context: str | None = None) -> str:
    """The namespace of the kubeconfig context (or of this pod), else ``default``."""
    sa_ns = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
    if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST") and sa_ns.exists():
        return sa_ns.read_text().strip()
    try:
        from kubernetes import config

        contexts, active = config.list_kube_config_contexts(config_file=kubeconfig)
        if context:
            active = next((c for c in contexts if c["name"] == context), active)
        return (active or {}).get("context", {}).get("namespace") or "default"
    except Exception:  # no kubeconfig: the API default
        return "default"


def step_job(
    config: Mapping[str, Any],
    step: str,
    *,
    name: str,
    namespace: str | None = None,
    run_id: str | None = None,
    owner: dict[str, Any] | None = None,
    args: list[str] | tuple[str, ...] = (),
) -> dict[str, Any]:
    """The Job manifest for one instance of ``step``: the shared ``config["job"]`` with the
    step's own fields (``config["steps"][step]``: spec, pod, container) merged in, named, labelled
    (step, run), owned by the driver, and the step's command line completed with ``args``."""
    patch = config["steps"][step]
    job = copy.deepcopy(config["job"])
    labels = {**job["metadata"].get("labels", {}), STEP_LABEL: patch["label"]}
    if run_id:
        labels[RUN_LABEL] = run_id
    md: dict[str, Any] = {"name": name}
    if namespace:
        md["namespace"] = namespace
    md["labels"] = labels
    if owner:
        md["ownerReferences"] = [owner]
    job["metadata"] = md
    spec = job["spec"]
    template = spec.pop("template")
    spec.update(copy.deepcopy(patch.get("spec") or {}))
    spec["template"] = template
    template["metadata"] = {"labels": dict(labels)}
    pod = template["spec"]
    for key, value in (patch.get("pod") or {}).items():
        pod[key] = copy.deepcopy(value)
    container = pod["containers"][0]
    for key, value in (patch.get("container") or {}).items():
        if key == "env":  # the step's variables come after the shared ones
            container["env"] = [*container.get("env", []), *copy.deepcopy(value)]
        else:
            container[key] = copy.deepcopy(value)
    container["args"] = [*container.get("args", []), "--step", step, *args]
    return job


class _Obj:
    """A Job status given as a dict, read like the client's V1JobStatus."""

    def __init__(self, d: dict[str, Any]):
        self.conditions = d.get("conditions")


def job_state(job: Any) -> str:
    """``running`` | ``succeeded`` | ``failed`` from a V1Job (or its dict)."""
    status = job.status if not isinstance(job, dict) else _Obj(job.get("status") or {})
    for cond in getattr(status, "conditions", None) or []:
        ctype = cond.type if not isinstance(cond, dict) else cond.get("type")
        cstatus = cond.status if not isinstance(cond, dict) else cond.get("status")
        if cstatus == "True" and ctype == "Complete":
            return "succeeded"
        if cstatus == "True" and ctype == "Failed":
            return "failed"
    return "running"


def _api_reason(e: Exception) -> str:
    body = getattr(e, "body", None)
    if body:
        try:
            return str(json.loads(body).get("message") or body)
        except (ValueError, AttributeError):
            return str(body)
    return str(e)
